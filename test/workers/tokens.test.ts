import { env } from "cloudflare:workers";
import {
  base64url,
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { type EdgeBindings, type EdgeConfig, loadConfig } from "../../edge/env.ts";
import { hashPassword } from "../../edge/security/password.ts";
import { currentSigningKey, rotateSigningKeys } from "../../edge/services/signing-keys.ts";
import { TokenKind } from "../../edge/services/tokens.ts";
import { utf8 } from "../../protocol/bytes.ts";
import { call, errorCode, freshAddress, unique } from "./helpers.ts";

const PASSWORD = "correct horse battery staple";
let config: EdgeConfig;
let session: { accessToken: string; refreshToken: string };
let claims: JWTPayload;

beforeAll(async () => {
  const loaded = loadConfig(env as unknown as EdgeBindings);
  if (!loaded.ok) throw new Error(`test configuration is invalid: ${loaded.problems.join("; ")}`);
  config = loaded.config;
  const id = crypto.randomUUID();
  const email = `${unique("tokens")}@example.com`;
  const hash = hashPassword(PASSWORD, (n) => crypto.getRandomValues(new Uint8Array(n)));
  await env.DB.prepare(
    "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
  )
    .bind(id, email, hash, Date.now(), Date.now())
    .run();
  session = await login(email);
  claims = decodeJwt(session.accessToken);
});

async function login(email: string): Promise<{ accessToken: string; refreshToken: string }> {
  const response = await call("/v1/auth/login", {
    body: { email, password: PASSWORD },
    address: freshAddress(),
  });
  expect(response.status).toBe(200);
  return response.json as unknown as { accessToken: string; refreshToken: string };
}

/**
 * Status of a requireUser route for `token`, without side effects: TOTP confirm answers 400 (nothing pending) to an
 * accepted token and 401 to a refused one.
 */
async function statusFor(token: string): Promise<number> {
  const response = await call("/v1/auth/totp/confirm", {
    body: { code: "000000" },
    token,
    address: freshAddress(),
  });
  if (response.status === 401) expect(errorCode(response)).toMatch(/^(invalid_token|unauthorized)$/);
  return response.status;
}

interface Forge {
  readonly header?: Record<string, unknown>;
  readonly payload?: Record<string, unknown>;
  /** Seconds relative to now. */
  readonly iat?: number;
  readonly exp?: number;
  readonly key?: CryptoKey | Uint8Array;
}

/** A user access token like the edge's own, signed with the current key unless `key` says otherwise. */
async function forge(options: Forge = {}): Promise<string> {
  const current = await currentSigningKey(env.DB, config.signingKeyWrapKeys, Date.now());
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    iss: config.issuer,
    aud: TokenKind.userAccess.audience,
    sub: String(claims.sub),
    jti: crypto.randomUUID(),
    iat: now + (options.iat ?? 0),
    exp: now + (options.exp ?? 300),
    fam: claims.fam,
    scope: claims.scope,
    ...options.payload,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "EdDSA", kid: current.kid, typ: TokenKind.userAccess.typ, ...options.header })
    .sign(options.key ?? current.key);
}

async function jwks(): Promise<JWK[]> {
  const response = await call("/.well-known/jwks.json", { address: freshAddress() });
  expect(response.status).toBe(200);
  return (response.json as { keys: JWK[] }).keys;
}

