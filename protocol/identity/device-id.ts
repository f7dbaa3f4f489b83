import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, toHex, utf8 } from "../bytes.ts";

/**
 * Device identity derived from a device's two public keys (DESIGN.md: Identity). Pure: shared by the edge, which
 * computes ids at enrollment, and the endpoint daemon, which computes its own id and shows its fingerprint.
 *
 * Both values hash a domain-separating context and then the two fixed-size (32-byte) keys, so the input split is
 * unambiguous without length prefixes:
 *
 *   id          = "d_" || base32lower(SHA-256("wavry device id v1\0"     || x25519 || ed25519)[0..16])
 *   fingerprint = hex-groups-of-4(SHA-256("wavry fingerprint v1\0" || x25519 || ed25519)[0..20])
 *
 * The two contexts differ, so a fingerprint reveals nothing about the id beyond what the public keys already do,
 * and neither can be mistaken for the other.
 */

/** Raw public key size for both X25519 and Ed25519. */
export const DEVICE_PUBLIC_KEY_LEN = 32;
/** Bytes of the hash kept in a device id: 128 bits, far beyond any collision search. */
export const DEVICE_ID_HASH_BYTES = 16;
/** Bytes of the hash shown as a fingerprint: 160 bits, compared by eye in 10 groups of 4 hex digits. */
export const DEVICE_FINGERPRINT_BYTES = 20;

const ID_CONTEXT = utf8("wavry device id v1\0");
const FINGERPRINT_CONTEXT = utf8("wavry fingerprint v1\0");
const ID_PREFIX = "d_";

/** RFC 4648 §6 base32 alphabet, lower-cased (ids end up in URLs and logs, where lower case reads better). */
const BASE32_LOWER = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * A device id: "d_" and 26 base32 characters (128 bits). 128 = 25 * 5 + 3, so the last character carries 3 bits
 * and 2 zero bits; only the characters whose value is a multiple of 4 can end a canonical id, which keeps one
 * spelling per id.
 */
const DEVICE_ID_PATTERN = /^d_[a-z2-7]{25}[aeimquy4]$/;

function assertKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== DEVICE_PUBLIC_KEY_LEN) {
    throw new RangeError(`${what} public key must be ${DEVICE_PUBLIC_KEY_LEN} bytes`);
  }
}

/** Lower-case RFC 4648 base32 without padding (also used for relay ids). */
export function base32Lower(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < bytes.length; i++) {
    acc = ((acc << 8) | (bytes[i] as number)) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_LOWER[(acc >>> bits) & 31] as string;
    }
  }
  if (bits > 0) out += BASE32_LOWER[(acc << (5 - bits)) & 31] as string;
  return out;
}

/**
 * The device id of a key pair set. Throws a RangeError when a key is not 32 bytes (a caller bug: untrusted input
 * is length-checked before it gets here).
 */
export function deviceIdFromKeys(x25519Public: Uint8Array, ed25519Public: Uint8Array): string {
  assertKey(x25519Public, "X25519");
  assertKey(ed25519Public, "Ed25519");
  const digest = sha256(concatBytes(ID_CONTEXT, x25519Public, ed25519Public));
  return ID_PREFIX + base32Lower(digest.subarray(0, DEVICE_ID_HASH_BYTES));
}

/**
 * The human-comparable fingerprint of a device's keys: 40 lower-case hex digits in groups of 4 separated by
 * spaces, e.g. "1a2b 3c4d ...". Two people compare it by eye to confirm they talk about the same device.
 */
export function deviceFingerprint(x25519Public: Uint8Array, ed25519Public: Uint8Array): string {
  assertKey(x25519Public, "X25519");
  assertKey(ed25519Public, "Ed25519");
  const digest = sha256(concatBytes(FINGERPRINT_CONTEXT, x25519Public, ed25519Public));
  const hex = toHex(digest.subarray(0, DEVICE_FINGERPRINT_BYTES));
  return (hex.match(/.{4}/g) ?? []).join(" ");
}

/** True when `text` is a well-formed, canonical device id (it says nothing about whether the device exists). */
export function isDeviceId(text: unknown): text is string {
  return typeof text === "string" && DEVICE_ID_PATTERN.test(text);
}
