import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { base64urlDecode, base64urlEncode, sha256Hex } from "../../edge/security/tokens-util.ts";
import { MAX_DEVICES_PER_USER, MAX_OPEN_ENROLLMENT_CODES } from "../../edge/services/devices.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  type KeyPair,
} from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { deviceFingerprint, deviceIdFromKeys } from "../../protocol/identity/device-id.ts";
import {
  canonicalEnrollmentCode,
  enrollmentProofMessage,
  tokenChallengeMessage,
} from "../../protocol/identity/device-proofs.ts";
import { newUser, type TestUser, testConfig } from "./fixtures.ts";
import { type CallResult, call, errorCode, freshAddress } from "./helpers.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

type User = TestUser;

interface DeviceKeys {
  readonly x: KeyPair;
  readonly ed: KeyPair;
}

interface ChallengeAnswer {
  challengeId: string;
  challenge: string;
  expiresAt: number;
}

const config = testConfig;

function newKeys(): DeviceKeys {
  return { x: generateX25519KeyPair(nobleBackend, random), ed: generateEd25519KeyPair(nobleBackend, random) };
}

const idOf = (keys: DeviceKeys) => deviceIdFromKeys(keys.x.publicKey, keys.ed.publicKey);

interface EnrollOptions {
  name?: string;
  timestampMs?: number;
  /** Sign with this seed instead of the device's own Ed25519 key. */
  signer?: Uint8Array;
  /** Sign a different name than the one sent. */
  signedName?: string;
  x25519PublicKey?: string;
  ed25519PublicKey?: string;
}

/** A complete enrollment body whose proof binds `userIdOrCode`. */
function enrollBody(keys: DeviceKeys, userIdOrCode: string, options: EnrollOptions = {}) {
  const name = options.name ?? "Living room PC";
  const timestampMs = options.timestampMs ?? Date.now();
  const message = enrollmentProofMessage({
    userIdOrCode,
    x25519Public: keys.x.publicKey,
    ed25519Public: keys.ed.publicKey,
    name: options.signedName ?? name,
    timestampMs,
  });
  return {
    name,
    x25519PublicKey: options.x25519PublicKey ?? base64urlEncode(keys.x.publicKey),
    ed25519PublicKey: options.ed25519PublicKey ?? base64urlEncode(keys.ed.publicKey),
    timestampMs,
    proof: base64urlEncode(nobleBackend.ed25519Sign(options.signer ?? keys.ed.privateKey, message)),
  };
}

/** Enrolls fresh keys for `user` and returns them with the device id. */
async function enrolled(user: User, name = "Laptop"): Promise<{ keys: DeviceKeys; deviceId: string }> {
  const keys = newKeys();
  const r = await call<{ deviceId: string }>("/v1/devices", {
    body: enrollBody(keys, user.userId, { name }),
    token: user.token,
  });
  expect(r.status).toBe(201);
  return { keys, deviceId: r.json.deviceId };
}

async function challenge(deviceId: string, address: string): Promise<CallResult<ChallengeAnswer>> {
  return call<ChallengeAnswer>("/v1/devices/challenge", { body: { deviceId }, address });
}

function sign(
  keys: DeviceKeys,
  deviceId: string,
  answer: ChallengeAnswer,
  seed = keys.ed.privateKey,
): string {
  const bytes = base64urlDecode(answer.challenge);
  if (bytes === null) throw new Error("challenge is not base64url");
  const message = tokenChallengeMessage({ challengeId: answer.challengeId, challenge: bytes, deviceId });
  return base64urlEncode(nobleBackend.ed25519Sign(seed, message));
}

async function deviceToken(keys: DeviceKeys, deviceId: string, address: string) {
  const c = await challenge(deviceId, address);
  expect(c.status).toBe(200);
  return call<{ accessToken: string; expiresIn: number; tokenType: string }>("/v1/devices/token", {
    body: { challengeId: c.json.challengeId, signature: sign(keys, deviceId, c.json) },
    address,
  });
}

function jwtPayload(token: string): Record<string, unknown> {
  const part = base64urlDecode(token.split(".")[1] ?? "");
  if (part === null) throw new Error("not a JWT");
  return JSON.parse(new TextDecoder().decode(part)) as Record<string, unknown>;
}

