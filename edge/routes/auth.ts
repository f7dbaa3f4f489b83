import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { RandomSource } from "../../protocol/crypto/backend.ts";
import type { AppEnv } from "../app-env.ts";
import { users } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { type LogFields, logEvent } from "../log.ts";
import { requireUser, userIdOf } from "../middleware/auth.ts";
import { readJson } from "../middleware/body.ts";
import { rateLimit } from "../middleware/rate-limit.ts";
import {
  checkPasswordPolicy,
  DUMMY_PASSWORD_HASH,
  hashPassword,
  PASSWORD_MAX,
  PASSWORD_MIN,
  verifyPassword,
} from "../security/password.ts";
import { monitor } from "../services/monitor.ts";
import {
  checkAddressFailures,
  clearLoginFailures,
  createSession,
  recordAddressFailure,
  recordLoginFailure,
  revokeAllUserSessions,
  revokeFamily,
  revokeFamilyOfRefreshToken,
  rotateRefreshToken,
  type SessionTokens,
  takeAccountAttempt,
} from "../services/sessions.ts";
import { consumeTotpCode, TOTP_INVALID_MESSAGE, totpRoutes } from "./totp.ts";

const random: RandomSource = (n) => crypto.getRandomValues(new Uint8Array(n));

/** RFC 5321 §4.5.3.1.3 caps a path at 256 octets, so an address is at most 254. */
const EMAIL_MAX = 254;
/**
 * A deliberately simple syntax check: dot-atom local part (RFC 5322 §3.2.3 atext) and an ASCII domain with a dot.
 * It also keeps ':' and control characters out, which the otpauth label (TOTP) cannot carry.
 */
const EMAIL_PATTERN =
  /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

/** Trimmed and lower-cased, the one spelling stored and looked up. */
const normalizeEmail = (email: string) => email.trim().toLowerCase();

// Raw lengths are bounded only loosely here: the password policy and verifyPassword apply the exact rule.
const passwordField = z.string().max(4096);
const registerBody = z.object({
  email: z.string().trim().toLowerCase().max(EMAIL_MAX).regex(EMAIL_PATTERN),
  password: passwordField,
});
const loginBody = z.object({
  email: z.string().max(1024),
  password: passwordField,
  totpCode: z.string().max(16).optional(),
});
const refreshField = z.string().min(1).max(256);
const refreshBody = z.object({ refreshToken: refreshField });
const logoutBody = z.object({ refreshToken: refreshField.optional() });

const invalidCredentials = () => new ApiError(401, "unauthorized", "invalid email or password");

/** Counts a failed login for the monitor (issue 6): by user id when the account exists, never by email. */
const loginFailed = (c: Context<AppEnv>, userId: string | null, at: number) =>
  monitor(c, (range) => ({
    kind: "auth_failure",
    at,
    source: "login",
    account: userId === null ? null : `user:${userId}`,
    range,
  }));

/**
 * One `auth` line per account event (login, register, refresh): the request id, the client address and, where
 * known, the user id and the email, which the log helper turns into keyed hashes. Never the password or a code.
 */
function logAuth(
  c: Context<AppEnv>,
  event: string,
  outcome: "ok" | "failed" | "refused",
  fields: LogFields,
): void {
  logEvent(outcome === "ok" ? "info" : "warn", "auth", event, outcome, {
    requestId: c.get("requestId"),
    clientAddress: c.get("clientAddress"),
    ...fields,
  });
}

function tokenResponse(c: Context<AppEnv>, tokens: SessionTokens): Response {
  return c.json(
    {
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      expiresIn: tokens.expiresIn,
      tokenType: "Bearer",
    },
    200,
  );
}

/**
 * Account routes, mounted at /v1/auth. Every route (TOTP included) takes from the per-address "auth" budget, which
 * fails closed: when the limiter is unreachable these routes answer 503 rather than allow unthrottled password
 * guessing.
 *
 * - POST /register {email, password} -> 201 {userId}; 400 invalid_body (bad email, password outside 12..128 code
 *   points), 409 conflict (email taken; acceptable because registration is rate-limited per address).
 * - POST /login {email, password, totpCode?} -> 200 {accessToken, refreshToken, expiresIn, tokenType}; 401
 *   unauthorized for a wrong password and an unknown email alike (same body, one Argon2id run each); 401 "totp code
 *   required or invalid"; 403 forbidden for a suspended account (only once the password is right); 429
 *   rate_limited with Retry-After for a locked account (after lockout.threshold failures, for lockout.durationSecs;
 *   the password is not even checked), a spent per-address failure budget, or a spent per-account attempt budget.
 *   429 rather than 423 Locked: clients already back off on 429 + Retry-After, and 423 is a WebDAV status.
 * - POST /refresh {refreshToken} -> 200 with a rotated pair; 401 invalid_token for unknown, expired, revoked or
 *   reused tokens (reuse revokes the whole family).
 * - POST /logout [{refreshToken}] -> 204; revokes the access token's family, and the given refresh token's family.
 * - /totp/*: see totp.ts.
 */
