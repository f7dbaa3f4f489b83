import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { bearerToken, TokenKind, type VerifiedToken, verifyToken } from "../services/tokens.ts";

const unauthorized = () =>
  new ApiError(401, "unauthorized", "authentication required", {
    "WWW-Authenticate": 'Bearer realm="wavry"',
  });

/**
 * Requires a user access token. Beyond the signature, the account must be active, the token must be newer than
 * the user's `tokens_valid_after` (bans, log-out-everywhere) and its refresh family must not be revoked.
 */
export function requireUser(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    if (token === null) throw unauthorized();
    const now = Date.now();
    const verified = await verifyToken(c.env.DB, c.get("config"), TokenKind.userAccess, token, now);
    const family = typeof verified.claims.fam === "string" ? verified.claims.fam : null;
    const row = await c.env.DB.prepare(
      `SELECT u.status, u.tokens_valid_after, f.id AS family_id, f.revoked_at AS family_revoked
         FROM users u LEFT JOIN refresh_families f ON f.id = ?2 AND f.user_id = u.id
        WHERE u.id = ?1`,
    )
      .bind(verified.sub, family)
      .first<{
        status: string;
        tokens_valid_after: number;
        family_id: string | null;
        family_revoked: number | null;
      }>();
    if (
      row === null ||
      family === null ||
      row.family_id === null ||
      row.status !== "active" ||
      issuedAtMs(verified) < row.tokens_valid_after ||
      row.family_revoked !== null
    ) {
      throw new ApiError(401, "invalid_token", "invalid or expired token", {
        "WWW-Authenticate": 'Bearer error="invalid_token"',
      });
    }
    c.set("principal", {
      kind: "user",
      userId: verified.sub,
      scopes: verified.scopes,
      tokenId: verified.jti,
      familyId: family,
    });
    await next();
  };
}

/** Requires a device access token for a device that is not revoked and whose owner is active. */
export function requireDevice(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    if (token === null) throw unauthorized();
    const now = Date.now();
    const verified = await verifyToken(c.env.DB, c.get("config"), TokenKind.deviceAccess, token, now);
    const row = await c.env.DB.prepare(
      `SELECT d.user_id, d.revoked_at, u.status, u.tokens_valid_after
         FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?`,
    )
      .bind(verified.sub)
      .first<{ user_id: string; revoked_at: number | null; status: string; tokens_valid_after: number }>();
    if (
      row === null ||
      row.revoked_at !== null ||
      row.status !== "active" ||
      issuedAtMs(verified) < row.tokens_valid_after
    ) {
      throw new ApiError(401, "invalid_token", "invalid or expired token", {
        "WWW-Authenticate": 'Bearer error="invalid_token"',
      });
    }
    c.set("principal", {
      kind: "device",
      deviceId: verified.sub,
      userId: row.user_id,
      tokenId: verified.jti,
    });
    await next();
  };
}

/**
 * When a token was issued, in milliseconds: the `ims` claim we add (so a token minted in the same second as, but
 * after, a "revoke all" stays valid), else `iat` seconds.
 */
function issuedAtMs(verified: VerifiedToken): number {
  const ims = verified.claims.ims;
  return typeof ims === "number" && Number.isSafeInteger(ims) && Math.floor(ims / 1000) === verified.iat
    ? ims
    : verified.iat * 1000;
}

/** The signed-in user's id (after requireUser). */
export function userIdOf(principal: AppEnv["Variables"]["principal"]): string {
  if (principal.kind !== "user") throw new ApiError(403, "forbidden", "a user token is required");
  return principal.userId;
}