describe("enrollment by a signed-in user", () => {
  it("enrolls keys with a valid proof and answers the derived id and fingerprint", async () => {
    const user = await newUser("device");
    const keys = newKeys();
    const r = await call("/v1/devices", { body: enrollBody(keys, user.userId), token: user.token });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({
      deviceId: idOf(keys),
      fingerprint: deviceFingerprint(keys.x.publicKey, keys.ed.publicKey),
    });
    const list = await call<{ devices: Record<string, unknown>[] }>("/v1/devices", { token: user.token });
    expect(list.status).toBe(200);
    expect(list.json.devices).toEqual([
      {
        deviceId: idOf(keys),
        name: "Living room PC",
        fingerprint: deviceFingerprint(keys.x.publicKey, keys.ed.publicKey),
        x25519PublicKey: base64urlEncode(keys.x.publicKey),
        ed25519PublicKey: base64urlEncode(keys.ed.publicKey),
        createdAt: expect.any(Number),
        lastSeenAt: null,
        revoked: false,
      },
    ]);
  });

  it("needs a user token", async () => {
    const keys = newKeys();
    const r = await call("/v1/devices", { body: enrollBody(keys, "nobody") });
    expect(r.status).toBe(401);
    expect((await call("/v1/devices")).status).toBe(401);
  });

  it("refuses bad proofs: another key, another account, another name", async () => {
    const user = await newUser("device");
    const other = await newUser("device");
    const keys = newKeys();
    const bodies = [
      enrollBody(keys, user.userId, { signer: newKeys().ed.privateKey }),
      enrollBody(keys, other.userId),
      enrollBody(keys, user.userId, { signedName: "Something else" }),
    ];
    const signed = enrollBody(keys, user.userId);
    bodies.push({ ...signed, timestampMs: signed.timestampMs - 1 });
    for (const body of bodies) {
      const r = await call("/v1/devices", { body, token: user.token });
      expect(r.status).toBe(400);
      expect(r.json).toEqual({ error: { code: "bad_request", message: "invalid enrollment proof" } });
    }
    // Nothing was stored: the same keys still enroll with a good proof.
    expect(
      (await call("/v1/devices", { body: enrollBody(keys, user.userId), token: user.token })).status,
    ).toBe(201);
  });

  it("refuses stale and future timestamps", async () => {
    const user = await newUser("device");
    const keys = newKeys();
    for (const skew of [-6 * 60_000, 6 * 60_000]) {
      const r = await call("/v1/devices", {
        body: enrollBody(keys, user.userId, { timestampMs: Date.now() + skew }),
        token: user.token,
      });
      expect(r.status).toBe(400);
      expect(errorCode(r)).toBe("bad_request");
      expect((r.json as { error: { message: string } }).error.message).toMatch(/clock/);
    }
    const ok = await call("/v1/devices", {
      body: enrollBody(keys, user.userId, { timestampMs: Date.now() - 60_000 }),
      token: user.token,
    });
    expect(ok.status).toBe(201);
  });

  it("refuses keys of the wrong length, non-base64url keys and unusable X25519 keys", async () => {
    const user = await newUser("device");
    const keys = newKeys();
    const cases: [EnrollOptions, string][] = [
      [{ x25519PublicKey: base64urlEncode(random(31)) }, "x25519PublicKey"],
      [{ ed25519PublicKey: base64urlEncode(random(33)) }, "ed25519PublicKey"],
      [{ x25519PublicKey: "+".repeat(43) }, "x25519PublicKey"],
      // Low-order X25519 points (0 and 1): every Diffie-Hellman with them is all zeros.
      [{ x25519PublicKey: base64urlEncode(new Uint8Array(32)) }, "x25519PublicKey"],
      [
        { x25519PublicKey: base64urlEncode(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))) },
        "x25519PublicKey",
      ],
      // A second spelling (top bit set) of a real key.
      [
        {
          x25519PublicKey: base64urlEncode(
            Uint8Array.from(keys.x.publicKey, (b, i) => (i === 31 ? b | 0x80 : b)),
          ),
        },
        "x25519PublicKey",
      ],
    ];
    for (const [options, field] of cases) {
      const r = await call("/v1/devices", {
        body: enrollBody(keys, user.userId, options),
        token: user.token,
      });
      expect(r.status, field).toBe(400);
      expect(r.json).toEqual({ error: { code: "invalid_body", message: `invalid field: ${field}` } });
    }
    // A small-order Ed25519 key can "sign" anything; strict verification refuses it.
    const identity = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0));
    const forged = {
      ...enrollBody(keys, user.userId),
      ed25519PublicKey: base64urlEncode(identity),
      proof: base64urlEncode(Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0))),
    };
    expect((await call("/v1/devices", { body: forged, token: user.token })).status).toBe(400);
  });

  it("refuses keys that are already enrolled, by anyone, revoked or not", async () => {
    const user = await newUser("device");
    const other = await newUser("device");
    const { keys } = await enrolled(user);
    const again = await call("/v1/devices", { body: enrollBody(keys, user.userId), token: user.token });
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe("conflict");
    expect(
      (await call("/v1/devices", { body: enrollBody(keys, other.userId), token: other.token })).status,
    ).toBe(409);
    // The same Ed25519 key with a new X25519 key, and the same X25519 key with a new Ed25519 key.
    const sameEd = { x: newKeys().x, ed: keys.ed };
    expect(
      (await call("/v1/devices", { body: enrollBody(sameEd, user.userId), token: user.token })).status,
    ).toBe(409);
    const sameX = { x: keys.x, ed: newKeys().ed };
    expect(
      (await call("/v1/devices", { body: enrollBody(sameX, other.userId), token: other.token })).status,
    ).toBe(409);
  });

  it(`caps an account at ${MAX_DEVICES_PER_USER} active devices`, async () => {
    const user = await newUser("device");
    const now = Date.now();
    const rows = Array.from({ length: MAX_DEVICES_PER_USER }, (_, i) =>
      env.DB.prepare(
        "INSERT INTO devices (id, user_id, name, x25519_public_key, ed25519_public_key, created_at) VALUES (?1, ?2, 'filler', ?3, ?4, ?5)",
      ).bind(
        `d_filler${i}${user.userId}`,
        user.userId,
        base64urlEncode(random(32)),
        base64urlEncode(random(32)),
        now,
      ),
    );
    await env.DB.batch(rows);
    const keys = newKeys();
    const r = await call("/v1/devices", { body: enrollBody(keys, user.userId), token: user.token });
    expect(r.status).toBe(409);
    expect((r.json as { error: { message: string } }).error.message).toMatch(/limit/);
    // Revoked devices do not count.
    await env.DB.prepare("UPDATE devices SET revoked_at = ?1 WHERE id = ?2")
      .bind(now, `d_filler0${user.userId}`)
      .run();
    expect(
      (await call("/v1/devices", { body: enrollBody(keys, user.userId), token: user.token })).status,
    ).toBe(201);
  });

  it("refuses unknown fields and bad names", async () => {
    const user = await newUser("device");
    const keys = newKeys();
    const extra = await call("/v1/devices", {
      body: { ...enrollBody(keys, user.userId), userId: "x" },
      token: user.token,
    });
    expect(extra.status).toBe(400);
    for (const name of ["", " ", "a".repeat(65), "tab\there", "bell\u0007", "line\u2028break", "nul\u0000"]) {
      const r = await call("/v1/devices", {
        body: enrollBody(keys, user.userId, { name }),
        token: user.token,
      });
      expect(r.status, JSON.stringify(name)).toBe(400);
      expect(r.json).toEqual({ error: { code: "invalid_body", message: "invalid field: name" } });
    }
    // 64 characters are 64 code points, even when each takes two UTF-16 units.
    const emoji = "\u{1F5A5}".repeat(64);
    expect(
      (await call("/v1/devices", { body: enrollBody(keys, user.userId, { name: emoji }), token: user.token }))
        .status,
    ).toBe(201);
  });
});

