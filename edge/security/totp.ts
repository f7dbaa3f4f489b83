/**
 * Time-based one-time passwords (RFC 6238) as authenticator apps implement them: HMAC-SHA1, 6 digits, 30-second
 * steps, 20-byte secrets. Pure: the clock and randomness are passed in.
 */

import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { constantTimeEqual, utf8 } from "../../protocol/bytes.ts";
import { type RandomSource, randomBytes } from "../../protocol/crypto/backend.ts";
import { base32Lower } from "../../protocol/identity/device-id.ts";

/** Secret size: 160 bits, the HMAC-SHA1 output size RFC 4226 §4 (R6) recommends. */
export const TOTP_SECRET_BYTES = 20;
/** Code length; the Key Uri Format's default, which every authenticator app supports. */
export const TOTP_DIGITS = 6;
/** Time step X in seconds (RFC 6238 §4.1, the recommended default). */
export const TOTP_STEP_SECONDS = 30;

const STEP_MS = TOTP_STEP_SECONDS * 1000;
const MODULUS = 10 ** TOTP_DIGITS;
const CODE_PATTERN = /^[0-9]{6}$/;

/** A fresh 20-byte TOTP secret from the passed-in random source. */
export function generateTotpSecret(random: RandomSource): Uint8Array {
  return randomBytes(random, TOTP_SECRET_BYTES);
}

/** RFC 4648 §6 alphabet. */
const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE32_VALUES = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE32_ALPHABET.length; i++) {
    table[BASE32_ALPHABET.charCodeAt(i)] = i;
    table[BASE32_ALPHABET.toLowerCase().charCodeAt(i)] = i;
  }
  return table;
})();
/** Unpadded base32 lengths mod 8 that end on a whole byte (RFC 4648 §6: 0, 2, 4, 5 or 7 characters). */
const BASE32_TAIL_BYTES: readonly (number | undefined)[] = [0, undefined, 1, undefined, 2, 3, undefined, 4];

/** Base32 (RFC 4648 §6), upper case, without padding: the form authenticator apps expect in `secret=`. */
export function base32Encode(bytes: Uint8Array): string {
  return base32Lower(bytes).toUpperCase();
}

/**
 * Decodes unpadded base32 (RFC 4648 §6) in either case. Returns null for padding, whitespace, a character outside
 * the alphabet, an impossible length, or non-zero leftover bits (RFC 4648 §3.5), so each secret has one spelling
 * up to case. Never throws.
 */
export function base32Decode(text: string): Uint8Array | null {
  const tailBytes = BASE32_TAIL_BYTES[text.length % 8];
  if (tailBytes === undefined) return null;
  const out = new Uint8Array(Math.floor(text.length / 8) * 5 + tailBytes);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? (BASE32_VALUES[c] as number) : -1;
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

/**
 * The 6-digit code for time step `step` (RFC 6238 §4: HOTP of RFC 4226 §5.3 with counter T). Throws a RangeError
 * for a step that is not a non-negative safe integer or a secret shorter than RFC 4226's 128-bit minimum (caller
 * bugs, not bad input).
 */
export function totpCode(secret: Uint8Array, step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new RangeError("TOTP step must be a non-negative integer");
  }
  if (secret.length < 16) {
    throw new RangeError("TOTP secret must be at least 16 bytes (RFC 4226 §4, R6)");
  }
  // The counter is 8 bytes big-endian (RFC 4226 §5.1); a safe integer fits in 53 bits.
  const counter = new Uint8Array(8);
  const view = new DataView(counter.buffer);
  view.setUint32(0, Math.floor(step / 2 ** 32));
  view.setUint32(4, step >>> 0);
  const mac = hmac(sha1, secret, counter);
  // Dynamic truncation, RFC 4226 §5.3: the low nibble of the last byte picks four bytes; the top bit is dropped.
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const binary =
    (((mac[offset] as number) & 0x7f) << 24) |
    ((mac[offset + 1] as number) << 16) |
    ((mac[offset + 2] as number) << 8) |
    (mac[offset + 3] as number);
  return String(binary % MODULUS).padStart(TOTP_DIGITS, "0");
}

/**
 * Verifies a code submitted at `nowMs` (Unix epoch milliseconds) and returns the time step it matched, or null.
 *
 * - The code must be exactly 6 ASCII digits; anything else is refused before any MAC is computed.
 * - Steps T-1, T and T+1 are accepted: RFC 6238 §5.2 recommends at most one step of clock drift.
 * - A step at or below `lastUsedStep` is refused, so a code cannot be replayed, nor an older code used after a newer
 *   one (RFC 6238 §5.2: "MUST NOT accept the second attempt of the same OTP"). The caller stores the returned step
 *   as the new `lastUsedStep`, atomically with accepting the login.
 * - All three candidates are computed and compared in constant time, whichever matches.
 *
 * A secret of the wrong size or a clock value that is not a non-negative finite number gives null; never throws.
 */
export function verifyTotp(
  secret: Uint8Array,
  code: string,
  nowMs: number,
  lastUsedStep: number | null,
): number | null {
  if (!CODE_PATTERN.test(code) || secret.length !== TOTP_SECRET_BYTES) return null;
  if (!Number.isFinite(nowMs) || nowMs < 0) return null;
  const current = Math.floor(nowMs / STEP_MS);
  if (!Number.isSafeInteger(current + 1)) return null;
  const submitted = utf8(code);
  let matched: number | null = null;
  // Newest first, so that when two steps share a code (odds 1e-6) the oldest unused one wins: it blocks the fewest
  // later codes.
  for (const step of [current + 1, current, current - 1]) {
    if (step < 0) continue;
    const ok = constantTimeEqual(utf8(totpCode(secret, step)), submitted);
    if (ok && (lastUsedStep === null || step > lastUsedStep)) matched = step;
  }
  return matched;
}

/**
 * The `otpauth://totp/` URI an authenticator app scans as a QR code (Google Authenticator Key Uri Format):
 * label `issuer:account`, the secret in unpadded base32, and the issuer repeated as a parameter. Throws a
 * RangeError when the issuer or account label is empty, contains a colon (the format forbids it: it separates the
 * two), a control character, or a lone surrogate; callers pass a validated email and a configured issuer.
 */
export function otpauthUri(secret: Uint8Array, accountLabel: string, issuer: string): string {
  for (const [name, value] of [
    ["issuer", issuer],
    ["account label", accountLabel],
  ] as const) {
    if (value.length === 0 || /[:\p{Cc}\p{Cs}]/u.test(value)) {
      throw new RangeError(`${name} must be non-empty, without ':', control characters or lone surrogates`);
    }
  }
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(accountLabel)}`;
  const params = [
    `secret=${base32Encode(secret)}`,
    `issuer=${encodeURIComponent(issuer)}`,
    "algorithm=SHA1",
    `digits=${TOTP_DIGITS}`,
    `period=${TOTP_STEP_SECONDS}`,
  ];
  return `otpauth://totp/${label}?${params.join("&")}`;
}
