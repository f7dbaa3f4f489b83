import { env } from "cloudflare:workers";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { type EdgeBindings, type EdgeConfig, loadConfig } from "../../edge/env.ts";
import { hashPassword } from "../../edge/security/password.ts";
import { sha256Hex } from "../../edge/security/tokens-util.ts";
import { base32Decode, totpCode } from "../../edge/security/totp.ts";
import { accountAttemptBucket, addressFailureBucket } from "../../edge/services/sessions.ts";
import { type CallResult, call, errorCode, freshAddress, unique } from "./helpers.ts";

// One Argon2id hash (~200 ms) shared by every user these tests insert directly, so only the tests about
// registration pay for hashing on the way in.
const PASSWORD = "correct horse battery staple";
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
let passwordHash = "";
let config: EdgeConfig;

beforeAll(() => {
  passwordHash = hashPassword(PASSWORD, random);
  const loaded = loadConfig(env as unknown as EdgeBindings);
  if (!loaded.ok) throw new Error(`test configuration is invalid: ${loaded.problems.join("; ")}`);
  config = loaded.config;
});

interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  tokenType: string;
}

async function createUser(): Promise<{ id: string; email: string }> {
  const id = crypto.randomUUID();
  const email = `${unique("user")}@example.com`;
  const now = Date.now();
  await env.DB.prepare(
    "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
  )
    .bind(id, email, passwordHash, now, now)
    .run();
  return { id, email };
}

function login(body: Record<string, unknown>, address = freshAddress()): Promise<CallResult> {
  return call("/v1/auth/login", { body, address });
}

async function loginOk(email: string, extra: Record<string, unknown> = {}): Promise<Tokens> {
  const response = await login({ email, password: PASSWORD, ...extra });
  expect(response.status).toBe(200);
  return response.json as unknown as Tokens;
}

function refresh(refreshToken: string): Promise<CallResult> {
  return call("/v1/auth/refresh", { body: { refreshToken }, address: freshAddress() });
}

/**
 * Whether requireUser accepts an access token, without side effects: TOTP confirm answers 400 (nothing pending) or
 * 409 once authenticated, and 401 when the token is refused.
 */
async function accepted(token: string): Promise<boolean> {
  const response = await call("/v1/auth/totp/confirm", {
    body: { code: "000000" },
    token,
    address: freshAddress(),
  });
  expect([400, 401, 409]).toContain(response.status);
  return response.status !== 401;
}

function limiter(key: string) {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(key));
}

async function userRow(id: string) {
  const row = await env.DB.prepare(
    "SELECT status, failed_logins, locked_until, tokens_valid_after, totp_secret, totp_pending, totp_last_step FROM users WHERE id = ?",
  )
    .bind(id)
    .first<{
      status: string;
      failed_logins: number;
      locked_until: number;
      tokens_valid_after: number;
      totp_secret: string | null;
      totp_pending: string | null;
      totp_last_step: number | null;
    }>();
  if (row === null) throw new Error("user row missing");
  return row;
}