describe("enrollment codes (headless hosts)", () => {
  async function newCode(user: User) {
    const r = await call<{ code: string; expiresAt: number }>("/v1/devices/enrollment-codes", {
      method: "POST",
      token: user.token,
    });
    expect(r.status).toBe(201);
    return r.json;
  }

  it("issues a human-typable one-time code, stored only as its SHA-256", async () => {
    const user = await newUser("device");
    const before = Date.now();
    const { code, expiresAt } = await newCode(user);
    expect(code).toMatch(/^[A-Z2-7]{4}(-[A-Z2-7]{4}){4}$/);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 10 * 60_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 10 * 60_000);
    const canonical = canonicalEnrollmentCode(code) ?? "";
    const { results } = await env.DB.prepare("SELECT code_hash FROM enrollment_codes WHERE user_id = ?1")
      .bind(user.userId)
      .all<{ code_hash: string }>();
    expect(results).toEqual([{ code_hash: await sha256Hex(canonical) }]);
    expect(JSON.stringify(results)).not.toContain(canonical);
    expect((await call("/v1/devices/enrollment-codes", { method: "POST" })).status).toBe(401);
    expect((await newCode(user)).code).not.toBe(code);
  });

  it("enrolls a device for the code's owner once; the code then stops working", async () => {
    const user = await newUser("device");
    const { code } = await newCode(user);
    const canonical = canonicalEnrollmentCode(code) ?? "";
    const keys = newKeys();
    // Typed sloppily: lower case, spaces instead of hyphens.
    const typed = code.toLowerCase().replaceAll("-", " ");
    const r = await call("/v1/devices/enroll", {
      body: { ...enrollBody(keys, canonical), code: typed },
      address: freshAddress(),
    });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({
      deviceId: idOf(keys),
      fingerprint: deviceFingerprint(keys.x.publicKey, keys.ed.publicKey),
    });
    const list = await call<{ devices: { deviceId: string }[] }>("/v1/devices", { token: user.token });
    expect(list.json.devices.map((d) => d.deviceId)).toEqual([idOf(keys)]);

    const second = newKeys();
    const reuse = await call("/v1/devices/enroll", {
      body: { ...enrollBody(second, canonical), code },
      address: freshAddress(),
    });
    expect(reuse.status).toBe(401);
    expect(reuse.json).toEqual({
      error: { code: "unauthorized", message: "invalid or expired enrollment code" },
    });
  });

  it("expires", async () => {
    const user = await newUser("device");
    const { code } = await newCode(user);
    const canonical = canonicalEnrollmentCode(code) ?? "";
    await env.DB.prepare("UPDATE enrollment_codes SET expires_at = ?1 WHERE code_hash = ?2")
      .bind(Date.now() - 1, await sha256Hex(canonical))
      .run();
    const r = await call("/v1/devices/enroll", {
      body: { ...enrollBody(newKeys(), canonical), code },
      address: freshAddress(),
    });
    expect(r.status).toBe(401);
    expect(r.json).toEqual({
      error: { code: "unauthorized", message: "invalid or expired enrollment code" },
    });
  });

  it("refuses unknown and malformed codes with the same answer", async () => {
    for (const code of ["AAAA-AAAA-AAAA-AAAA-AAAA", "not a code", "", "AAAA-AAAA-AAAA-AAAA-AAA1"]) {
      const r = await call("/v1/devices/enroll", {
        body: { ...enrollBody(newKeys(), canonicalEnrollmentCode(code) ?? code), code },
        address: freshAddress(),
      });
      expect(r.status, code).toBe(401);
      expect(r.json).toEqual({
        error: { code: "unauthorized", message: "invalid or expired enrollment code" },
      });
    }
  });

  it("binds the proof to the code, and a refused attempt does not use the code up", async () => {
    const user = await newUser("device");
    const { code } = await newCode(user);
    const canonical = canonicalEnrollmentCode(code) ?? "";
    const keys = newKeys();
    const address = freshAddress();
    const wrongBinding = await call("/v1/devices/enroll", {
      body: { ...enrollBody(keys, user.userId), code },
      address,
    });
    expect(wrongBinding.status).toBe(400);
    const stale = await call("/v1/devices/enroll", {
      body: { ...enrollBody(keys, canonical, { timestampMs: Date.now() - 10 * 60_000 }), code },
      address,
    });
    expect(stale.status).toBe(400);
    const { keys: taken } = await enrolled(user);
    expect(
      (await call("/v1/devices/enroll", { body: { ...enrollBody(taken, canonical), code }, address })).status,
    ).toBe(409);
    expect(
      (await call("/v1/devices/enroll", { body: { ...enrollBody(keys, canonical), code }, address })).status,
    ).toBe(201);
  });

  it(`limits open codes to ${MAX_OPEN_ENROLLMENT_CODES} per account`, async () => {
    const user = await newUser("device");
    for (let i = 0; i < MAX_OPEN_ENROLLMENT_CODES; i++) await newCode(user);
    const r = await call("/v1/devices/enrollment-codes", { method: "POST", token: user.token });
    expect(r.status).toBe(409);
  });

  it("is rate-limited per address", async () => {
    const address = freshAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const code = "AAAA-AAAA-AAAA-AAAA-AAAA";
      statuses.push(
        (
          await call("/v1/devices/enroll", {
            body: { ...enrollBody(newKeys(), canonicalEnrollmentCode(code) ?? code), code },
            address,
          })
        ).status,
      );
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses[10]).toBe(429);
  });
});

