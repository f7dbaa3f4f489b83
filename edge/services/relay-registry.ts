import { compactVerify, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK } from "jose";
import { utf8 } from "../../protocol/bytes.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { isRelayId } from "../../protocol/identity/relay-id.ts";
import {
  LEASE_CLOCK_SKEW_SECS,
  LEASE_KEY_CERT_TYP,
  type LeaseKeyCertClaims,
  parseLeaseKeyCertClaims,
} from "../../protocol/relay/lease.ts";
import type { RelayControlResponse } from "../../protocol/relay/registry-messages.ts";
import {
  RELAY_NONCE_PATTERN,
  RELAY_REQUEST_HEADERS,
  RELAY_REQUEST_MAX_SKEW_MS,
  relayRequestSigningInput,
} from "../../protocol/relay/signed-request.ts";
import { type EdgeBindings, loadConfig } from "../env.ts";
import { ApiError } from "../errors.ts";
import { type KeyRing, openSecret, parseKeyRing, sealSecret } from "../security/secret-box.ts";
import { base64urlDecode, base64urlEncode, randomToken } from "../security/tokens-util.ts";

/**
 * Shared pieces of the relay registry (issue 4): its settings, signed relay requests, the control answer relays
 * enforce, and the lease-key lifecycle (pending -> active -> revoked). Used by routes/relays.ts,
 * routes/admin-relays.ts, services/relay-assignment.ts and durable/relay-registry.ts.
 */

/** Name of the one registry object (see durable/relay-registry.ts for why there is one). */
export const RELAY_REGISTRY_NAME = "global";
/** A relay silent for this many intervals is quarantined (DESIGN.md: Relay nodes). */
export const MISSED_HEARTBEATS_BEFORE_QUARANTINE = 3;
/** A relay silent this long is dropped. */
export const DROP_AFTER_MS = 10 * 60_000;

/** Admin states, as `POST /v1/admin/relays/:id/state` takes them. */
export const RELAY_ADMIN_STATES = ["none", "draining", "quarantined", "banned"] as const;
/** Set by admins only; never changed by heartbeats or alarms. */
export type RelayAdminState = (typeof RELAY_ADMIN_STATES)[number];
/** Set by the registry only: heartbeats raise it, alarms lower it. */
export type RelayHealth = "healthy" | "quarantined" | "dropped";

/** Relay settings read from the bindings. */
export interface RelaySettings {
  readonly heartbeatIntervalMs: number;
  /** base64url Ed25519 public key of the relay master key, when the operator configured it. */
  readonly masterPublicKey: Uint8Array | null;
}

/** The relay settings, or the problems that make them invalid. */
export type RelaySettingsResult =
  | { readonly ok: true; readonly settings: RelaySettings }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Validates the relay settings once per env object: `WAVRY_RELAY_HEARTBEAT_INTERVAL_MS` (1000..60000, default
 * 5000) and the optional `WAVRY_RELAY_MASTER_PUBLIC_KEY` (base64url, 32 bytes), which lets the edge verify lease-key
 * certificates on upload instead of only checking their claims. Problems name the setting, never its value.
 */
export function relaySettings(env: EdgeBindings): RelaySettingsResult {
  // The relay settings are part of the one validated configuration (edge/env.ts).
  const loaded = loadConfig(env);
  if (!loaded.ok) return { ok: false, problems: loaded.problems };
  return {
    ok: true,
    settings: {
      heartbeatIntervalMs: loaded.config.relayHeartbeatIntervalMs,
      masterPublicKey: loaded.config.relayMasterPublicKey,
    },
  };
}

/** The settings, or a 503 configuration_error naming the bad setting (as the config guard does). */
export function requireRelaySettings(env: EdgeBindings): RelaySettings {
  const result = relaySettings(env);
  if (!result.ok) {
    throw new ApiError(
      503,
      "configuration_error",
      `server configuration is invalid: ${result.problems.join("; ")}`,
    );
  }
  return result.settings;
}

/** The registry Durable Object. */
export function registryStub(env: EdgeBindings) {
  return env.RELAY_REGISTRY.get(env.RELAY_REGISTRY.idFromName(RELAY_REGISTRY_NAME));
}

// ---- Signed relay requests (protocol/relay/signed-request.ts) ----

/** The authentication headers of a relay request, syntactically checked. */
export interface RelayAuth {
  readonly relayId: string;
  readonly timestampMs: number;
  readonly nonce: string;
  readonly signature: Uint8Array;
}

