import path from "node:path";
import { z } from "zod";
import type { EndpointConfig } from "../config.ts";
import { type EdgeClient, EdgeError, type UserTokens } from "../edge-client/edge-client.ts";
import { readPrivateFile, removePrivateFile, replacePrivateFile } from "../identity/private-file.ts";
import { CommandFailure } from "./cli-context.ts";

/**
 * The signed-in user's session (`wavry login`), kept in `$WAVRY_HOME/session.json` with mode 0600: the refresh
 * token, the current access token and the edge they belong to. Refresh tokens rotate on use and reusing an old
 * one revokes the whole family (API.md), so a rotated token is written to disk before the new access token is used.
 */

const SESSION_FILE = "session.json";
const MAX_SESSION_BYTES = 64 * 1024;
/** Refresh this long before the access token expires. */
const RENEW_BEFORE_MS = 30_000;

const SessionFile = z.strictObject({
  version: z.literal(1),
  edgeUrl: z.string(),
  email: z.string(),
  userId: z.string(),
  refreshToken: z.string(),
  accessToken: z.string(),
  accessExpiresAt: z.number(),
});

/** A stored user session. */
export type Session = Omit<z.infer<typeof SessionFile>, "version">;

function sessionPath(home: string): string {
  return path.join(home, SESSION_FILE);
}

/** The `sub` claim of an access token, read without verifying: it only selects what the proof binds, and the
 * edge verifies the token and the proof itself. */
export function subjectOf(accessToken: string): string | null {
  const payload = accessToken.split(".")[1];
  if (payload === undefined) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null && "sub" in claims && typeof claims.sub === "string"
      ? claims.sub
      : null;
  } catch {
    return null;
  }
}

/** Reads the session, or null when nobody is signed in. */
export function readSession(home: string): Session | null {
  const text = readPrivateFile(sessionPath(home), MAX_SESSION_BYTES);
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  const parsed = SessionFile.safeParse(json);
  if (!parsed.success) {
    throw new CommandFailure(`${sessionPath(home)} is not a valid session file; run: wavry login EMAIL`);
  }
  const { version: _version, ...session } = parsed.data;
  return session;
}

/** Stores a session from fresh tokens (login or refresh). */
export function saveSession(
  config: EndpointConfig,
  email: string,
  tokens: UserTokens,
  now: number = Date.now(),
): Session {
  const userId = subjectOf(tokens.accessToken);
  if (userId === null || config.edgeUrl === null) {
    throw new CommandFailure("the edge returned an access token without a subject");
  }
  const session: Session = {
    edgeUrl: config.edgeUrl.origin,
    email,
    userId,
    refreshToken: tokens.refreshToken,
    accessToken: tokens.accessToken,
    accessExpiresAt: now + tokens.expiresIn * 1000,
  };
  replacePrivateFile(sessionPath(config.home), `${JSON.stringify({ version: 1, ...session }, null, 2)}\n`);
  return session;
}

/** Deletes the stored session. */
export function clearSession(home: string): void {
  removePrivateFile(sessionPath(home));
}

/**
 * A usable user access token for the configured edge: the stored one while it has 30 s left, else a refreshed
 * one (saved before it is returned). Fails with a message saying to log in when there is no valid session.
 */
export async function userAccess(
  config: EndpointConfig,
  edge: EdgeClient,
): Promise<{ accessToken: string; session: Session }> {
  const session = readSession(config.home);
  if (session === null) throw new CommandFailure("not signed in; run: wavry login EMAIL");
  if (config.edgeUrl === null || session.edgeUrl !== config.edgeUrl.origin) {
    throw new CommandFailure(
      `signed in to ${session.edgeUrl}, not to WAVRY_EDGE_URL; run: wavry login EMAIL`,
    );
  }
  const started = Date.now();
  if (session.accessExpiresAt - RENEW_BEFORE_MS > started)
    return { accessToken: session.accessToken, session };
  let tokens: UserTokens;
  try {
    tokens = await edge.refresh(session.refreshToken);
  } catch (error) {
    if (error instanceof EdgeError && error.status === 401) {
      clearSession(config.home);
      throw new CommandFailure("the session expired or was revoked; run: wavry login EMAIL");
    }
    throw error;
  }
  const renewed = saveSession(config, session.email, tokens, started);
  return { accessToken: renewed.accessToken, session: renewed };
}