describe("device tokens by challenge and signature", () => {
  it("issues a device access token for a signed challenge; GET /me accepts it", async () => {
    const user = await newUser("device");
    const { keys, deviceId } = await enrolled(user, "Desk");
    const address = freshAddress();
    const c = await challenge(deviceId, address);
    expect(c.status).toBe(200);
    expect(c.json.challengeId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(base64urlDecode(c.json.challenge)?.length).toBe(32);
    expect(c.json.expiresAt - Date.now()).toBeGreaterThan(50_000);
    expect(c.json.expiresAt - Date.now()).toBeLessThanOrEqual(60_000);
    const before = Date.now();
    const t = await call<{ accessToken: string; expiresIn: number; tokenType: string }>("/v1/devices/token", {
      body: { challengeId: c.json.challengeId, signature: sign(keys, deviceId, c.json) },
      address,
    });
    expect(t.status).toBe(200);
    expect(t.json.tokenType).toBe("Bearer");
    expect(t.json.expiresIn).toBe(config().accessTokenTtlSecs);
    expect(jwtPayload(t.json.accessToken)).toMatchObject({
      sub: deviceId,
      uid: user.userId,
      aud: "wavry-device",
    });

    const me = await call("/v1/devices/me", { token: t.json.accessToken });
    expect(me.status).toBe(200);
    expect(me.json).toEqual({ deviceId, userId: user.userId, name: "Desk" });
    const row = await env.DB.prepare("SELECT last_seen_at FROM devices WHERE id = ?1")
      .bind(deviceId)
      .first<{ last_seen_at: number }>();
    expect(row?.last_seen_at).toBeGreaterThanOrEqual(before);

    // A device token is not a user token, and a user token is not a device token.
    expect((await call("/v1/devices", { token: t.json.accessToken })).status).toBe(401);
    expect((await call("/v1/devices/me", { token: user.token })).status).toBe(401);
    expect((await call("/v1/devices/me")).status).toBe(401);
  });

  const failure = {
    error: { code: "unauthorized", message: "invalid, used or expired challenge, or bad signature" },
  };

  it("refuses a wrong signature, and the challenge is spent by the attempt", async () => {
    const user = await newUser("device");
    const { keys, deviceId } = await enrolled(user);
    const { deviceId: otherId } = await enrolled(user);
    const address = freshAddress();
    const attempts = [
      (answer: ChallengeAnswer) => sign(keys, deviceId, answer, newKeys().ed.privateKey),
      (answer: ChallengeAnswer) => sign(keys, otherId, answer),
      (answer: ChallengeAnswer) =>
        sign(keys, deviceId, { ...answer, challenge: base64urlEncode(random(32)) }),
      () => base64urlEncode(new Uint8Array(64)),
    ];
    for (const wrong of attempts) {
      const c = await challenge(deviceId, address);
      const bad = await call("/v1/devices/token", {
        body: { challengeId: c.json.challengeId, signature: wrong(c.json) },
        address,
      });
      expect(bad.status).toBe(401);
      expect(bad.json).toEqual(failure);
      const late = await call("/v1/devices/token", {
        body: { challengeId: c.json.challengeId, signature: sign(keys, deviceId, c.json) },
        address,
      });
      expect(late.status).toBe(401);
    }
  });

  it("refuses a reused challenge", async () => {
    const user = await newUser("device");
    const { keys, deviceId } = await enrolled(user);
    const address = freshAddress();
    const c = await challenge(deviceId, address);
    const body = { challengeId: c.json.challengeId, signature: sign(keys, deviceId, c.json) };
    expect((await call("/v1/devices/token", { body, address })).status).toBe(200);
    const again = await call("/v1/devices/token", { body, address });
    expect(again.status).toBe(401);
    expect(again.json).toEqual(failure);
  });

  it("refuses an expired challenge", async () => {
    const user = await newUser("device");
    const { keys, deviceId } = await enrolled(user);
    const address = freshAddress();
    const c = await challenge(deviceId, address);
    await env.DB.prepare("UPDATE device_challenges SET expires_at = ?1 WHERE id = ?2")
      .bind(Date.now() - 1, c.json.challengeId)
      .run();
    const r = await call("/v1/devices/token", {
      body: { challengeId: c.json.challengeId, signature: sign(keys, deviceId, c.json) },
      address,
    });
    expect(r.status).toBe(401);
    expect(r.json).toEqual(failure);
  });

  it("answers a challenge for an unknown device exactly like one for a known device, and stores nothing", async () => {
    const user = await newUser("device");
    const { deviceId } = await enrolled(user);
    const unknownKeys = newKeys();
    const unknownId = idOf(unknownKeys);
    const address = freshAddress();
    const known = await challenge(deviceId, address);
    const unknown = await challenge(unknownId, address);
    expect(unknown.status).toBe(known.status);
    expect(Object.keys(unknown.json).sort()).toEqual(Object.keys(known.json).sort());
    expect(unknown.json.challengeId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(unknown.json.challenge.length).toBe(known.json.challenge.length);
    expect(Math.abs(unknown.json.expiresAt - known.json.expiresAt)).toBeLessThan(5_000);
    expect([...unknown.headers.keys()].sort()).toEqual([...known.headers.keys()].sort());
    const stored = await env.DB.prepare("SELECT COUNT(*) AS n FROM device_challenges WHERE device_id = ?1")
      .bind(unknownId)
      .first<{ n: number }>();
    expect(stored?.n).toBe(0);
    const r = await call("/v1/devices/token", {
      body: { challengeId: unknown.json.challengeId, signature: sign(unknownKeys, unknownId, unknown.json) },
      address,
    });
    expect(r.status).toBe(401);
    expect(r.json).toEqual(failure);
    // A malformed id is a 400 whatever exists.
    expect((await call("/v1/devices/challenge", { body: { deviceId: "d_nope" }, address })).status).toBe(400);
  });

  it("refuses a revoked device: no new token, and its existing token stops working", async () => {
    const user = await newUser("device");
    const { keys, deviceId } = await enrolled(user);
    const address = freshAddress();
    const t = await deviceToken(keys, deviceId, address);
    expect(t.status).toBe(200);
    const pending = await challenge(deviceId, address);
    expect((await call("/v1/devices/me", { token: t.json.accessToken })).status).toBe(200);

    expect((await call(`/v1/devices/${deviceId}`, { method: "DELETE", token: user.token })).status).toBe(204);
    // Idempotent for the owner.
    expect((await call(`/v1/devices/${deviceId}`, { method: "DELETE", token: user.token })).status).toBe(204);

    const me = await call("/v1/devices/me", { token: t.json.accessToken });
    expect(me.status).toBe(401);
    expect(errorCode(me)).toBe("invalid_token");
    const late = await call("/v1/devices/token", {
      body: { challengeId: pending.json.challengeId, signature: sign(keys, deviceId, pending.json) },
      address,
    });
    expect(late.status).toBe(401);
    const fresh = await challenge(deviceId, address);
    expect(fresh.status).toBe(200);
    const r = await call("/v1/devices/token", {
      body: { challengeId: fresh.json.challengeId, signature: sign(keys, deviceId, fresh.json) },
      address,
    });
    expect(r.status).toBe(401);
    expect(r.json).toEqual(failure);
    const list = await call<{ devices: { deviceId: string; revoked: boolean }[] }>("/v1/devices", {
      token: user.token,
    });
    expect(list.json.devices).toEqual([expect.objectContaining({ deviceId, revoked: true })]);
  });

  it("is rate-limited per address and refuses malformed bodies with 400", async () => {
    const address = freshAddress();
    const limit = config().rateLimits.token.limit;
    const statuses: number[] = [];
    for (let i = 0; i <= limit; i++) statuses.push((await challenge(idOf(newKeys()), address)).status);
    expect(statuses.slice(0, limit).every((s) => s === 200)).toBe(true);
    expect(statuses[limit]).toBe(429);
    const other = freshAddress();
    expect(
      (await call("/v1/devices/token", { body: { challengeId: "short", signature: "x" }, address: other }))
        .status,
    ).toBe(400);
    expect(
      (
        await call("/v1/devices/token", {
          body: { challengeId: "A".repeat(22), signature: "A".repeat(86) },
          address: other,
        })
      ).status,
    ).toBe(401);
  });
});

describe("managing devices", () => {
  it("renames a device; refuses bad names and revoked devices", async () => {
    const user = await newUser("device");
    const { deviceId } = await enrolled(user, "Old");
    const r = await call<{ name: string; deviceId: string }>(`/v1/devices/${deviceId}`, {
      method: "PATCH",
      body: { name: "New name" },
      token: user.token,
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ deviceId, name: "New name" });
    for (const name of ["", "x".repeat(65), "esc\u001b[31m"]) {
      expect(
        (await call(`/v1/devices/${deviceId}`, { method: "PATCH", body: { name }, token: user.token }))
          .status,
      ).toBe(400);
    }
    await call(`/v1/devices/${deviceId}`, { method: "DELETE", token: user.token });
    expect(
      (await call(`/v1/devices/${deviceId}`, { method: "PATCH", body: { name: "Again" }, token: user.token }))
        .status,
    ).toBe(409);
  });

  it("never shows or touches another user's device: every route answers 404", async () => {
    const alice = await newUser("device");
    const mallory = await newUser("device");
    const { deviceId } = await enrolled(alice, "Alice's PC");
    const { deviceId: malloryDevice } = await enrolled(mallory);
    const attempts: [string, string, unknown][] = [
      ["PATCH", `/v1/devices/${deviceId}`, { name: "pwned" }],
      ["DELETE", `/v1/devices/${deviceId}`, undefined],
      ["GET", `/v1/devices/${deviceId}/grants`, undefined],
      ["POST", `/v1/devices/${deviceId}/grants`, { granteeDeviceId: malloryDevice }],
      ["DELETE", `/v1/devices/${deviceId}/grants/g_x`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(path, { method, ...(body !== undefined && { body }), token: mallory.token });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.json).toEqual({ error: { code: "not_found", message: "device not found" } });
    }
    // The same answer for a device that does not exist at all, and for an id that cannot be one.
    for (const id of [idOf(newKeys()), "not-a-device"]) {
      const r = await call(`/v1/devices/${id}`, {
        method: "PATCH",
        body: { name: "x" },
        token: mallory.token,
      });
      expect(r.status).toBe(404);
      expect(r.json).toEqual({ error: { code: "not_found", message: "device not found" } });
    }
    const list = await call<{ devices: { deviceId: string }[] }>("/v1/devices", { token: mallory.token });
    expect(list.json.devices.map((d) => d.deviceId)).toEqual([malloryDevice]);
    const still = await call<{ devices: { name: string; revoked: boolean }[] }>("/v1/devices", {
      token: alice.token,
    });
    expect(still.json.devices).toEqual([expect.objectContaining({ name: "Alice's PC", revoked: false })]);
  });
});

describe("grants", () => {
  async function setup() {
    const host = await newUser("device");
    const guest = await newUser("device");
    const hostDevice = await enrolled(host, "Host");
    const guestDevice = await enrolled(guest, "Guest laptop");
    return {
      host,
      guest,
      hostId: hostDevice.deviceId,
      guestKeys: guestDevice.keys,
      guestId: guestDevice.deviceId,
    };
  }

  it("creates, lists and deletes a grant to another user's device", async () => {
    const { host, hostId, guestId, guestKeys } = await setup();
    const created = await call<{ grantId: string }>(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    expect(created.status).toBe(201);
    expect(created.json.grantId).toMatch(/^g_[A-Za-z0-9_-]{22}$/);
    const list = await call<{ grants: unknown[] }>(`/v1/devices/${hostId}/grants`, { token: host.token });
    expect(list.status).toBe(200);
    expect(list.json.grants).toEqual([
      {
        grantId: created.json.grantId,
        granteeDeviceId: guestId,
        granteeFingerprint: deviceFingerprint(guestKeys.x.publicKey, guestKeys.ed.publicKey),
        createdAt: expect.any(Number),
      },
    ]);
    // The grantee's name and owner are not the host's business.
    expect(JSON.stringify(list.json)).not.toContain("Guest laptop");

    const dup = await call(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    expect(dup.status).toBe(409);

    const gone = await call(`/v1/devices/${hostId}/grants/${created.json.grantId}`, {
      method: "DELETE",
      token: host.token,
    });
    expect(gone.status).toBe(204);
    expect(
      (
        await call(`/v1/devices/${hostId}/grants/${created.json.grantId}`, {
          method: "DELETE",
          token: host.token,
        })
      ).status,
    ).toBe(404);
    expect(
      (await call<{ grants: unknown[] }>(`/v1/devices/${hostId}/grants`, { token: host.token })).json.grants,
    ).toEqual([]);

    // Granting again after a revocation gives a new grant.
    const again = await call<{ grantId: string }>(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    expect(again.status).toBe(201);
    expect(again.json.grantId).not.toBe(created.json.grantId);
  });

  it("refuses a grant to your own device, an unknown or revoked device, or a malformed id", async () => {
    const { host, guest, hostId, guestId } = await setup();
    const { deviceId: second } = await enrolled(host, "Second");
    const own = await call(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: second },
      token: host.token,
    });
    expect(own.status).toBe(400);
    expect((own.json as { error: { message: string } }).error.message).toMatch(/not needed/);
    expect(
      (await call(`/v1/devices/${hostId}/grants`, { body: { granteeDeviceId: hostId }, token: host.token }))
        .status,
    ).toBe(400);

    const unknown = await call(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: idOf(newKeys()) },
      token: host.token,
    });
    expect(unknown.status).toBe(404);
    await call(`/v1/devices/${guestId}`, { method: "DELETE", token: guest.token });
    const revoked = await call(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    expect(revoked.status).toBe(404);
    expect(revoked.json).toEqual(unknown.json);

    expect(
      (await call(`/v1/devices/${hostId}/grants`, { body: { granteeDeviceId: "d_x" }, token: host.token }))
        .status,
    ).toBe(400);
    expect((await call(`/v1/devices/${hostId}/grants`, { body: { granteeDeviceId: guestId } })).status).toBe(
      401,
    );
  });

  it("ends every grant of a revoked device and refuses new ones from it", async () => {
    const { host, hostId, guestId } = await setup();
    const g = await call<{ grantId: string }>(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    expect(g.status).toBe(201);
    await call(`/v1/devices/${hostId}`, { method: "DELETE", token: host.token });
    const row = await env.DB.prepare("SELECT revoked_at FROM grants WHERE id = ?1")
      .bind(g.json.grantId)
      .first<{ revoked_at: number | null }>();
    expect(row?.revoked_at).not.toBeNull();
    expect(
      (await call(`/v1/devices/${hostId}/grants`, { body: { granteeDeviceId: guestId }, token: host.token }))
        .status,
    ).toBe(409);
  });

  it("deletes a grant only through its own host", async () => {
    const { host, hostId, guestId } = await setup();
    const { deviceId: otherHost } = await enrolled(host, "Other host");
    const g = await call<{ grantId: string }>(`/v1/devices/${hostId}/grants`, {
      body: { granteeDeviceId: guestId },
      token: host.token,
    });
    const wrongHost = await call(`/v1/devices/${otherHost}/grants/${g.json.grantId}`, {
      method: "DELETE",
      token: host.token,
    });
    expect(wrongHost.status).toBe(404);
    expect(
      (await call<{ grants: unknown[] }>(`/v1/devices/${hostId}/grants`, { token: host.token })).json.grants,
    ).toHaveLength(1);
  });
});