/** Reads the four signed-request headers; null when any is missing or malformed. */
export function readRelayAuth(header: (name: string) => string | undefined): RelayAuth | null {
  const relayId = header(RELAY_REQUEST_HEADERS.relayId);
  const timestamp = header(RELAY_REQUEST_HEADERS.timestamp);
  const nonce = header(RELAY_REQUEST_HEADERS.nonce);
  const signature = header(RELAY_REQUEST_HEADERS.signature);
  if (!isRelayId(relayId) || timestamp === undefined || !/^\d{1,15}$/.test(timestamp)) return null;
  if (nonce === undefined || !RELAY_NONCE_PATTERN.test(nonce)) return null;
  if (signature === undefined || signature.length !== 86) return null;
  const sig = base64urlDecode(signature);
  if (sig === null || sig.length !== 64) return null;
  return { relayId, timestampMs: Number(timestamp), nonce, signature: sig };
}

/** True when the request's timestamp is within the allowed skew of `now`. */
export function relayTimestampFresh(auth: RelayAuth, now: number): boolean {
  return Math.abs(now - auth.timestampMs) <= RELAY_REQUEST_MAX_SKEW_MS;
}

/** Strict Ed25519 verification of a relay request over method, path, timestamp, nonce and body hash. */
export function relaySignatureValid(
  publicKey: Uint8Array,
  auth: RelayAuth,
  method: string,
  path: string,
  body: Uint8Array,
): boolean {
  let input: Uint8Array;
  try {
    input = relayRequestSigningInput({
      method,
      path,
      timestampMs: auth.timestampMs,
      nonce: auth.nonce,
      body,
    });
  } catch {
    return false;
  }
  return nobleBackend.ed25519Verify(publicKey, input, auth.signature);
}

// ---- The control answer ----

const CONTROL_STATE = { none: "active", draining: "draining", quarantined: "quarantined" } as const;

/**
 * What a relay must enforce until its next heartbeat: its state, the interval, the certified lease keys it may
 * trust, revoked lease key ids (until their certificates expire, after which relays refuse them anyway), and the
 * admins' address blocks. Read fresh on every call, so a revocation or block reaches relays within one interval.
 */
export async function relayControl(
  db: D1Database,
  relayId: string,
  adminState: Exclude<RelayAdminState, "banned">,
  heartbeatIntervalMs: number,
  now: number,
): Promise<RelayControlResponse> {
  const [active, revoked, blocks] = await db.batch([
    db
      .prepare(
        `SELECT kid, certificate FROM lease_keys WHERE status = 'active' AND certificate IS NOT NULL
           AND cert_expires_at > ? ORDER BY activated_at DESC, kid LIMIT 16`,
      )
      .bind(now),
    db
      .prepare(
        `SELECT kid FROM lease_keys WHERE status = 'revoked' AND certificate IS NOT NULL AND cert_expires_at > ?
          ORDER BY revoked_at DESC, kid LIMIT 1024`,
      )
      .bind(now),
    db
      .prepare(
        "SELECT cidr FROM address_blocks WHERE expires_at IS NULL OR expires_at > ? ORDER BY cidr LIMIT 5000",
      )
      .bind(now),
  ]);
  return {
    relayId,
    state: CONTROL_STATE[adminState],
    heartbeatIntervalMs,
    leaseKeys: ((active?.results ?? []) as { kid: string; certificate: string }[]).map((k) => ({
      kid: k.kid,
      certificate: k.certificate,
    })),
    revokedLeaseKeyIds: ((revoked?.results ?? []) as { kid: string }[]).map((k) => k.kid),
    blockedCidrs: ((blocks?.results ?? []) as { cidr: string }[]).map((b) => b.cidr),
  };
}

// ---- Lease keys ----

/** Lease key ids: "lk_" and 22 base64url characters (within the lease `kid` pattern of protocol/relay/lease.ts). */
export const LEASE_KID_PATTERN = /^lk_[A-Za-z0-9_-]{22}$/;
/** pending (no certificate yet) -> active (certified, signs leases) -> revoked (signs nothing, listed to relays). */
export type LeaseKeyStatus = "pending" | "active" | "revoked";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const rings = new Map<string, KeyRing>();

