import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { utf8 } from "../../protocol/bytes.ts";
import type { RandomSource } from "../../protocol/crypto/backend.ts";
import type { AppEnv } from "../app-env.ts";
import { users } from "../db/schema.ts";
import type { EdgeConfig } from "../env.ts";
import { ApiError } from "../errors.ts";
import { requireUser, userIdOf } from "../middleware/auth.ts";
import { readJson } from "../middleware/body.ts";
import { verifyPassword } from "../security/password.ts";
import { type KeyRing, openSecret, parseKeyRing, sealSecret } from "../security/secret-box.ts";
import { base32Encode, generateTotpSecret, otpauthUri, verifyTotp } from "../security/totp.ts";
import { checkAddressFailures, recordAddressFailure, takeAccountAttempt } from "../services/sessions.ts";

/**
 * TOTP second factor (RFC 6238): enroll (step-up with the password) stores a sealed secret as pending, confirm with a
 * first code enables it, disable needs the password or a current code. A code's time step is recorded in
 * users.totp_last_step, so no code (nor an older one) is accepted twice. Secrets are sealed under the versioned
 * WAVRY_TOTP_ENCRYPTION_KEYS ring with the user id as additional data, so a sealed value cannot move between rows.
 */

/** The issuer shown in authenticator apps (the otpauth label forbids ':', so not the issuer URL). */
const TOTP_ISSUER = "Wavry";

/** The message of every refused TOTP code, at login and at step-up. */
export const TOTP_INVALID_MESSAGE = "totp code required or invalid";

const random: RandomSource = (n) => crypto.getRandomValues(new Uint8Array(n));

const aadFor = (userId: string) => utf8(`totp:${userId}`);

let ringCache: { readonly text: string; readonly ring: KeyRing } | null = null;

/** The TOTP key ring, parsed once per configuration (parsing imports keys lazily and caches them). */
function totpRing(config: EdgeConfig): KeyRing {
  if (ringCache?.text === config.totpEncryptionKeys) return ringCache.ring;
  const ring = parseKeyRing(config.totpEncryptionKeys);
  // env.ts validated the ring's shape; a ring parseKeyRing still refuses is an operator error (500, no detail).
  if ("error" in ring) throw new Error("TOTP key ring is invalid");
  ringCache = { text: config.totpEncryptionKeys, ring };
  return ring;
}

async function openTotpSecret(config: EdgeConfig, userId: string, sealed: string): Promise<Uint8Array> {
  const secret = await openSecret(totpRing(config), sealed, aadFor(userId));
  if (secret === null) throw new Error("a TOTP secret cannot be opened with the configured key ring");
  return secret;
}

/**
 * Checks `code` against the user's enabled secret and consumes its time step. The step is stored with a
 * conditional UPDATE, so two concurrent requests with the same code cannot both succeed. False for a wrong, stale
 * or reused code.
 */
export async function consumeTotpCode(
  db: D1Database,
  config: EdgeConfig,
  user: { readonly id: string; readonly totpSecret: string; readonly totpLastStep: number | null },
  code: string,
  now: number,
): Promise<boolean> {
  const secret = await openTotpSecret(config, user.id, user.totpSecret);
  const step = verifyTotp(secret, code, now, user.totpLastStep);
  if (step === null) return false;
  const result = await db
    .prepare(
      `UPDATE users SET totp_last_step = ?1, updated_at = ?2
        WHERE id = ?3 AND totp_secret = ?4 AND (totp_last_step IS NULL OR totp_last_step < ?1)`,
    )
    .bind(step, now, user.id, user.totpSecret)
    .run();
  return result.meta.changes === 1;
}

async function loadUser(c: Context<AppEnv>) {
  const userId = userIdOf(c.get("principal"));
  const user = await drizzle(c.env.DB)
    .select({
      id: users.id,
      email: users.email,
      passwordHash: users.passwordHash,
      totpSecret: users.totpSecret,
      totpPending: users.totpPending,
      totpLastStep: users.totpLastStep,
    })
    .from(users)
    .where(eq(users.id, userId))
    .get();
  // requireUser just saw the row; it can only vanish in a race with an account deletion.
  if (user === undefined) throw new ApiError(401, "invalid_token", "invalid or expired token");
  return user;
}

/**
 * Step-up with the password, under the same budgets as login (address failures, attempts per account), so a stolen
 * access token is no faster a password oracle than the login route.
 */
