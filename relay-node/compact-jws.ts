import { createPublicKey, type KeyObject, verify } from "node:crypto";

/**
 * Strict compact JWS (RFC 7515 §7.1) for the two kinds the relay verifies: leases and lease-key certificates.
 * Only EdDSA over Ed25519 (RFC 8037) is accepted; the algorithm is pinned here, never read from a key or chosen by
 * the token. Headers may carry only `alg`, `typ` and `kid`: anything else (`crit`, `jwk`, `jku`, `x5c`, `b64`…)
 * is refused rather than ignored, so no header can change how the token is checked.
 */
export interface CompactJws {
  readonly header: JwsHeader;
  readonly payload: unknown;
  /** ASCII `header.payload`, the bytes the signature covers (a view into the token). */
  readonly signingInput: Uint8Array;
  readonly signature: Uint8Array;
}

/** The only header shape accepted: EdDSA, a `typ`, and a `kid` when present. */
export interface JwsHeader {
  readonly alg: "EdDSA";
  readonly typ: string;
  readonly kid: string | null;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const KID = /^[A-Za-z0-9_-]{1,64}$/;
const ED25519_SIGNATURE_LEN = 64;
const ALLOWED_HEADER_KEYS: ReadonlySet<string> = new Set(["alg", "typ", "kid"]);
const DOT = 0x2e;

/** Canonical base64url without padding, or null (non-canonical trailing bits would let two texts mean one token). */
function decodeB64url(text: string): Buffer | null {
  if (!B64URL.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : null;
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
}

function parseHeader(value: unknown): JwsHeader | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const header = value as Record<string, unknown>;
  for (const key of Object.keys(header)) if (!ALLOWED_HEADER_KEYS.has(key)) return null;
  if (header.alg !== "EdDSA" || typeof header.typ !== "string") return null;
  if (header.kid !== undefined && (typeof header.kid !== "string" || !KID.test(header.kid))) return null;
  return { alg: "EdDSA", typ: header.typ, kid: header.kid ?? null };
}

/** Splits and decodes a compact JWS given as ASCII bytes; null for anything malformed. Verifies nothing. */
export function parseCompactJws(token: Uint8Array): CompactJws | null {
  const first = token.indexOf(DOT);
  const second = first < 0 ? -1 : token.indexOf(DOT, first + 1);
  if (first <= 0 || second <= first + 1 || token.indexOf(DOT, second + 1) >= 0) return null;
  const bytes = Buffer.from(token.buffer, token.byteOffset, token.byteLength);
  const header = decodeB64url(bytes.toString("latin1", 0, first));
  const payload = decodeB64url(bytes.toString("latin1", first + 1, second));
  const signature = decodeB64url(bytes.toString("latin1", second + 1));
  if (header === null || payload === null || signature?.length !== ED25519_SIGNATURE_LEN) return null;
  const parsedHeader = parseHeader(parseJson(header));
  const parsedPayload = parseJson(payload);
  if (parsedHeader === null || parsedPayload === undefined) return null;
  return {
    header: parsedHeader,
    payload: parsedPayload,
    signingInput: token.subarray(0, second),
    signature,
  };
}

/** Ed25519 verification that never throws (a malformed signature is just invalid). */
export function verifyEd25519(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** An Ed25519 public key object from its raw 32 bytes or base64url text; null when it is not one. */
export function ed25519PublicKey(raw: Uint8Array | string): KeyObject | null {
  const x = typeof raw === "string" ? raw : Buffer.from(raw).toString("base64url");
  try {
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
  } catch {
    return null;
  }
}