/** The parsed wrap ring (parsed once per text: parsing imports AES keys). */
export function wrapRingOf(text: string): KeyRing {
  let ring = rings.get(text);
  if (ring === undefined) {
    const parsed = parseKeyRing(text);
    // env.ts validated the ring with this parser, so this is an operator error with no detail to give.
    if ("error" in parsed) throw new Error("signing key wrap ring is invalid");
    ring = parsed;
    rings.set(text, ring);
  }
  return ring;
}

/** AAD binding a sealed lease key to its kid, so a sealed value cannot be moved to another row. */
export const leaseKeyAad = (kid: string) => utf8(`wavry lease key ${kid}`);

/**
 * Generates a lease key pair at the edge; the private half is sealed under the wrap ring at once and never leaves.
 * The key is `pending` until a certificate for it is uploaded.
 */
export async function createLeaseKey(
  db: D1Database,
  wrapRing: string,
  createdBy: string,
  now: number,
): Promise<{ kid: string; publicKey: string; publicJwk: { kty: "OKP"; crv: "Ed25519"; x: string } }> {
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = `lk_${randomToken(random, 16)}`;
  const pub = await exportJWK(publicKey);
  const priv = await exportJWK(privateKey);
  if (typeof pub.x !== "string" || typeof priv.d !== "string") throw new Error("key export failed");
  const publicJwk = { kty: "OKP", crv: "Ed25519", x: pub.x } as const;
  const sealed = await sealSecret(wrapRingOf(wrapRing), utf8(priv.d), leaseKeyAad(kid), random);
  await db
    .prepare(
      "INSERT INTO lease_keys (kid, status, public_jwk, private_sealed, created_by, created_at) VALUES (?, 'pending', ?, ?, ?, ?)",
    )
    .bind(kid, JSON.stringify(publicJwk), sealed, createdBy, now)
    .run();
  return { kid, publicKey: pub.x, publicJwk };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const badCertificate = (why: string) => new ApiError(400, "invalid_body", `invalid certificate: ${why}`);

/**
 * Checks a lease-key certificate: a compact JWS with alg EdDSA and typ {@link LEASE_KEY_CERT_TYP}, claims valid
 * per parseLeaseKeyCertClaims, `sub` = `kid`, `jwk.x` = the stored public key, issued (with the lease skew) and not
 * expired at `now`. With the master public key it also verifies the signature (algorithm pinned); without it,
 * relays are the first to verify it, and they refuse keys whose certificate does not verify.
 */
export async function checkLeaseKeyCertificate(
  certificate: string,
  kid: string,
  publicX: string,
  masterPublicKey: Uint8Array | null,
  nowMs: number,
): Promise<LeaseKeyCertClaims> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(certificate);
  } catch {
    throw badCertificate("not a compact JWS");
  }
  const parts = certificate.split(".");
  if (parts.length !== 3 || header.alg !== "EdDSA" || header.typ !== LEASE_KEY_CERT_TYP) {
    throw badCertificate(`want a compact JWS with alg EdDSA and typ ${LEASE_KEY_CERT_TYP}`);
  }
  let payload: unknown;
  if (masterPublicKey !== null) {
    try {
      const key = await importJWK(
        { kty: "OKP", crv: "Ed25519", x: base64urlEncode(masterPublicKey) },
        "EdDSA",
      );
      const verified = await compactVerify(certificate, key, { algorithms: ["EdDSA"] });
      payload = JSON.parse(new TextDecoder().decode(verified.payload));
    } catch {
      throw badCertificate("signature does not verify with WAVRY_RELAY_MASTER_PUBLIC_KEY");
    }
  } else {
    const bytes = base64urlDecode(parts[1] ?? "");
    try {
      payload = bytes === null ? null : JSON.parse(strictUtf8.decode(bytes));
    } catch {
      payload = null;
    }
  }
  const claims = parseLeaseKeyCertClaims(payload);
  if (claims === null) throw badCertificate("claims are malformed");
  if (claims.sub !== kid || claims.jwk.x !== publicX) throw badCertificate("it certifies another key");
  const nowSecs = Math.floor(nowMs / 1000);
  if (claims.iat > nowSecs + LEASE_CLOCK_SKEW_SECS || claims.exp <= nowSecs) {
    throw badCertificate("it is expired or not yet valid");
  }
  return claims;
}

/**
 * Stores a checked certificate and activates the key (pending -> active). An active key may get a renewed
 * certificate; a revoked key never comes back. Returns the certificate's expiry (epoch ms).
 */