export function authRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(
    "*",
    rateLimit("auth", (c) => c.get("config").rateLimits.auth, "closed"),
  );

  app.post("/register", async (c) => {
    const { email, password } = await readJson(c, registerBody);
    const violation = checkPasswordPolicy(password);
    if (violation !== null) {
      throw new ApiError(
        400,
        "invalid_body",
        `password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters long`,
      );
    }
    const now = Date.now();
    const userId = crypto.randomUUID();
    const inserted = await drizzle(c.env.DB)
      .insert(users)
      .values({
        id: userId,
        email,
        passwordHash: hashPassword(password, random),
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing({ target: users.email })
      .run();
    if (inserted.meta.changes !== 1) {
      logAuth(c, "register", "refused", { email, reason: "conflict" });
      throw new ApiError(409, "conflict", "an account with this email already exists");
    }
    logAuth(c, "register", "ok", { userId, email });
    return c.json({ userId }, 201);
  });

  app.post("/login", async (c) => {
    const body = await readJson(c, loginBody);
    const config = c.get("config");
    const email = normalizeEmail(body.email);
    await checkAddressFailures(c);
    await takeAccountAttempt(c, email);
    const now = Date.now();
    const user = await drizzle(c.env.DB)
      .select({
        id: users.id,
        passwordHash: users.passwordHash,
        status: users.status,
        lockedUntil: users.lockedUntil,
        totpSecret: users.totpSecret,
        totpLastStep: users.totpLastStep,
      })
      .from(users)
      .where(eq(users.email, email))
      .get();
    if (user !== undefined && user.lockedUntil > now) {
      const retryAfter = Math.max(1, Math.ceil((user.lockedUntil - now) / 1000));
      logAuth(c, "login", "refused", { userId: user.id, email, reason: "locked" });
      throw new ApiError(429, "rate_limited", "too many failed logins; the account is locked for a while", {
        "Retry-After": String(retryAfter),
      });
    }
    // Unknown users verify against the dummy hash: one Argon2id run either way, so time does not tell them apart.
    const passwordOk = verifyPassword(body.password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
    if (user === undefined || !passwordOk) {
      if (user !== undefined) await recordLoginFailure(c.env.DB, config, user.id, now);
      await recordAddressFailure(c);
      loginFailed(c, user?.id ?? null, now);
      logAuth(c, "login", "failed", { userId: user?.id ?? null, email, reason: "password" });
      throw invalidCredentials();
    }
    if (user.status !== "active") {
      // The right password of a suspended account: make sure nothing it holds still works.
      await revokeAllUserSessions(c.env.DB, user.id, "suspended", now);
      logAuth(c, "login", "refused", { userId: user.id, email, reason: "suspended" });
      throw new ApiError(403, "forbidden", "account suspended");
    }
    if (user.totpSecret !== null) {
      const ok =
        body.totpCode !== undefined &&
        (await consumeTotpCode(
          c.env.DB,
          config,
          { ...user, totpSecret: user.totpSecret },
          body.totpCode,
          now,
        ));
      if (!ok) {
        await recordLoginFailure(c.env.DB, config, user.id, now);
        await recordAddressFailure(c);
        loginFailed(c, user.id, now);
        logAuth(c, "login", "failed", { userId: user.id, email, reason: "totp" });
        throw new ApiError(401, "unauthorized", TOTP_INVALID_MESSAGE);
      }
    }
    // The account's failure count resets; the address's failure budget does not: an attacker who owns one account
    // must not refill the budget it spends guessing other accounts' passwords.
    await clearLoginFailures(c.env.DB, user.id, now);
    logAuth(c, "login", "ok", { userId: user.id, email });
    return tokenResponse(c, await createSession(c.env.DB, config, user.id, now));
  });

  app.post("/refresh", async (c) => {
    const { refreshToken } = await readJson(c, refreshBody);
    const result = await rotateRefreshToken(c.env.DB, c.get("config"), refreshToken, Date.now());
    if (!result.ok) {
      // A reused refresh token revoked its whole family: the sign of a stolen token (SECURITY.md).
      logAuth(c, result.reason === "reuse" ? "refresh_reuse" : "refresh", "failed", {
        reason: result.reason,
      });
      throw new ApiError(401, "invalid_token", "invalid or expired refresh token", {
        "WWW-Authenticate": 'Bearer error="invalid_token"',
      });
    }
    return tokenResponse(c, result.tokens);
  });

  app.post("/logout", requireUser(), async (c) => {
    const userId = userIdOf(c.get("principal"));
    // The body is optional: only a request that declares one is parsed (and then strictly).
    const body: z.infer<typeof logoutBody> =
      c.req.header("content-type") === undefined ? {} : await readJson(c, logoutBody);
    const now = Date.now();
    const principal = c.get("principal");
    if (principal.kind === "user") await revokeFamily(c.env.DB, principal.familyId, "logout", now);
    if (body.refreshToken !== undefined) {
      await revokeFamilyOfRefreshToken(c.env.DB, userId, body.refreshToken, "logout", now);
    }
    return c.body(null, 204);
  });

  app.route("/totp", totpRoutes());
  return app;
}