async function stepUpWithPassword(c: Context<AppEnv>, email: string, passwordHash: string, password: string) {
  await checkAddressFailures(c);
  await takeAccountAttempt(c, email);
  if (!verifyPassword(password, passwordHash)) {
    await recordAddressFailure(c);
    throw new ApiError(401, "unauthorized", "invalid password");
  }
}

const passwordField = z.string().min(1).max(4096);
const codeField = z.string().min(1).max(16);
const enrollBody = z.object({ password: passwordField });
const confirmBody = z.object({ code: codeField });
const disableBody = z
  .object({ password: passwordField.optional(), code: codeField.optional() })
  .refine((b) => (b.password === undefined) !== (b.code === undefined), "send either password or code");

/** The TOTP routes, mounted at /v1/auth/totp; every one needs a user access token. */
export function totpRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  /**
   * POST /enroll {password} -> 200 {secret, otpauthUri}. 401 for a wrong password, 409 when TOTP is already
   * enabled, 429 when the login budgets are spent. Enrolling again before confirming replaces the pending secret.
   */
  app.post("/enroll", requireUser(), async (c) => {
    const { password } = await readJson(c, enrollBody);
    const user = await loadUser(c);
    if (user.totpSecret !== null)
      throw new ApiError(409, "conflict", "two-factor authentication is already enabled");
    await stepUpWithPassword(c, user.email, user.passwordHash, password);
    const secret = generateTotpSecret(random);
    const sealed = await sealSecret(totpRing(c.get("config")), secret, aadFor(user.id), random);
    await drizzle(c.env.DB)
      .update(users)
      .set({ totpPending: sealed, updatedAt: Date.now() })
      .where(eq(users.id, user.id))
      .run();
    return c.json(
      { secret: base32Encode(secret), otpauthUri: otpauthUri(secret, user.email, TOTP_ISSUER) },
      200,
    );
  });

  /**
   * POST /confirm {code} -> 204, enabling the pending secret. 400 when nothing is pending or the code is wrong,
   * 409 when already enabled or the enrollment changed meanwhile.
   */
  app.post("/confirm", requireUser(), async (c) => {
    const { code } = await readJson(c, confirmBody);
    const user = await loadUser(c);
    if (user.totpSecret !== null)
      throw new ApiError(409, "conflict", "two-factor authentication is already enabled");
    if (user.totpPending === null)
      throw new ApiError(400, "bad_request", "no TOTP enrollment is pending; enroll first");
    const now = Date.now();
    const secret = await openTotpSecret(c.get("config"), user.id, user.totpPending);
    const step = verifyTotp(secret, code, now, user.totpLastStep);
    if (step === null) throw new ApiError(400, "bad_request", "invalid totp code");
    // Conditional on the row still holding the pending secret we checked, so a concurrent re-enroll cannot be
    // enabled with a code for the old secret.
    const result = await c.env.DB.prepare(
      `UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?1, updated_at = ?2
        WHERE id = ?3 AND totp_pending = ?4 AND totp_secret IS NULL
          AND (totp_last_step IS NULL OR totp_last_step < ?1)`,
    )
      .bind(step, now, user.id, user.totpPending)
      .run();
    if (result.meta.changes !== 1)
      throw new ApiError(409, "conflict", "the enrollment changed; enroll again");
    return c.body(null, 204);
  });

  /**
   * POST /disable {password} or {code} -> 204. 401 for a wrong password or a wrong or reused code, 409 when TOTP
   * is not enabled, 429 when the login budgets are spent.
   */
  app.post("/disable", requireUser(), async (c) => {
    const body = await readJson(c, disableBody);
    const user = await loadUser(c);
    if (user.totpSecret === null)
      throw new ApiError(409, "conflict", "two-factor authentication is not enabled");
    if (body.password !== undefined) {
      await stepUpWithPassword(c, user.email, user.passwordHash, body.password);
    } else {
      await checkAddressFailures(c);
      await takeAccountAttempt(c, user.email);
      const ok =
        body.code !== undefined &&
        (await consumeTotpCode(
          c.env.DB,
          c.get("config"),
          { ...user, totpSecret: user.totpSecret },
          body.code,
          Date.now(),
        ));
      if (!ok) {
        await recordAddressFailure(c);
        throw new ApiError(401, "unauthorized", TOTP_INVALID_MESSAGE);
      }
    }
    await drizzle(c.env.DB)
      .update(users)
      .set({ totpSecret: null, totpPending: null, updatedAt: Date.now() })
      .where(eq(users.id, user.id))
      .run();
    return c.body(null, 204);
  });

  return app;
}