describe("POST /v1/auth/register", () => {
  it("creates an account with a normalized email, and refuses the same email in another case with 409", async () => {
    const local = unique("Reg");
    const response = await call("/v1/auth/register", {
      body: { email: `  ${local}@Example.COM `, password: PASSWORD },
      address: freshAddress(),
    });
    expect(response.status).toBe(201);
    const { userId } = response.json as { userId: string };
    const row = await env.DB.prepare("SELECT email, password_hash FROM users WHERE id = ?")
      .bind(userId)
      .first<{ email: string; password_hash: string }>();
    expect(row?.email).toBe(`${local.toLowerCase()}@example.com`);
    expect(row?.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);

    const again = await call("/v1/auth/register", {
      body: { email: `${local.toLowerCase()}@example.com`, password: `${PASSWORD}!` },
      address: freshAddress(),
    });
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe("conflict");

    // The stored account logs in with the address typed another way.
    await loginOk(` ${local.toUpperCase()}@EXAMPLE.com`);
  });

  it("enforces the password policy in code points (12..128) with a message that states the rule", async () => {
    const email = () => `${unique("pw")}@example.com`;
    for (const password of ["short-pw-11", "x".repeat(129), "😀".repeat(129), ""]) {
      const response = await call("/v1/auth/register", {
        body: { email: email(), password },
        address: freshAddress(),
      });
      expect(response.status).toBe(400);
      expect(response.json).toEqual({
        error: { code: "invalid_body", message: "password must be 12 to 128 characters long" },
      });
    }
    // 128 emoji are 256 UTF-16 units but 128 code points: accepted.
    const ok = await call("/v1/auth/register", {
      body: { email: email(), password: "😀".repeat(128) },
      address: freshAddress(),
    });
    expect(ok.status).toBe(201);
  });

  it("refuses malformed emails and bodies with 400 invalid_body and creates nothing", async () => {
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM users").first<{ n: number }>();
    const bodies: unknown[] = [
      { email: "no-at-sign", password: PASSWORD },
      { email: "a@b", password: PASSWORD },
      { email: "a b@example.com", password: PASSWORD },
      { email: "a:b@example.com", password: PASSWORD },
      { email: "a@@example.com", password: PASSWORD },
      { email: `${"a".repeat(243)}@example.com`, password: PASSWORD },
      { email: 42, password: PASSWORD },
      { email: `${unique("x")}@example.com` },
      { password: PASSWORD },
      [],
    ];
    for (const body of bodies) {
      const response = await call("/v1/auth/register", { body, address: freshAddress() });
      expect(response.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(errorCode(response)).toBe("invalid_body");
    }
    const after = await env.DB.prepare("SELECT COUNT(*) AS n FROM users").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });
});

describe("POST /v1/auth/login", () => {
  it("returns an access token for the account's family and an opaque refresh token", async () => {
    const user = await createUser();
    const tokens = await loginOk(user.email);
    expect(tokens.tokenType).toBe("Bearer");
    expect(tokens.expiresIn).toBe(config.accessTokenTtlSecs);
    expect(tokens.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(decodeProtectedHeader(tokens.accessToken)).toMatchObject({
      alg: "EdDSA",
      typ: "wavry-user-access+jwt",
    });
    const claims = decodeJwt(tokens.accessToken);
    expect(claims.sub).toBe(user.id);
    const family = await env.DB.prepare("SELECT user_id, revoked_at FROM refresh_families WHERE id = ?")
      .bind(claims.fam)
      .first<{ user_id: string; revoked_at: number | null }>();
    expect(family).toEqual({ user_id: user.id, revoked_at: null });
    // Only the hash of the refresh token is stored.
    const stored = await env.DB.prepare("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
      .bind(await sha256Hex(tokens.refreshToken))
      .first<{ family_id: string }>();
    expect(stored?.family_id).toBe(claims.fam);
    expect(await accepted(tokens.accessToken)).toBe(true);
  });

  it("answers a wrong password and an unknown email identically, in comparable time", async () => {
    const user = await createUser();
    const address = freshAddress();
    const wrong: number[] = [];
    const unknown: number[] = [];
    let wrongResponse: CallResult | undefined;
    let unknownResponse: CallResult | undefined;
    for (let i = 0; i < 3; i++) {
      let start = performance.now();
      wrongResponse = await login({ email: user.email, password: "not the right password" }, address);
      wrong.push(performance.now() - start);
      start = performance.now();
      unknownResponse = await login(
        { email: `${unique("nobody")}@example.com`, password: "not the right password" },
        address,
      );
      unknown.push(performance.now() - start);
    }
    expect(wrongResponse?.status).toBe(401);
    expect(unknownResponse?.status).toBe(401);
    expect(wrongResponse?.json).toEqual({
      error: { code: "unauthorized", message: "invalid email or password" },
    });
    expect(unknownResponse?.json).toEqual(wrongResponse?.json);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] ?? Number.NaN;
    const [w, u] = [median(wrong), median(unknown)];
    // Both run one Argon2id (~200 ms); without the dummy hash the unknown path would take a few ms.
    expect(w).toBeGreaterThan(20);
    expect(u).toBeGreaterThan(20);
    expect(Math.max(w, u) / Math.min(w, u)).toBeLessThan(3);
  });

  it("locks the account after the threshold: even the right password is refused with 429 until the lock ends", async () => {
    const user = await createUser();
    for (let i = 0; i < config.lockout.threshold; i++) {
      const response = await login({ email: user.email, password: `wrong password ${i}` });
      expect(response.status).toBe(401);
    }
    expect((await userRow(user.id)).locked_until).toBeGreaterThan(Date.now());
    const locked = await login({ email: user.email, password: PASSWORD });
    expect(locked.status).toBe(429);
    expect(errorCode(locked)).toBe("rate_limited");
    const retryAfter = Number(locked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(config.lockout.durationSecs);

    // Once the lock has run out, the right password works and the counters are cleared.
    await env.DB.prepare("UPDATE users SET locked_until = ? WHERE id = ?")
      .bind(Date.now() - 1, user.id)
      .run();
    await loginOk(user.email);
    const row = await userRow(user.id);
    expect(row.failed_logins).toBe(0);
    expect(row.locked_until).toBe(0);
  });

  it("a failure below the threshold is forgotten after a successful login", async () => {
    const user = await createUser();
    expect((await login({ email: user.email, password: "wrong password" })).status).toBe(401);
    expect((await userRow(user.id)).failed_logins).toBe(1);
    await loginOk(user.email);
    expect((await userRow(user.id)).failed_logins).toBe(0);
  });

  it("refuses an address whose failure budget is spent, before checking the password; success does not refill it", async () => {
    const user = await createUser();
    const { limit, windowSecs } = config.lockout.addressFailures;
    const address = freshAddress();
    // Leave exactly one failure in this address's budget.
    await limiter(addressFailureBucket(address)).take(limit, windowSecs, limit - 1);
    expect((await login({ email: user.email, password: "wrong password" }, address)).status).toBe(401);
    const refused = await login({ email: user.email, password: PASSWORD }, address);
    expect(refused.status).toBe(429);
    expect(errorCode(refused)).toBe("rate_limited");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // An unknown email from that address gets the same answer: the budget is per address, not per account.
    const unknownEmail = await login(
      { email: `${unique("nobody")}@example.com`, password: PASSWORD },
      address,
    );
    expect(unknownEmail.status).toBe(429);

    // Another address is unaffected. Its successful login leaves its failure budget as it was: an attacker who owns
    // one account cannot refill the budget it spends guessing other accounts' passwords.
    const other = freshAddress();
    await limiter(addressFailureBucket(other)).take(limit, windowSecs, 5);
    expect((await login({ email: user.email, password: PASSWORD }, other)).status).toBe(200);
    expect((await limiter(addressFailureBucket(other)).take(limit, windowSecs, 0)).remaining).toBe(limit - 5);
  });

  it("limits attempts per account whatever the address, for known and unknown emails alike", async () => {
    const user = await createUser();
    const unknownEmail = `${unique("nobody")}@example.com`;
    const { limit, windowSecs } = config.rateLimits.account;
    for (const email of [user.email, unknownEmail]) {
      await limiter(accountAttemptBucket(config.logHashKey, email)).take(limit, windowSecs, limit);
      const response = await login({ email, password: PASSWORD });
      expect(response.status).toBe(429);
      expect(errorCode(response)).toBe("rate_limited");
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
  });

  it("refuses a suspended account only once the password is right, and revokes its sessions", async () => {
    const user = await createUser();
    const first = await loginOk(user.email);
    const second = await loginOk(user.email);
    await env.DB.prepare("UPDATE users SET status = 'suspended' WHERE id = ?").bind(user.id).run();

    const wrong = await login({ email: user.email, password: "wrong password" });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual({ error: { code: "unauthorized", message: "invalid email or password" } });
    // A wrong password changes nothing yet: the families are still open.
    const open = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM refresh_families WHERE user_id = ? AND revoked_at IS NULL",
    )
      .bind(user.id)
      .first<{ n: number }>();
    expect(open?.n).toBe(2);

    const right = await login({ email: user.email, password: PASSWORD });
    expect(right.status).toBe(403);
    expect(right.json).toEqual({ error: { code: "forbidden", message: "account suspended" } });

    const { results } = await env.DB.prepare(
      "SELECT revoked_at, revoke_reason FROM refresh_families WHERE user_id = ?",
    )
      .bind(user.id)
      .all<{ revoked_at: number | null; revoke_reason: string | null }>();
    expect(results).toHaveLength(2);
    for (const family of results) {
      expect(family.revoked_at).not.toBeNull();
      expect(family.revoke_reason).toBe("suspended");
    }
    expect((await userRow(user.id)).tokens_valid_after).toBeGreaterThan(0);
    for (const tokens of [first, second]) {
      expect((await refresh(tokens.refreshToken)).status).toBe(401);
    }
    // Still refused after reinstatement: the families are revoked for good.
    await env.DB.prepare("UPDATE users SET status = 'active' WHERE id = ?").bind(user.id).run();
    for (const tokens of [first, second]) {
      expect(await accepted(tokens.accessToken)).toBe(false);
      expect((await refresh(tokens.refreshToken)).status).toBe(401);
    }
  });

  it("refuses malformed login bodies with 400 and never a 5xx", async () => {
    for (const body of [
      {},
      { email: "a@example.com" },
      { email: 1, password: PASSWORD },
      { email: "a@example.com", password: PASSWORD, totpCode: 123456 },
    ]) {
      const response = await login(body);
      expect(response.status).toBe(400);
      expect(errorCode(response)).toBe("invalid_body");
    }
    const notJson = await call("/v1/auth/login", { raw: "{", address: freshAddress() });
    expect(notJson.status).toBe(400);
  });
});

describe("TOTP", () => {
  const STEP_MS = 30_000;
  const codeAt = (secret: Uint8Array, offset = 0) =>
    totpCode(secret, Math.floor(Date.now() / STEP_MS) + offset);

  it("enroll, confirm, login with a code, refuse the same code again, disable with a fresh code", async () => {
    const user = await createUser();
    const session = await loginOk(user.email);
    const token = session.accessToken;

    const badPassword = await call("/v1/auth/totp/enroll", {
      body: { password: "wrong password" },
      token,
      address: freshAddress(),
    });
    expect(badPassword.status).toBe(401);
    expect(errorCode(badPassword)).toBe("unauthorized");
    expect((await userRow(user.id)).totp_pending).toBeNull();

    const enrolled = await call("/v1/auth/totp/enroll", {
      body: { password: PASSWORD },
      token,
      address: freshAddress(),
    });
    expect(enrolled.status).toBe(200);
    const { secret: secretText, otpauthUri } = enrolled.json as { secret: string; otpauthUri: string };
    expect(otpauthUri).toBe(
      `otpauth://totp/Wavry:${encodeURIComponent(user.email)}?secret=${secretText}&issuer=Wavry&algorithm=SHA1&digits=6&period=30`,
    );
    const secret = base32Decode(secretText);
    if (secret === null) throw new Error("secret is not base32");
    const pending = await userRow(user.id);
    expect(pending.totp_secret).toBeNull();
    // Sealed at rest under the versioned key ring, never in clear.
    expect(pending.totp_pending).toMatch(/^v1\.[A-Za-z0-9_-]+\./);
    expect(pending.totp_pending).not.toContain(secretText);

    // Not enabled yet: a login needs no code.
    await loginOk(user.email);

    const wrongCode = codeAt(secret) === "000000" ? "111111" : "000000";
    const badConfirm = await call("/v1/auth/totp/confirm", {
      body: { code: wrongCode },
      token,
      address: freshAddress(),
    });
    expect(badConfirm.status).toBe(400);
    const confirmed = await call("/v1/auth/totp/confirm", {
      body: { code: codeAt(secret, -1) },
      token,
      address: freshAddress(),
    });
    expect(confirmed.status).toBe(204);
    const enabled = await userRow(user.id);
    expect(enabled.totp_secret).toBe(pending.totp_pending);
    expect(enabled.totp_pending).toBeNull();
    expect(enabled.totp_last_step).not.toBeNull();

    const again = await call("/v1/auth/totp/enroll", {
      body: { password: PASSWORD },
      token,
      address: freshAddress(),
    });
    expect(again.status).toBe(409);

    const noCode = await login({ email: user.email, password: PASSWORD });
    expect(noCode.status).toBe(401);
    expect(noCode.json).toEqual({
      error: { code: "unauthorized", message: "totp code required or invalid" },
    });
    const badCode = await login({ email: user.email, password: PASSWORD, totpCode: "12345" });
    expect(badCode.status).toBe(401);
    expect((await userRow(user.id)).failed_logins).toBe(2);

    const code = codeAt(secret);
    await loginOk(user.email, { totpCode: code });
    expect((await userRow(user.id)).failed_logins).toBe(0);
    const reused = await login({ email: user.email, password: PASSWORD, totpCode: code });
    expect(reused.status).toBe(401);
    expect(errorCode(reused)).toBe("unauthorized");

    const disableReused = await call("/v1/auth/totp/disable", {
      body: { code },
      token,
      address: freshAddress(),
    });
    expect(disableReused.status).toBe(401);
    const disableBadPassword = await call("/v1/auth/totp/disable", {
      body: { password: "wrong password" },
      token,
      address: freshAddress(),
    });
    expect(disableBadPassword.status).toBe(401);
    const disabled = await call("/v1/auth/totp/disable", {
      body: { code: codeAt(secret, 1) },
      token,
      address: freshAddress(),
    });
    expect(disabled.status).toBe(204);
    expect((await userRow(user.id)).totp_secret).toBeNull();
    await loginOk(user.email);
  });

  it("disables with the password, and refuses what makes no sense with 400/401/409", async () => {
    const user = await createUser();
    const { accessToken: token } = await loginOk(user.email);
    const post = (path: string, body: unknown, withToken = true) =>
      call(`/v1/auth/totp/${path}`, { body, address: freshAddress(), ...(withToken && { token }) });

    expect((await post("confirm", { code: "123456" })).status).toBe(400);
    expect((await post("disable", { password: PASSWORD })).status).toBe(409);
    expect((await post("enroll", { password: PASSWORD }, false)).status).toBe(401);
    expect((await post("confirm", { code: "123456" }, false)).status).toBe(401);
    expect((await post("disable", { code: "123456" }, false)).status).toBe(401);
    expect((await post("enroll", {})).status).toBe(400);

    const enrolled = await post("enroll", { password: PASSWORD });
    const secret = base32Decode((enrolled.json as { secret: string }).secret);
    if (secret === null) throw new Error("secret is not base32");
    expect((await post("confirm", { code: codeAt(secret) })).status).toBe(204);
    expect((await post("disable", { password: PASSWORD, code: codeAt(secret, 1) })).status).toBe(400);
    expect((await post("disable", {})).status).toBe(400);
    expect((await post("disable", { password: PASSWORD })).status).toBe(204);
    const row = await userRow(user.id);
    expect(row.totp_secret).toBeNull();
    expect(row.totp_pending).toBeNull();
  });
});

describe("POST /v1/auth/refresh", () => {
  it("rotates: each refresh token works once and yields a new pair in the same family", async () => {
    const user = await createUser();
    const first = await loginOk(user.email);
    const family = decodeJwt(first.accessToken).fam;

    const r2 = await refresh(first.refreshToken);
    expect(r2.status).toBe(200);
    const second = r2.json as unknown as Tokens;
    expect(second.tokenType).toBe("Bearer");
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(decodeJwt(second.accessToken).fam).toBe(family);
    expect(decodeJwt(second.accessToken).sub).toBe(user.id);

    const r3 = await refresh(second.refreshToken);
    expect(r3.status).toBe(200);
    const third = r3.json as unknown as Tokens;
    expect(await accepted(third.accessToken)).toBe(true);
    // Rotation by itself does not end the older access tokens (they are short-lived).
    expect(await accepted(first.accessToken)).toBe(true);
  });

  it("a reused refresh token revokes the whole family: the newest token and its access tokens stop working", async () => {
    const user = await createUser();
    const first = await loginOk(user.email);
    const second = (await refresh(first.refreshToken)).json as unknown as Tokens;
    expect(await accepted(second.accessToken)).toBe(true);

    const reuse = await refresh(first.refreshToken);
    expect(reuse.status).toBe(401);
    expect(errorCode(reuse)).toBe("invalid_token");
    const family = await env.DB.prepare("SELECT revoked_at, revoke_reason FROM refresh_families WHERE id = ?")
      .bind(decodeJwt(first.accessToken).fam)
      .first<{ revoked_at: number | null; revoke_reason: string | null }>();
    expect(family?.revoked_at).not.toBeNull();
    expect(family?.revoke_reason).toBe("reuse");

    expect((await refresh(second.refreshToken)).status).toBe(401);
    const logout = await call("/v1/auth/logout", {
      method: "POST",
      token: second.accessToken,
      address: freshAddress(),
    });
    expect(logout.status).toBe(401);
    expect(await accepted(first.accessToken)).toBe(false);

    // Another session of the same user is untouched.
    const other = await loginOk(user.email);
    expect(await accepted(other.accessToken)).toBe(true);
  });

  it("refuses expired, unknown and malformed refresh tokens", async () => {
    const user = await createUser();
    const tokens = await loginOk(user.email);
    await env.DB.prepare("UPDATE refresh_tokens SET expires_at = ? WHERE token_hash = ?")
      .bind(Date.now() - 1, await sha256Hex(tokens.refreshToken))
      .run();
    const expired = await refresh(tokens.refreshToken);
    expect(expired.status).toBe(401);
    expect(errorCode(expired)).toBe("invalid_token");

    const unknown = await refresh("A".repeat(43));
    expect(unknown.status).toBe(401);
    expect(unknown.json).toEqual(expired.json);
    // An access token is not a refresh token.
    expect((await refresh(tokens.accessToken.slice(0, 256))).status).toBe(401);

    for (const body of [{}, { refreshToken: "" }, { refreshToken: "x".repeat(257) }, { refreshToken: 5 }]) {
      const response = await call("/v1/auth/refresh", { body, address: freshAddress() });
      expect(response.status).toBe(400);
      expect(errorCode(response)).toBe("invalid_body");
    }
  });
});

describe("POST /v1/auth/logout", () => {
  it("revokes the caller's family, and with {refreshToken} that token's family too", async () => {
    const user = await createUser();
    const a = await loginOk(user.email);
    const b = await loginOk(user.email);
    const c = await loginOk(user.email);

    const out = await call("/v1/auth/logout", {
      method: "POST",
      token: a.accessToken,
      address: freshAddress(),
    });
    expect(out.status).toBe(204);
    expect(await accepted(a.accessToken)).toBe(false);
    expect((await refresh(a.refreshToken)).status).toBe(401);
    expect(await accepted(b.accessToken)).toBe(true);

    const both = await call("/v1/auth/logout", {
      body: { refreshToken: c.refreshToken },
      token: b.accessToken,
      address: freshAddress(),
    });
    expect(both.status).toBe(204);
    expect(await accepted(b.accessToken)).toBe(false);
    expect(await accepted(c.accessToken)).toBe(false);
    expect((await refresh(c.refreshToken)).status).toBe(401);
  });

  it("needs a valid access token, and cannot revoke another user's family", async () => {
    const noToken = await call("/v1/auth/logout", { method: "POST", address: freshAddress() });
    expect(noToken.status).toBe(401);
    expect(errorCode(noToken)).toBe("unauthorized");
    const garbage = await call("/v1/auth/logout", {
      method: "POST",
      token: "not.a.jwt",
      address: freshAddress(),
    });
    expect(garbage.status).toBe(401);

    const alice = await loginOk((await createUser()).email);
    const bob = await loginOk((await createUser()).email);
    const response = await call("/v1/auth/logout", {
      body: { refreshToken: bob.refreshToken },
      token: alice.accessToken,
      address: freshAddress(),
    });
    expect(response.status).toBe(204);
    expect(await accepted(bob.accessToken)).toBe(true);
    expect((await refresh(bob.refreshToken)).status).toBe(200);

    const badBody = await call("/v1/auth/logout", {
      body: { refreshToken: 7 },
      token: bob.accessToken,
      address: freshAddress(),
    });
    expect(badBody.status).toBe(400);
  });
});
