import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { and, eq, isNull } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { Context } from "hono";
import { toHex, utf8 } from "../../protocol/bytes.ts";
import type { RandomSource } from "../../protocol/crypto/backend.ts";
import type { AppEnv } from "../app-env.ts";
import * as schema from "../db/schema.ts";
import { refreshFamilies, refreshTokens, users } from "../db/schema.ts";
import type { EdgeConfig } from "../env.ts";
import { ApiError } from "../errors.ts";
import { takeToken } from "../middleware/rate-limit.ts";
import { randomToken, sha256Hex } from "../security/tokens-util.ts";
import { issueToken, TokenKind } from "./tokens.ts";

/**
 * User sessions: a login opens a refresh family; each refresh token is opaque (32 random bytes), stored only as its
 * SHA-256, and single-use. Exchanging one marks it used and issues the next token of the same family; presenting a
 * used token again means two parties hold the family (a stolen token), so the whole family is revoked (RFC 9700
 * §4.14.2, refresh token rotation). Every access token carries its family id in the `fam` claim, and requireUser
 * refuses it once the family is revoked.
 *
 * The login throttles (per-address failure budget, per-account attempt budget, lockout counter) live here too, so
 * the login route and the TOTP step-up checks share one set of budgets.
 */

/** Scopes of a user access token: the signed-in user's own account and devices. */
export const USER_ACCESS_SCOPES = ["account", "devices"] as const;

/** Why a family was revoked (stored in refresh_families.revoke_reason). */
export type RevokeReason = "logout" | "reuse" | "suspended" | "admin" | "password_change";

/** The tokens a login or a refresh hands out. */
export interface SessionTokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** Access token lifetime in seconds. */
  readonly expiresIn: number;
  readonly familyId: string;
}

/** The outcome of a refresh; every failure is the same 401 to the client, the reason is for callers and tests. */
export type RotateResult =
  | { readonly ok: true; readonly userId: string; readonly tokens: SessionTokens }
  | { readonly ok: false; readonly reason: "unknown" | "expired" | "revoked" | "reuse" | "inactive" };

const random: RandomSource = (n) => crypto.getRandomValues(new Uint8Array(n));

const orm = (db: D1Database) => drizzle(db, { schema });

async function newRefreshToken(config: EdgeConfig, familyId: string, now: number) {
  const token = randomToken(random, 32);
  const row = {
    tokenHash: await sha256Hex(token),
    familyId,
    createdAt: now,
    expiresAt: now + config.refreshTokenTtlSecs * 1000,
  };
  return { token, row };
}

async function accessTokenFor(
  db: D1Database,
  config: EdgeConfig,
  userId: string,
  familyId: string,
  now: number,
) {
  const issued = await issueToken(
    db,
    config,
    TokenKind.userAccess,
    userId,
    USER_ACCESS_SCOPES,
    { fam: familyId },
    now,
  );
  return issued.token;
}

/** Opens a new refresh family for `userId` (a login) and returns its first refresh token and an access token. */
export async function createSession(
  db: D1Database,
  config: EdgeConfig,
  userId: string,
  now: number,
): Promise<SessionTokens> {
  const familyId = crypto.randomUUID();
  const refresh = await newRefreshToken(config, familyId, now);
  const d = orm(db);
  await d.batch([
    d.insert(refreshFamilies).values({ id: familyId, userId, createdAt: now }),
    d.insert(refreshTokens).values(refresh.row),
  ]);
  return {
    accessToken: await accessTokenFor(db, config, userId, familyId, now),
    refreshToken: refresh.token,
    expiresIn: config.accessTokenTtlSecs,
    familyId,
  };
}

/**
 * Exchanges a refresh token for a new refresh token of the same family and a new access token. A token that was
 * already exchanged revokes its family ("reuse"). The exchange is claimed with a conditional UPDATE, so of two
 * concurrent uses of one token exactly one wins and the other is treated as reuse.
 */