export async function certifyLeaseKey(
  db: D1Database,
  kid: string,
  certificate: string,
  masterPublicKey: Uint8Array | null,
  now: number,
): Promise<{ kid: string; status: "active"; certExpiresAt: number }> {
  const row = await db
    .prepare("SELECT status, public_jwk FROM lease_keys WHERE kid = ?")
    .bind(kid)
    .first<{ status: LeaseKeyStatus; public_jwk: string }>();
  if (row === null) throw new ApiError(404, "not_found", "no such lease key");
  if (row.status === "revoked") throw new ApiError(409, "conflict", "this lease key is revoked");
  const x = (JSON.parse(row.public_jwk) as { x: string }).x;
  const claims = await checkLeaseKeyCertificate(certificate, kid, x, masterPublicKey, now);
  const certExpiresAt = claims.exp * 1000;
  const r = await db
    .prepare(
      `UPDATE lease_keys SET status = 'active', certificate = ?, cert_expires_at = ?,
              activated_at = COALESCE(activated_at, ?) WHERE kid = ? AND status != 'revoked'`,
    )
    .bind(certificate, certExpiresAt, now, kid)
    .run();
  if (r.meta.changes !== 1) throw new ApiError(409, "conflict", "this lease key is revoked");
  return { kid, status: "active", certExpiresAt };
}

/** Revokes a lease key: it signs nothing more, and relays learn its id with their next heartbeat. */
export async function revokeLeaseKey(db: D1Database, kid: string, now: number): Promise<void> {
  const r = await db
    .prepare("UPDATE lease_keys SET status = 'revoked', revoked_at = ? WHERE kid = ? AND status != 'revoked'")
    .bind(now, kid)
    .run();
  if (r.meta.changes === 1) return;
  const exists = await db.prepare("SELECT 1 AS x FROM lease_keys WHERE kid = ?").bind(kid).first();
  throw exists === null
    ? new ApiError(404, "not_found", "no such lease key")
    : new ApiError(409, "conflict", "this lease key is already revoked");
}

/** Lease keys for the admin listing: public parts and states only. */
export async function listLeaseKeys(db: D1Database): Promise<Record<string, unknown>[]> {
  const { results } = await db
    .prepare(
      `SELECT kid, status, public_jwk, certificate IS NOT NULL AS certified, cert_expires_at, created_by, created_at,
              activated_at, revoked_at FROM lease_keys ORDER BY created_at DESC, kid LIMIT 200`,
    )
    .all<{ public_jwk: string } & Record<string, unknown>>();
  return results.map(({ public_jwk, ...rest }) => ({
    ...rest,
    publicJwk: JSON.parse(public_jwk) as unknown,
  }));
}

// Imported private lease keys by kid (bounded: a handful of keys are ever active at once).
const privateKeys = new Map<string, CryptoKey>();

/**
 * The lease key to sign with: active, certified, and with a certificate valid until at least `validUntil` (so no
 * lease outlives its key's certificate). The most recently activated wins. Null when there is none.
 */
export async function leaseSigningKey(
  db: D1Database,
  wrapRing: string,
  validUntil: number,
): Promise<{ kid: string; key: CryptoKey } | null> {
  const row = await db
    .prepare(
      `SELECT kid, public_jwk, private_sealed FROM lease_keys WHERE status = 'active' AND certificate IS NOT NULL
         AND cert_expires_at > ? ORDER BY activated_at DESC, kid LIMIT 1`,
    )
    .bind(validUntil)
    .first<{ kid: string; public_jwk: string; private_sealed: string }>();
  if (row === null) return null;
  const cached = privateKeys.get(row.kid);
  if (cached !== undefined) return { kid: row.kid, key: cached };
  const d = await openSecret(wrapRingOf(wrapRing), row.private_sealed, leaseKeyAad(row.kid));
  if (d === null) throw new Error("a lease key cannot be unsealed with the configured ring");
  const x = (JSON.parse(row.public_jwk) as { x: string }).x;
  const key = await importJWK({ kty: "OKP", crv: "Ed25519", x, d: new TextDecoder().decode(d) }, "EdDSA");
  if (!(key instanceof CryptoKey)) throw new Error("lease key import failed");
  // A kid names one immutable key pair, so the imported key can be kept; revocation is checked by the query above.
  if (privateKeys.size >= 16) privateKeys.clear();
  privateKeys.set(row.kid, key);
  return { kid: row.kid, key };
}