describe("access token verification (requireUser)", () => {
  it("accepts the edge's own token and a well-formed forgery with the current key (the controls)", async () => {
    expect(await statusFor(session.accessToken)).toBe(400);
    expect(await statusFor(await forge())).toBe(400);
  });

  it("refuses an expired token", async () => {
    expect(await statusFor(await forge({ iat: -7200, exp: -3600 }))).toBe(401);
    // Just past the 5 s clock tolerance.
    expect(await statusFor(await forge({ iat: -700, exp: -30 }))).toBe(401);
  });

  it("refuses a wrong audience, type, issuer or subject", async () => {
    expect(await statusFor(await forge({ payload: { aud: TokenKind.deviceAccess.audience } }))).toBe(401);
    expect(await statusFor(await forge({ header: { typ: "JWT" } }))).toBe(401);
    expect(await statusFor(await forge({ header: { typ: TokenKind.deviceAccess.typ } }))).toBe(401);
    expect(await statusFor(await forge({ payload: { iss: "https://evil.example" } }))).toBe(401);
    expect(await statusFor(await forge({ payload: { sub: crypto.randomUUID() } }))).toBe(401);
  });

  it("refuses alg none", async () => {
    const current = decodeProtectedHeader(session.accessToken);
    const encode = (value: unknown) => base64url.encode(JSON.stringify(value));
    const body = encode({ ...claims, jti: crypto.randomUUID() });
    for (const alg of ["none", "None", "NONE"]) {
      const header = encode({ alg, kid: current.kid, typ: TokenKind.userAccess.typ });
      expect(await statusFor(`${header}.${body}.`)).toBe(401);
      // The same with the genuine signature still attached.
      expect(await statusFor(`${header}.${body}.${session.accessToken.split(".")[2]}`)).toBe(401);
    }
  });

  it("refuses HS256 tokens whose HMAC secret is the published public key (algorithm confusion)", async () => {
    const kid = decodeProtectedHeader(session.accessToken).kid;
    const jwk = (await jwks()).find((k) => k.kid === kid);
    if (jwk?.x === undefined) throw new Error("current key missing from the JWKS");
    const secrets = [base64url.decode(jwk.x), utf8(jwk.x), utf8(JSON.stringify(jwk))];
    for (const secret of secrets) {
      expect(await statusFor(await forge({ header: { alg: "HS256" }, key: secret }))).toBe(401);
    }
  });

  it("refuses an unknown kid, and a key that is not the one its kid names", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    expect(await statusFor(await forge({ header: { kid: "kunknown0001" }, key: privateKey }))).toBe(401);
    expect(await statusFor(await forge({ key: privateKey }))).toBe(401);
    expect(await statusFor(await forge({ header: { kid: undefined } }))).toBe(401);
  });

  it("refuses a refresh token, or a tampered token, presented as an access token", async () => {
    expect(await statusFor(session.refreshToken)).toBe(401);
    const [h, p, s] = session.accessToken.split(".");
    const tampered = base64url.encode(
      JSON.stringify({ ...decodeJwt(session.accessToken), sub: "someone-else" }),
    );
    expect(await statusFor(`${h}.${tampered}.${s}`)).toBe(401);
    // A different signature whatever the original ends with (a fixed "AA" is the original one time in 256).
    const signature = s ?? "";
    const forged = `${signature.slice(0, -2)}${signature.endsWith("AA") ? "BA" : "AA"}`;
    expect(forged).not.toBe(signature);
    expect(await statusFor(`${h}.${p}.${forged}`)).toBe(401);
  });
});

describe("signing keys and rotation", () => {
  it("publishes current and next public keys with kid, and never a private part", async () => {
    const keys = await jwks();
    expect(keys).toHaveLength(2);
    const kid = decodeProtectedHeader(session.accessToken).kid;
    expect(keys[0]?.kid).toBe(kid);
    expect(new Set(keys.map((k) => k.kid)).size).toBe(2);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
      expect(typeof key.kid).toBe("string");
      expect(key).not.toHaveProperty("d");
    }
  });

  it("a token of the previous key works after one rotation; after a second rotation the retired key verifies nothing", async () => {
    const before = await jwks();
    const oldKid = before[0]?.kid;
    const nextKid = before[1]?.kid;
    const oldToken = session.accessToken;
    // A forgery with the same key, made before the rotation (as a client would still hold it).
    const oldForged = await forge();
    const graceMs = config.accessTokenTtlSecs * 1000;

    const first = await rotateSigningKeys(env.DB, config.signingKeyWrapKeys, Date.now(), graceMs);
    expect(first).toMatchObject({ current: nextKid, previous: oldKid });
    const afterOne = await jwks();
    expect(afterOne.map((k) => k.kid)).toEqual([nextKid, first.next, oldKid]);
    // No client breaks: tokens signed before the rotation still verify.
    expect(await statusFor(oldToken)).toBe(400);
    expect(await statusFor(oldForged)).toBe(400);
    // New tokens are signed with the former next key, which clients already had.
    const fresh = await forge();
    expect(decodeProtectedHeader(fresh).kid).toBe(nextKid);
    expect(await statusFor(fresh)).toBe(400);

    const second = await rotateSigningKeys(env.DB, config.signingKeyWrapKeys, Date.now(), graceMs);
    expect(second.previous).toBe(nextKid);
    const afterTwo = (await jwks()).map((k) => k.kid);
    expect(afterTwo).not.toContain(oldKid);
    expect(afterTwo).toEqual([first.next, second.next, nextKid]);
    expect(await statusFor(oldToken)).toBe(401);
    expect(await statusFor(oldForged)).toBe(401);
    // The key one rotation old still verifies.
    expect(await statusFor(fresh)).toBe(400);
  });

  it("a previous key stops verifying at the end of its grace period", async () => {
    const token = await forge();
    await rotateSigningKeys(env.DB, config.signingKeyWrapKeys, Date.now(), 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const kid = decodeProtectedHeader(token).kid;
    // The key cache holds entries for a few seconds; a rotation clears it, so the expired grace shows at once.
    expect(await statusFor(token)).toBe(401);
    expect((await jwks()).map((k) => k.kid)).not.toContain(kid);
  });
});