export async function rotateRefreshToken(
  db: D1Database,
  config: EdgeConfig,
  presented: string,
  now: number,
): Promise<RotateResult> {
  const tokenHash = await sha256Hex(presented);
  const row = await db
    .prepare(
      `SELECT t.family_id, t.expires_at, t.used_at, f.user_id, f.created_at AS family_created, f.revoked_at,
              u.status, u.tokens_valid_after
         FROM refresh_tokens t
         JOIN refresh_families f ON f.id = t.family_id
         JOIN users u ON u.id = f.user_id
        WHERE t.token_hash = ?`,
    )
    .bind(tokenHash)
    .first<{
      family_id: string;
      expires_at: number;
      used_at: number | null;
      user_id: string;
      family_created: number;
      revoked_at: number | null;
      status: string;
      tokens_valid_after: number;
    }>();
  if (row === null) return { ok: false, reason: "unknown" };
  if (row.revoked_at !== null) return { ok: false, reason: "revoked" };
  if (row.used_at !== null) {
    await revokeFamily(db, row.family_id, "reuse", now);
    return { ok: false, reason: "reuse" };
  }
  if (row.expires_at <= now) return { ok: false, reason: "expired" };
  if (row.status !== "active" || row.family_created < row.tokens_valid_after)
    return { ok: false, reason: "inactive" };

  const claimed = await db
    .prepare("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
    .bind(now, tokenHash)
    .run();
  if (claimed.meta.changes !== 1) {
    // Another request exchanged it between our read and this write: the same token was presented twice.
    await revokeFamily(db, row.family_id, "reuse", now);
    return { ok: false, reason: "reuse" };
  }
  const refresh = await newRefreshToken(config, row.family_id, now);
  await orm(db).insert(refreshTokens).values(refresh.row).run();
  return {
    ok: true,
    userId: row.user_id,
    tokens: {
      accessToken: await accessTokenFor(db, config, row.user_id, row.family_id, now),
      refreshToken: refresh.token,
      expiresIn: config.accessTokenTtlSecs,
      familyId: row.family_id,
    },
  };
}

/** Revokes one family (idempotent: a family keeps its first revocation time and reason). True if it changed. */
export async function revokeFamily(
  db: D1Database,
  familyId: string,
  reason: RevokeReason,
  now: number,
): Promise<boolean> {
  const result = await orm(db)
    .update(refreshFamilies)
    .set({ revokedAt: now, revokeReason: reason })
    .where(and(eq(refreshFamilies.id, familyId), isNull(refreshFamilies.revokedAt)))
    .run();
  return result.meta.changes > 0;
}

/**
 * Revokes the family the refresh token `presented` belongs to, if it is `userId`'s. True if a family changed.
 * A token of someone else's family is ignored, so a caller cannot probe or revoke other users' sessions.
 */
export async function revokeFamilyOfRefreshToken(
  db: D1Database,
  userId: string,
  presented: string,
  reason: RevokeReason,
  now: number,
): Promise<boolean> {
  const result = await db
    .prepare(
      `UPDATE refresh_families SET revoked_at = ?1, revoke_reason = ?2
        WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ?3) AND user_id = ?4 AND revoked_at IS NULL`,
    )
    .bind(now, reason, await sha256Hex(presented), userId)
    .run();
  return result.meta.changes > 0;
}

/**
 * Ends every session of a user: revokes all open families and sets tokens_valid_after = now, so access tokens
 * issued before now are refused too. One D1 batch (a transaction).
 */
export async function revokeAllUserSessions(
  db: D1Database,
  userId: string,
  reason: RevokeReason,
  now: number,
): Promise<void> {
  const d = orm(db);
  await d.batch([
    d
      .update(refreshFamilies)
      .set({ revokedAt: now, revokeReason: reason })
      .where(and(eq(refreshFamilies.userId, userId), isNull(refreshFamilies.revokedAt))),
    d.update(users).set({ tokensValidAfter: now, updatedAt: now }).where(eq(users.id, userId)),
  ]);
}

// ---- Login throttling -------------------------------------------------------------------------------------------

/** Rate-limit bucket of failed logins and step-up checks from one client address. */
export function addressFailureBucket(address: string | null): string {
  return `login-fail:${address ?? "unknown"}`;
}

/**
 * Rate-limit bucket of login attempts against one account, whatever the address. The email is keyed-hashed
 * (HMAC-SHA256 under the log hash key) so bucket names never carry an address book.
 */
export function accountAttemptBucket(logHashKey: string, email: string): string {
  return `login-account:${toHex(hmac(sha256, utf8(logHashKey), utf8(email)))}`;
}

/**
 * Refuses with 429 when the client address has no failure budget left. It only looks (a take of cost 0), so a
 * right password still spends nothing; note a cost-0 take always reports "allowed", so the whole tokens left decide.
 */
export async function checkAddressFailures(c: Context<AppEnv>): Promise<void> {
  const budget = c.get("config").lockout.addressFailures;
  const peek = await takeToken(c, addressFailureBucket(c.get("clientAddress")), budget, "closed", 0);
  if (peek !== null && peek.remaining < 1) {
    // One token comes back every window/limit seconds.
    const retryAfter = Math.max(1, Math.ceil(budget.windowSecs / budget.limit));
    throw new ApiError(429, "rate_limited", "too many failed attempts from this address; try again later", {
      "Retry-After": String(retryAfter),
    });
  }
}

/** Spends one token of the address failure budget (a wrong password or code). */
export async function recordAddressFailure(c: Context<AppEnv>): Promise<void> {
  await takeToken(
    c,
    addressFailureBucket(c.get("clientAddress")),
    c.get("config").lockout.addressFailures,
    "closed",
  );
}

/** Takes one attempt from the per-account budget (429 when spent), known account or not. */
export async function takeAccountAttempt(c: Context<AppEnv>, email: string): Promise<void> {
  const config = c.get("config");
  const result = await takeToken(
    c,
    accountAttemptBucket(config.logHashKey, email),
    config.rateLimits.account,
    "closed",
  );
  if (result !== null && !result.allowed) {
    throw new ApiError(429, "rate_limited", "too many login attempts for this account; try again later", {
      "Retry-After": String(result.retryAfterSecs),
    });
  }
}

/**
 * Counts a failed login against the account; the failure that reaches `threshold` locks it for `durationSecs` and
 * starts the count again. One UPDATE whose SET expressions all read the old row, so concurrent failures all count.
 */
export async function recordLoginFailure(
  db: D1Database,
  config: EdgeConfig,
  userId: string,
  now: number,
): Promise<void> {
  const { threshold, durationSecs } = config.lockout;
  await db
    .prepare(
      `UPDATE users
          SET failed_logins = CASE WHEN failed_logins + 1 >= ?1 THEN 0 ELSE failed_logins + 1 END,
              locked_until = CASE WHEN failed_logins + 1 >= ?1 THEN ?2 ELSE locked_until END,
              updated_at = ?3
        WHERE id = ?4`,
    )
    .bind(threshold, now + durationSecs * 1000, now, userId)
    .run();
}

/** Clears the failure count and any expired lock after a successful login. */
export async function clearLoginFailures(db: D1Database, userId: string, now: number): Promise<void> {
  await orm(db)
    .update(users)
    .set({ failedLogins: 0, lockedUntil: 0, updatedAt: now })
    .where(eq(users.id, userId))
    .run();
}
