/**
 * Relay leases and lease-key certificates: the claims both the edge (which signs) and the relay node (which
 * verifies) agree on. Pure: no clock, no crypto here; the callers verify signatures (EdDSA, pinned) and pass `now`.
 *
 * Trust chain: relay master key (offline; its public half is pinned on every relay as WAVRY_RELAY_MASTER_PUBLIC_KEY)
 *   --certifies--> lease key (a compact JWS, typ `wavry-lease-key-cert+jwt`, with its own expiry)
 *   --signs------> lease (a compact JWS, typ `wavry-lease+jwt`, one per peer per session, minutes long)
 */

/** JWS `typ` of a lease. */
export const LEASE_TYP = "wavry-lease+jwt";
/** JWS `typ` of a lease-key certificate. */
export const LEASE_KEY_CERT_TYP = "wavry-lease-key-cert+jwt";
/** `iss` of lease-key certificates. */
export const LEASE_KEY_CERT_ISSUER = "wavry-relay-master";
/** Leases are short: at most this long from `iat` to `exp`. */
export const LEASE_MAX_TTL_SECS = 300;
/** Clock skew the relay tolerates on `iat`/`nbf`/`exp`. */
export const LEASE_CLOCK_SKEW_SECS = 30;
/** A lease-key certificate lives at most this long. */
export const LEASE_KEY_CERT_MAX_TTL_SECS = 90 * 86_400;

export type LeaseRole = "host" | "client";

/** Bandwidth the relay grants this peer. */
export interface LeaseBandwidth {
  /** Sustained rate in kilobits per second. */
  readonly kbps: number;
  /** Burst allowance in kilobytes. */
  readonly burstKb: number;
}

export interface LeaseClaims {
  readonly iss: string;
  /** The relay id the lease is for. */
  readonly aud: string;
  /** The device id of the peer. */
  readonly sub: string;
  /** Session id: base64url of the 16-byte session id. */
  readonly sid: string;
  readonly role: LeaseRole;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly bw: LeaseBandwidth;
  /** RFC 7800 confirmation key: the peer's Ed25519 public key, which signs the LEASE_PRESENT proof. */
  readonly cnf: { readonly jwk: { readonly kty: "OKP"; readonly crv: "Ed25519"; readonly x: string } };
}

export interface LeaseKeyCertClaims {
  readonly iss: typeof LEASE_KEY_CERT_ISSUER;
  /** The lease key's `kid`. */
  readonly sub: string;
  /** The certified lease public key. */
  readonly jwk: { readonly kty: "OKP"; readonly crv: "Ed25519"; readonly x: string };
  readonly iat: number;
  readonly exp: number;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const B64URL_16 = /^[A-Za-z0-9_-]{22}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function okpKey(value: unknown): LeaseClaims["cnf"]["jwk"] | null {
  if (!isRecord(value) || value.kty !== "OKP" || value.crv !== "Ed25519") return null;
  if (typeof value.x !== "string" || !B64URL_32.test(value.x)) return null;
  return { kty: "OKP", crv: "Ed25519", x: value.x };
}

/** Validates a lease payload's shape (not its signature or time). Returns null for anything off. */
export function parseLeaseClaims(payload: unknown): LeaseClaims | null {
  if (!isRecord(payload)) return null;
  const { iss, aud, sub, sid, role, jti, iat, exp, bw, cnf } = payload;
  if (typeof iss !== "string" || iss.length === 0 || iss.length > 200) return null;
  if (typeof aud !== "string" || !ID.test(aud) || typeof sub !== "string" || !ID.test(sub)) return null;
  if (typeof sid !== "string" || !B64URL_16.test(sid) || typeof jti !== "string" || !ID.test(jti))
    return null;
  if (role !== "host" && role !== "client") return null;
  if (!isTime(iat) || !isTime(exp) || exp <= iat || exp - iat > LEASE_MAX_TTL_SECS) return null;
  if (!isRecord(bw) || !isTime(bw.kbps) || !isTime(bw.burstKb)) return null;
  if (!isRecord(cnf)) return null;
  const jwk = okpKey(cnf.jwk);
  if (jwk === null) return null;
  return {
    iss,
    aud,
    sub,
    sid,
    role,
    jti,
    iat,
    exp,
    bw: { kbps: bw.kbps, burstKb: bw.burstKb },
    cnf: { jwk },
  };
}

/** Validates a lease-key certificate payload's shape. */
export function parseLeaseKeyCertClaims(payload: unknown): LeaseKeyCertClaims | null {
  if (!isRecord(payload)) return null;
  const { iss, sub, jwk, iat, exp } = payload;
  if (iss !== LEASE_KEY_CERT_ISSUER || typeof sub !== "string" || !ID.test(sub)) return null;
  if (!isTime(iat) || !isTime(exp) || exp <= iat || exp - iat > LEASE_KEY_CERT_MAX_TTL_SECS) return null;
  const key = okpKey(jwk);
  if (key === null) return null;
  return { iss, sub, jwk: key, iat, exp };
}

/** Time checks for a lease at `nowSecs`, with the pinned skew. */
export function leaseTimeValid(claims: Pick<LeaseClaims, "iat" | "exp">, nowSecs: number): boolean {
  return claims.iat <= nowSecs + LEASE_CLOCK_SKEW_SECS && nowSecs < claims.exp + LEASE_CLOCK_SKEW_SECS;
}
