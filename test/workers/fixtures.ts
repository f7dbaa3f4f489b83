import { env } from "cloudflare:workers";
import { type EdgeBindings, type EdgeConfig, loadConfig } from "../../edge/env.ts";
import { issueToken, TokenKind } from "../../edge/services/tokens.ts";
import { unique } from "./helpers.ts";

/** The edge configuration the Workers tests run with (vitest.workers.config.ts); throws if it is invalid. */
export function testConfig(): EdgeConfig {
  const result = loadConfig(env as unknown as EdgeBindings);
  if (!result.ok) throw new Error(`test configuration invalid: ${result.problems.join("; ")}`);
  return result.config;
}

/** A signed-in user made without the auth routes. */
export interface TestUser {
  readonly userId: string;
  /** A user access token. */
  readonly token: string;
}

/** A user row (email `<label>-…@example.com`), a refresh family, and a user access token for it. */
export async function newUser(label: string): Promise<TestUser> {
  const userId = crypto.randomUUID();
  const familyId = crypto.randomUUID();
  const now = Date.now();
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?2, 'not-a-hash', ?3, ?3)",
    ).bind(userId, `${unique(label)}@example.com`, now),
    env.DB.prepare("INSERT INTO refresh_families (id, user_id, created_at) VALUES (?1, ?2, ?3)").bind(
      familyId,
      userId,
      now,
    ),
  ]);
  const issued = await issueToken(
    env.DB,
    testConfig(),
    TokenKind.userAccess,
    userId,
    [],
    { fam: familyId },
    now,
  );
  return { userId, token: issued.token };
}
