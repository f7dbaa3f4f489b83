import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { compactVerify, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { EdgeBindings } from "../../edge/env.ts";
import { base64urlEncode, sha256Hex } from "../../edge/security/tokens-util.ts";
import { assignRelay, LEASE_BANDWIDTH, LEASE_TTL_SECS } from "../../edge/services/relay-assignment.ts";
import {
  checkLeaseKeyCertificate,
  RELAY_REGISTRY_NAME,
  relaySettings,
} from "../../edge/services/relay-registry.ts";
import { generateEd25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import {
  LEASE_KEY_CERT_ISSUER,
  LEASE_KEY_CERT_TYP,
  LEASE_MAX_TTL_SECS,
  LEASE_TYP,
  parseLeaseClaims,
} from "../../protocol/relay/lease.ts";
import { type RelayControlResponse, relayControlResponse } from "../../protocol/relay/registry-messages.ts";
import { testConfig } from "./fixtures.ts";
import { BOOTSTRAP, call, errorCode, freshAddress } from "./helpers.ts";
import { newRelay, type Relay, signed, signedHeaders } from "./relay-kit.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const bindings = env as unknown as EdgeBindings;
const registry = () => env.RELAY_REGISTRY.get(env.RELAY_REGISTRY.idFromName(RELAY_REGISTRY_NAME));

let admin: string;

beforeAll(async () => {
  const r = await call<{ token: string }>("/v1/admin/bootstrap", {
    body: { name: "relay-tests" },
    headers: { Authorization: `Bearer ${BOOTSTRAP}` },
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  admin = r.json.token;
});

const config = testConfig;

async function enrollmentToken(): Promise<string> {
  const r = await call<{ token: string; id: string }>("/v1/admin/relays/enrollment-tokens", {
    token: admin,
    body: {},
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  return r.json.token;
}

async function enroll(relay: Relay, token?: string) {
  return signed<{ relayId: string }>(relay, "/v1/relays/enroll", {
    enrollmentToken: token ?? (await enrollmentToken()),
    publicKey: relay.publicKey,
  });
}

const registration = (region = "eu-west", maxSessions = 100) => ({
  region,
  publicAddr: "192.0.2.10:4500",
  version: "0.1.0",
  maxSessions,
});

const report = (load = 0.1, sessions = 0) => ({
  load,
  sessions,
  bytesForwarded: 1000,
  packetsForwarded: 10,
  drops: { bad_cookie: 2 },
  startedAt: 1_700_000_000_000,
});

const register = (relay: Relay, region?: string, maxSessions?: number) =>
  signed<RelayControlResponse>(relay, "/v1/relays/register", registration(region, maxSessions));
const heartbeat = (relay: Relay, load?: number, sessions?: number) =>
  signed<RelayControlResponse>(relay, "/v1/relays/heartbeat", report(load, sessions));

/** An enrolled, registered relay. */
async function liveRelay(region?: string, maxSessions?: number): Promise<Relay> {
  const relay = newRelay();
  expect((await enroll(relay)).status).toBe(201);
  const r = await register(relay, region, maxSessions);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return relay;
}

async function row(relayId: string) {
  const found = await env.DB.prepare(
    "SELECT health, admin_state, load, sessions, last_heartbeat_at, counters FROM relays WHERE id = ?",
  )
    .bind(relayId)
    .first<{
      health: string;
      admin_state: string;
      load: number;
      sessions: number;
      last_heartbeat_at: number;
      counters: string;
    }>();
  if (found === null) throw new Error("relay row missing");
  return found;
}

async function setAdminState(relayId: string, state: string) {
  const r = await call(`/v1/admin/relays/${relayId}/state`, {
    token: admin,
    body: { state, reason: "test" },
    address: freshAddress(),
  });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
}

/** Pretends the relay was last heard from `agoMs` ago. */
async function silence(relayId: string, agoMs: number) {
  await env.DB.prepare("UPDATE relays SET last_heartbeat_at = ? WHERE id = ?")
    .bind(Date.now() - agoMs, relayId)
    .run();
}

async function runAlarm() {
  expect(await runDurableObjectAlarm(registry())).toBe(true);
}

describe("relay enrollment", () => {
  it("binds the key with a one-time token; the token works once and is stored hashed", async () => {
    const token = await enrollmentToken();
    const relay = newRelay();
    const r = await enroll(relay, token);
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(r.json.relayId).toBe(relay.id);
    const stored = await env.DB.prepare(
      "SELECT used_at, relay_id FROM relay_enrollment_tokens WHERE token_hash = ?",
    )
      .bind(await sha256Hex(token))
      .first<{ used_at: number; relay_id: string }>();
    expect(stored?.relay_id).toBe(relay.id);
    expect(JSON.stringify(await env.DB.prepare("SELECT * FROM relay_enrollment_tokens").all())).not.toContain(
      token,
    );
    // The same token for another key, and the same key again with a new token.
    const again = await enroll(newRelay(), token);
    expect(again.status).toBe(401);
    expect(errorCode(again)).toBe("invalid_token");
    const twice = await enroll(relay);
    expect(twice.status).toBe(409);
  });

  it("refuses a wrong or expired token, a bad signature and an id that is not the key's", async () => {
    const wrong = await enroll(newRelay(), `wvrel_${base64urlEncode(random(32))}`);
    expect(wrong.status).toBe(401);

    const token = await enrollmentToken();
    await env.DB.prepare("UPDATE relay_enrollment_tokens SET expires_at = ? WHERE token_hash = ?")
      .bind(Date.now() - 1, await sha256Hex(token))
      .run();
    expect((await enroll(newRelay(), token)).status).toBe(401);

    const fresh = await enrollmentToken();
    const relay = newRelay();
    const body = { enrollmentToken: fresh, publicKey: relay.publicKey };
    const forged = await signed(relay, "/v1/relays/enroll", body, { seed: newRelay().seed });
    expect(forged.status).toBe(401);
    expect(errorCode(forged)).toBe("unauthorized");
    const other = newRelay();
    const mismatch = await signed(other, "/v1/relays/enroll", body, { seed: other.seed });
    expect(mismatch.status).toBe(401);
    // None of the refusals spent the token.
    expect((await enroll(relay, fresh)).status).toBe(201);
  });

  it("is rate limited per address, failing closed", async () => {
    const relay = newRelay();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++)
      statuses.push((await enroll(relay, `wvrel_${base64urlEncode(random(32))}`)).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses[10]).toBe(429);
  });

  it("is audited by id, never by token value", async () => {
    const token = await enrollmentToken();
    const audit = await env.DB.prepare(
      "SELECT detail FROM audit_log WHERE path = '/v1/admin/relays/enrollment-tokens' ORDER BY seq DESC LIMIT 1",
    ).first<{ detail: string }>();
    expect(audit?.detail).toMatch(/"enrollmentToken":"ret_/);
    expect(audit?.detail).not.toContain(token);
  });
});

describe("signed register and heartbeat", () => {
  it("answer the control response for a valid signature", async () => {
    const relay = await liveRelay();
    const r = await heartbeat(relay, 0.25, 3);
    expect(r.status).toBe(200);
    const parsed = relayControlResponse.parse(r.json);
    expect(parsed).toMatchObject({ relayId: relay.id, state: "active", heartbeatIntervalMs: 5000 });
    const stored = await row(relay.id);
    expect(stored).toMatchObject({ health: "healthy", admin_state: "none", load: 0.25, sessions: 3 });
    expect(JSON.parse(stored.counters)).toEqual({
      bytesForwarded: 1000,
      packetsForwarded: 10,
      drops: { bad_cookie: 2 },
      startedAt: 1_700_000_000_000,
    });
  });

  it("refuse an unknown relay, a bad signature, a tampered body and missing headers with 401", async () => {
    const stranger = newRelay();
    expect((await register(stranger)).status).toBe(401);
    const relay = await liveRelay();
    const forged = await signed(relay, "/v1/relays/heartbeat", report(), { seed: newRelay().seed });
    expect(forged.status).toBe(401);
    const tampered = await signed(relay, "/v1/relays/heartbeat", report(0.9), {
      signedBody: JSON.stringify(report(0.1)),
    });
    expect(tampered.status).toBe(401);
    // A signature for another path does not carry over.
    const raw = JSON.stringify(report());
    const crossPath = await call("/v1/relays/heartbeat", {
      raw,
      address: relay.address,
      headers: signedHeaders(relay, "/v1/relays/register", raw),
    });
    expect(crossPath.status).toBe(401);
    const bare = await call("/v1/relays/heartbeat", { body: report(), address: relay.address });
    expect(bare.status).toBe(401);
    // Same message for an unknown relay and a bad signature: nothing says whether an id exists.
    expect(forged.json).toEqual((await register(stranger)).json);
  });

  it("refuse a replayed nonce and a stale or future timestamp", async () => {
    const relay = await liveRelay();
    const nonce = base64urlEncode(random(16));
    const raw = JSON.stringify(report());
    const headers = signedHeaders(relay, "/v1/relays/heartbeat", raw, { nonce });
    expect((await call("/v1/relays/heartbeat", { raw, address: relay.address, headers })).status).toBe(200);
    const replay = await call("/v1/relays/heartbeat", { raw, address: relay.address, headers });
    expect(replay.status).toBe(401);
    expect((replay.json as { error: { message: string } }).error.message).toMatch(/nonce/);
    // The same nonce in a freshly signed request, even on another route, is still refused.
    expect((await signed(relay, "/v1/relays/register", registration(), { nonce })).status).toBe(401);
    expect((await heartbeat(relay)).status).toBe(200);
    const old = await signed(relay, "/v1/relays/heartbeat", report(), { timestampMs: Date.now() - 61_000 });
    expect(old.status).toBe(401);
    expect((old.json as { error: { message: string } }).error.message).toMatch(/clock/);
    const ahead = await signed(relay, "/v1/relays/heartbeat", report(), { timestampMs: Date.now() + 61_000 });
    expect(ahead.status).toBe(401);
  });

  it("refuse a heartbeat before register (409) and a banned relay (403); bad bodies get 400", async () => {
    const relay = newRelay();
    expect((await enroll(relay)).status).toBe(201);
    expect((await heartbeat(relay)).status).toBe(409);
    expect((await signed(relay, "/v1/relays/register", { ...registration(), extra: 1 })).status).toBe(400);
    const huge = JSON.stringify({ ...report(), pad: "x".repeat(20_000) });
    const tooLarge = await call("/v1/relays/heartbeat", {
      raw: huge,
      address: relay.address,
      headers: signedHeaders(relay, "/v1/relays/heartbeat", huge),
    });
    expect(tooLarge.status).toBe(413);
    expect((await register(relay)).status).toBe(200);
    await setAdminState(relay.id, "banned");
    const banned = await heartbeat(relay);
    expect(banned.status).toBe(403);
    expect(errorCode(banned)).toBe("forbidden");
    expect((await register(relay)).status).toBe(403);
    // Unbanned by an admin, it is welcome again.
    await setAdminState(relay.id, "none");
    expect((await heartbeat(relay)).status).toBe(200);
  });
});

describe("liveness by alarms, and sticky admin states", () => {
  it("quarantines after three missed heartbeats, recovers on the next one, drops after ten minutes", async () => {
    const relay = await liveRelay();
    await silence(relay.id, 14_000);
    await runAlarm();
    expect((await row(relay.id)).health).toBe("healthy");
    await silence(relay.id, 16_000);
    await runAlarm();
    expect((await row(relay.id)).health).toBe("quarantined");
    expect((await heartbeat(relay)).status).toBe(200);
    expect((await row(relay.id)).health).toBe("healthy");
    await silence(relay.id, 9 * 60_000);
    await runAlarm();
    expect((await row(relay.id)).health).toBe("quarantined");
    await silence(relay.id, 10 * 60_000 + 1000);
    await runAlarm();
    expect((await row(relay.id)).health).toBe("dropped");
    // A dropped relay comes back with a heartbeat (its registration is still on record).
    expect((await heartbeat(relay)).status).toBe(200);
    expect((await row(relay.id)).health).toBe("healthy");
  });

  it("never lets an alarm or a heartbeat overwrite draining or quarantined", async () => {
    for (const state of ["draining", "quarantined"] as const) {
      const relay = await liveRelay();
      await setAdminState(relay.id, state);
      const r = await heartbeat(relay);
      expect(r.status).toBe(200);
      expect(r.json.state).toBe(state);
      expect((await register(relay)).json.state).toBe(state);
      await silence(relay.id, 11 * 60_000);
      await runAlarm();
      expect(await row(relay.id)).toMatchObject({ health: "dropped", admin_state: state });
      const back = await heartbeat(relay);
      expect(back.json.state).toBe(state);
      expect(await row(relay.id)).toMatchObject({ health: "healthy", admin_state: state });
    }
  });

  it("admin state changes are validated, audited, and 404 for an unknown relay", async () => {
    const relay = await liveRelay();
    const bad = await call(`/v1/admin/relays/${relay.id}/state`, {
      token: admin,
      body: { state: "deleted", reason: "x" },
    });
    expect(bad.status).toBe(400);
    const unknown = await call(`/v1/admin/relays/${newRelay().id}/state`, {
      token: admin,
      body: { state: "banned", reason: "x" },
    });
    expect(unknown.status).toBe(404);
    await setAdminState(relay.id, "draining");
    const audit = await env.DB.prepare(
      "SELECT detail FROM audit_log WHERE path = ? AND status = 200 ORDER BY seq DESC LIMIT 1",
    )
      .bind(`/v1/admin/relays/${relay.id}/state`)
      .first<{ detail: string }>();
    expect(JSON.parse(audit?.detail ?? "{}")).toEqual({ relay: relay.id, state: "draining", reason: "test" });
    const listed = await call<{ relays: { id: string; admin_state: string; counters: unknown }[] }>(
      "/v1/admin/relays",
      { token: admin },
    );
    expect(listed.json.relays.find((r) => r.id === relay.id)?.admin_state).toBe("draining");
  });
});

describe("selection", () => {
  it("prefers the requested region, then low load, and never picks what is not assignable", async () => {
    // Only this test's relays may be picked.
    await env.DB.prepare("UPDATE relays SET health = 'dropped'").run();
    const euBusy = await liveRelay("eu-west");
    const euLight = await liveRelay("eu-west");
    const usLightest = await liveRelay("us-east");
    const traps = {
      draining: await liveRelay("eu-west"),
      quarantined: await liveRelay("eu-west"),
      banned: await liveRelay("eu-west"),
      full: await liveRelay("eu-west", 4),
      silent: await liveRelay("eu-west"),
      overloaded: await liveRelay("eu-west"),
    };
    expect((await heartbeat(euBusy, 0.5)).status).toBe(200);
    expect((await heartbeat(euLight, 0.2)).status).toBe(200);
    expect((await heartbeat(usLightest, 0.05)).status).toBe(200);
    for (const relay of Object.values(traps)) expect((await heartbeat(relay, 0)).status).toBe(200);
    expect((await heartbeat(traps.full, 0, 4)).status).toBe(200);
    expect((await heartbeat(traps.overloaded, 1)).status).toBe(200);
    await setAdminState(traps.draining.id, "draining");
    await setAdminState(traps.quarantined.id, "quarantined");
    await setAdminState(traps.banned.id, "banned");
    // Healthy on record, but silent for longer than three intervals: an alarm that has not run yet.
    await silence(traps.silent.id, 20_000);

    const stub = registry();
    const now = Date.now();
    expect((await stub.select("eu-west", now))?.relayId).toBe(euLight.id);
    expect((await stub.select("us-east", now))?.relayId).toBe(usLightest.id);
    expect((await stub.select("ap-south", now))?.relayId).toBe(usLightest.id);
    expect((await stub.select(null, now))?.relayId).toBe(usLightest.id);
    // Each pick counts a session until the next heartbeat reports the truth.
    expect((await row(usLightest.id)).sessions).toBe(3);
    await setAdminState(euLight.id, "draining");
    expect((await stub.select("eu-west", now))?.relayId).toBe(euBusy.id);
    await setAdminState(euBusy.id, "banned");
    await setAdminState(usLightest.id, "quarantined");
    // Only the traps are left in the region, and elsewhere nothing at all.
    expect(await stub.select("eu-west", now)).toBeNull();
    expect(await stub.select(null, now)).toBeNull();
  });

  it("stops picking a relay when its session capacity is reached", async () => {
    await env.DB.prepare("UPDATE relays SET health = 'dropped'").run();
    const small = await liveRelay("eu-west", 2);
    const stub = registry();
    expect((await stub.select("eu-west", Date.now()))?.relayId).toBe(small.id);
    expect((await stub.select("eu-west", Date.now()))?.relayId).toBe(small.id);
    expect(await stub.select("eu-west", Date.now())).toBeNull();
    expect((await heartbeat(small, 0.1, 1)).status).toBe(200);
    expect((await stub.select("eu-west", Date.now()))?.relayId).toBe(small.id);
  });
});

/** A relay master key for tests, and a certificate for a lease key. */
async function masterKey() {
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const x = (await exportJWK(publicKey)).x as string;
  return { privateKey, x };
}

async function certificate(
  master: { privateKey: CryptoKey },
  kid: string,
  x: string,
  overrides: { typ?: string; iat?: number; exp?: number } = {},
) {
  const iat = overrides.iat ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ jwk: { kty: "OKP", crv: "Ed25519", x } })
    .setProtectedHeader({ alg: "EdDSA", typ: overrides.typ ?? LEASE_KEY_CERT_TYP })
    .setIssuer(LEASE_KEY_CERT_ISSUER)
    .setSubject(kid)
    .setIssuedAt(iat)
    .setExpirationTime(overrides.exp ?? iat + 30 * 86_400)
    .sign(master.privateKey);
}

interface NewLeaseKey {
  kid: string;
  publicKey: string;
  publicJwk: { kty: string; crv: string; x: string };
  status: string;
}

async function newLeaseKey(): Promise<NewLeaseKey> {
  const r = await call<NewLeaseKey>("/v1/admin/lease-keys", {
    token: admin,
    body: {},
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  return r.json;
}

const upload = (kid: string, cert: string) =>
  call(`/v1/admin/lease-keys/${kid}/certificate`, {
    token: admin,
    body: { certificate: cert },
    address: freshAddress(),
  });

describe("lease keys", () => {
  it("go pending -> active -> revoked, and relays learn each step from heartbeats", async () => {
    const master = await masterKey();
    const key = await newLeaseKey();
    expect(key).toMatchObject({
      status: "pending",
      publicJwk: { kty: "OKP", crv: "Ed25519", x: key.publicKey },
    });
    expect(key.kid).toMatch(/^lk_[A-Za-z0-9_-]{22}$/);
    const relay = await liveRelay();
    const before = await heartbeat(relay);
    expect(before.json.leaseKeys.map((k) => k.kid)).not.toContain(key.kid);

    // Certificates for something else are refused; the key stays pending.
    const other = await newLeaseKey();
    const refusals = [
      await certificate(master, other.kid, key.publicKey),
      await certificate(master, key.kid, other.publicKey),
      await certificate(master, key.kid, key.publicKey, { typ: "JWT" }),
      await certificate(master, key.kid, key.publicKey, {
        iat: Math.floor(Date.now() / 1000) - 100,
        exp: Math.floor(Date.now() / 1000) - 10,
      }),
      "not.a.jws-at-all-really",
    ];
    for (const bad of refusals) {
      const r = await upload(key.kid, bad);
      expect(r.status, bad).toBe(400);
    }
    expect(
      (await upload("lk_AAAAAAAAAAAAAAAAAAAAAA", await certificate(master, key.kid, key.publicKey))).status,
    ).toBe(404);

    const cert = await certificate(master, key.kid, key.publicKey);
    const ok = await upload(key.kid, cert);
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json).toMatchObject({ kid: key.kid, status: "active" });
    const active = await heartbeat(relay);
    expect(active.json.leaseKeys).toContainEqual({ kid: key.kid, certificate: cert });
    expect(active.json.revokedLeaseKeyIds).not.toContain(key.kid);

    const listed = await call<{ leaseKeys: Record<string, unknown>[] }>("/v1/admin/lease-keys", {
      token: admin,
    });
    const entry = listed.json.leaseKeys.find((k) => k.kid === key.kid);
    expect(entry).toMatchObject({ status: "active", certified: 1 });
    expect(JSON.stringify(listed.json)).not.toContain("private");

    const revoke = await call(`/v1/admin/lease-keys/${key.kid}/revoke`, { token: admin, body: {} });
    expect(revoke.status).toBe(200);
    const after = await heartbeat(relay);
    expect(after.json.leaseKeys.map((k) => k.kid)).not.toContain(key.kid);
    expect(after.json.revokedLeaseKeyIds).toContain(key.kid);
    expect((await call(`/v1/admin/lease-keys/${key.kid}/revoke`, { token: admin, body: {} })).status).toBe(
      409,
    );
    expect((await upload(key.kid, cert)).status).toBe(409);
    const audit = await env.DB.prepare(
      "SELECT detail FROM audit_log WHERE path = ? AND status = 200 ORDER BY seq DESC LIMIT 1",
    )
      .bind(`/v1/admin/lease-keys/${key.kid}/revoke`)
      .first<{ detail: string }>();
    expect(JSON.parse(audit?.detail ?? "{}")).toEqual({ leaseKey: key.kid, revoked: true });
  });

  it("verify against the master public key when it is configured", async () => {
    const master = await masterKey();
    const impostor = await masterKey();
    const key = await newLeaseKey();
    const good = await certificate(master, key.kid, key.publicKey);
    const masterBytes = Uint8Array.from(atob(master.x.replaceAll("-", "+").replaceAll("_", "/")), (c) =>
      c.charCodeAt(0),
    );
    const claims = await checkLeaseKeyCertificate(good, key.kid, key.publicKey, masterBytes, Date.now());
    expect(claims.sub).toBe(key.kid);
    const forged = await certificate(impostor, key.kid, key.publicKey);
    await expect(
      checkLeaseKeyCertificate(forged, key.kid, key.publicKey, masterBytes, Date.now()),
    ).rejects.toMatchObject({ status: 400 });
  });

  it("the wrap ring seals the private half: the database holds no usable key", async () => {
    const key = await newLeaseKey();
    const stored = await env.DB.prepare("SELECT private_sealed FROM lease_keys WHERE kid = ?")
      .bind(key.kid)
      .first<{ private_sealed: string }>();
    expect(stored?.private_sealed).toMatch(/^v1\.dev-wrap-1\./);
  });
});

describe("address blocks reach relays", () => {
  it("an admin block appears in the next heartbeat response, and leaves it when removed", async () => {
    const relay = await liveRelay();
    const add = await call<{ id: string }>("/v1/admin/address-blocks", {
      token: admin,
      body: { cidr: "192.0.2.128/25", reason: "abuse" },
      address: freshAddress(),
    });
    expect(add.status).toBe(201);
    expect((await heartbeat(relay)).json.blockedCidrs).toContain("192.0.2.128/25");
    await call(`/v1/admin/address-blocks/${add.json.id}`, { method: "DELETE", token: admin });
    expect((await heartbeat(relay)).json.blockedCidrs).not.toContain("192.0.2.128/25");
  });
});

describe("relay assignment and lease contents", () => {
  const sessionId = random(16);
  const host = generateEd25519KeyPair(nobleBackend, random);
  const client = generateEd25519KeyPair(nobleBackend, random);
  const peers = [
    {
      deviceId: "d_host0000000000000000000000",
      role: "host",
      ed25519PublicKey: base64urlEncode(host.publicKey),
    },
    {
      deviceId: "d_client00000000000000000000",
      role: "client",
      ed25519PublicKey: base64urlEncode(client.publicKey),
    },
  ] as const;

  it("returns null without an active lease key or without an assignable relay", async () => {
    await env.DB.prepare(
      "UPDATE lease_keys SET status = 'revoked', revoked_at = 1 WHERE status != 'revoked'",
    ).run();
    await env.DB.prepare("UPDATE relays SET health = 'dropped'").run();
    await liveRelay("eu-west");
    expect(
      await assignRelay(bindings, config(), { sessionId, region: "eu-west", peers }, Date.now()),
    ).toBeNull();
    const master = await masterKey();
    const key = await newLeaseKey();
    expect((await upload(key.kid, await certificate(master, key.kid, key.publicKey))).status).toBe(200);
    await env.DB.prepare("UPDATE relays SET health = 'dropped'").run();
    expect(
      await assignRelay(bindings, config(), { sessionId, region: "eu-west", peers }, Date.now()),
    ).toBeNull();
    // A certificate that expires before the lease would is not used to sign it.
    const relay = await liveRelay("eu-west");
    await env.DB.prepare("UPDATE lease_keys SET cert_expires_at = ? WHERE kid = ?")
      .bind(Date.now() + 60_000, key.kid)
      .run();
    expect(
      await assignRelay(bindings, config(), { sessionId, region: "eu-west", peers }, Date.now()),
    ).toBeNull();
    expect((await row(relay.id)).sessions).toBe(0);
  });

  it("mints one lease per peer with every claim, signed by the active certified key", async () => {
    await env.DB.prepare("UPDATE relays SET health = 'dropped'").run();
    const relay = await liveRelay("eu-west");
    const master = await masterKey();
    const key = await newLeaseKey();
    expect((await upload(key.kid, await certificate(master, key.kid, key.publicKey))).status).toBe(200);
    const now = Date.now();
    const assignment = await assignRelay(bindings, config(), { sessionId, region: "eu-west", peers }, now);
    if (assignment === null) throw new Error("no assignment");
    expect(assignment.relayId).toBe(relay.id);
    expect(assignment.publicAddr).toBe("192.0.2.10:4500");
    const iat = Math.floor(now / 1000);
    expect(assignment.expiresAt).toBe(iat + LEASE_TTL_SECS);
    expect(LEASE_TTL_SECS).toBeLessThanOrEqual(LEASE_MAX_TTL_SECS);
    expect(assignment.leases.map((l) => [l.deviceId, l.role])).toEqual([
      [peers[0].deviceId, "host"],
      [peers[1].deviceId, "client"],
    ]);
    const verifier = await importJWK(key.publicJwk, "EdDSA");
    const jtis = new Set<string>();
    for (const [i, entry] of assignment.leases.entries()) {
      const peer = peers[i];
      if (peer === undefined) throw new Error("peer");
      expect(decodeProtectedHeader(entry.lease)).toEqual({ alg: "EdDSA", kid: key.kid, typ: LEASE_TYP });
      const { payload } = await compactVerify(entry.lease, verifier, { algorithms: ["EdDSA"] });
      const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
      expect(parseLeaseClaims(claims)).not.toBeNull();
      expect(claims).toEqual({
        iss: config().issuer,
        aud: relay.id,
        sub: peer.deviceId,
        sid: base64urlEncode(sessionId),
        role: peer.role,
        jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
        iat,
        exp: iat + LEASE_TTL_SECS,
        bw: { kbps: LEASE_BANDWIDTH.kbps, burstKb: LEASE_BANDWIDTH.burstKb },
        cnf: { jwk: { kty: "OKP", crv: "Ed25519", x: peer.ed25519PublicKey } },
      });
      jtis.add(claims.jti as string);
    }
    expect(jtis.size).toBe(2);
    expect(LEASE_BANDWIDTH).toEqual({ kbps: 20_000, burstKb: 512 });
    // A revoked key signs nothing more.
    await call(`/v1/admin/lease-keys/${key.kid}/revoke`, { token: admin, body: {} });
    expect(
      await assignRelay(bindings, config(), { sessionId, region: "eu-west", peers }, Date.now()),
    ).toBeNull();
  });

  it("refuses malformed input before touching a relay", async () => {
    await expect(
      assignRelay(bindings, config(), { sessionId: random(8), region: null, peers }, Date.now()),
    ).rejects.toThrow(RangeError);
    await expect(
      assignRelay(
        bindings,
        config(),
        { sessionId, region: null, peers: [{ ...peers[0], ed25519PublicKey: "short" }] },
        Date.now(),
      ),
    ).rejects.toThrow(RangeError);
    await expect(
      assignRelay(bindings, config(), { sessionId, region: null, peers: [peers[0], peers[0]] }, Date.now()),
    ).rejects.toThrow(RangeError);
  });
});

describe("relay settings", () => {
  it("default to a 5 s interval and name a bad setting without echoing it", () => {
    const base = bindings;
    expect(relaySettings(base)).toMatchObject({ ok: true, settings: { heartbeatIntervalMs: 5000 } });
    expect(relaySettings({ ...base, WAVRY_RELAY_HEARTBEAT_INTERVAL_MS: "2000" })).toMatchObject({
      ok: true,
      settings: { heartbeatIntervalMs: 2000 },
    });
    const badInterval = relaySettings({ ...base, WAVRY_RELAY_HEARTBEAT_INTERVAL_MS: "99" });
    expect(badInterval.ok).toBe(false);
    expect(JSON.stringify(badInterval)).toContain("WAVRY_RELAY_HEARTBEAT_INTERVAL_MS");
    const badKey = relaySettings({ ...base, WAVRY_RELAY_MASTER_PUBLIC_KEY: "secret-looking-value" });
    expect(badKey.ok).toBe(false);
    const text = JSON.stringify(badKey);
    expect(text).toContain("WAVRY_RELAY_MASTER_PUBLIC_KEY");
    expect(text).not.toContain("secret-looking-value");
  });
});
