import { sha256 } from "@noble/hashes/sha2.js";
import { toHex, utf8 } from "../bytes.ts";

/**
 * Relay -> edge requests (register, heartbeat, key-set fetch) are signed by the relay's Ed25519 key over:
 *
 *   "wavry relay request v1\n" method "\n" path "\n" timestampMs "\n" nonce "\n" hex(SHA-256(body))
 *
 * and carried in headers. The edge refuses a timestamp more than {@link RELAY_REQUEST_MAX_SKEW_MS} away from its
 * clock and a nonce it has seen within that window, so a captured request cannot be replayed.
 */
export const RELAY_REQUEST_HEADERS = {
  relayId: "x-wavry-relay-id",
  timestamp: "x-wavry-timestamp",
  nonce: "x-wavry-nonce",
  signature: "x-wavry-signature",
} as const;

export const RELAY_REQUEST_MAX_SKEW_MS = 60_000;
/** Nonces are 16..64 characters of base64url. */
export const RELAY_NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export interface RelayRequestParts {
  readonly method: string;
  /** Path only, no query (the API takes none on these routes). */
  readonly path: string;
  readonly timestampMs: number;
  readonly nonce: string;
  readonly body: Uint8Array;
}

/** The exact bytes the relay signs and the edge verifies. */
export function relayRequestSigningInput(parts: RelayRequestParts): Uint8Array {
  if (!Number.isSafeInteger(parts.timestampMs) || parts.timestampMs < 0)
    throw new RangeError("bad timestamp");
  if (!RELAY_NONCE_PATTERN.test(parts.nonce)) throw new RangeError("bad nonce");
  if (!/^[A-Z]{3,7}$/.test(parts.method) || !/^\/[\x21-\x7e]{0,200}$/.test(parts.path)) {
    throw new RangeError("bad method or path");
  }
  return utf8(
    `wavry relay request v1\n${parts.method}\n${parts.path}\n${parts.timestampMs}\n${parts.nonce}\n${toHex(sha256(parts.body))}`,
  );
}
