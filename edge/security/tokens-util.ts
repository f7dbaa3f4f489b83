/**
 * Token and encoding helpers for the edge: opaque random tokens, their SHA-256 fingerprints, a comparison that does
 * not leak where two secrets differ, and strict base64 codecs. Pure: randomness is passed in, nothing is logged.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual, toHex, utf8 } from "../../protocol/bytes.ts";
import { type RandomSource, randomBytes } from "../../protocol/crypto/backend.ts";

/** RFC 4648 §5 alphabet (URL and file name safe). */
const BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** RFC 4648 §4 alphabet, as PHC strings use it (without padding). */
const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Reverse lookup tables: character code -> 6-bit value, or -1. */
const BASE64URL_VALUES = reverseTable(BASE64URL_ALPHABET);
const BASE64_VALUES = reverseTable(BASE64_ALPHABET);

function reverseTable(alphabet: string): Int8Array {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
}

function encode(bytes: Uint8Array, alphabet: string): string {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out +=
      (alphabet[n >>> 18] as string) +
      (alphabet[(n >>> 12) & 63] as string) +
      (alphabet[(n >>> 6) & 63] as string) +
      (alphabet[n & 63] as string);
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = (bytes[i] as number) << 16;
    out += (alphabet[n >>> 18] as string) + (alphabet[(n >>> 12) & 63] as string);
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8);
    out +=
      (alphabet[n >>> 18] as string) +
      (alphabet[(n >>> 12) & 63] as string) +
      (alphabet[(n >>> 6) & 63] as string);
  }
  return out;
}

/**
 * Decodes unpadded base64 with the given table. Refuses padding, whitespace, a length of 1 mod 4 and, per RFC 4648
 * §3.5, non-zero bits left over in the last character: every byte string then has exactly one accepted encoding, so
 * a token cannot be presented in two spellings.
 */
function decode(text: string, values: Int8Array): Uint8Array | null {
  const tail = text.length % 4;
  if (tail === 1) return null;
  const out = new Uint8Array(((text.length - tail) / 4) * 3 + (tail === 0 ? 0 : tail - 1));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? (values[c] as number) : -1;
    if (v < 0) return null;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

/** base64url (RFC 4648 §5) without padding. */
export function base64urlEncode(bytes: Uint8Array): string {
  return encode(bytes, BASE64URL_ALPHABET);
}

/**
 * Strict base64url decoding (RFC 4648 §5, no padding, canonical trailing bits). Returns null on any other input,
 * never throws.
 */
export function base64urlDecode(text: string): Uint8Array | null {
  return decode(text, BASE64URL_VALUES);
}

/** Standard base64 (RFC 4648 §4) without padding, the encoding PHC strings use for salt and hash. */
export function base64NoPadEncode(bytes: Uint8Array): string {
  return encode(bytes, BASE64_ALPHABET);
}

/**
 * Strict standard base64 decoding without padding (RFC 4648 §4; canonical trailing bits, as the PHC string format
 * requires). Returns null on any other input, never throws.
 */
export function base64NoPadDecode(text: string): Uint8Array | null {
  return decode(text, BASE64_VALUES);
}

/** Fewest random bytes a token may carry: 128 bits, out of reach of online and offline guessing. */
export const TOKEN_MIN_BYTES = 16;
/** Most random bytes a token may carry; a bound against a misconfigured caller, not a security limit. */
export const TOKEN_MAX_BYTES = 1024;

/**
 * An opaque random token: `bytes` bytes from the passed-in source, base64url without padding (43 characters for
 * the default 32 bytes). Throws a RangeError for a size outside 16..1024 (a caller bug, not bad input).
 */
export function randomToken(random: RandomSource, bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < TOKEN_MIN_BYTES || bytes > TOKEN_MAX_BYTES) {
    throw new RangeError(`token size must be an integer from ${TOKEN_MIN_BYTES} to ${TOKEN_MAX_BYTES} bytes`);
  }
  return base64urlEncode(randomBytes(random, bytes));
}

/**
 * Lower-case hex SHA-256 (FIPS 180-4) of a string's UTF-8 bytes or of raw bytes, via WebCrypto. Tokens are stored
 * only as this fingerprint, so a database leak yields nothing a client could present.
 */
export async function sha256Hex(input: string | Uint8Array): Promise<string> {
  const bytes = typeof input === "string" ? utf8(input) : input;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/**
 * Compares two secret strings without leaking where they differ or how long either is: both sides are hashed to
 * fixed-size SHA-256 digests, which are then compared in constant time. A false positive would need a SHA-256
 * collision.
 */
export function timingSafeEqualString(a: string, b: string): boolean {
  return constantTimeEqual(sha256(utf8(a)), sha256(utf8(b)));
}
