/**
 * Password hashing for user accounts: Argon2id (RFC 9106) with pinned parameters, stored as PHC strings.
 * Pure: the salt comes from a passed-in random source.
 */
import { argon2id } from "@noble/hashes/argon2.js";
import { constantTimeEqual, utf8 } from "../../protocol/bytes.ts";
import { type RandomSource, randomBytes } from "../../protocol/crypto/backend.ts";
import { base64NoPadDecode, base64NoPadEncode } from "./tokens-util.ts";

/** Fewest Unicode code points a new password may have (after NFC normalization). */
export const PASSWORD_MIN = 12;
/** Most Unicode code points a password may have (after NFC normalization). */
export const PASSWORD_MAX = 128;

/**
 * Argon2id parameters, pinned. m = 19 MiB, t = 2, p = 1 is the OWASP Password Storage Cheat Sheet's first
 * Argon2id configuration; RFC 9106 §4 explains the trade-off. Changing any of them invalidates every stored hash
 * (verification refuses other parameters), so a change needs a rehash-on-login migration first.
 */
const ARGON2 = { m: 19456, t: 2, p: 1, version: 0x13, dkLen: 32 } as const;
const SALT_LEN = 16;
/** The fixed PHC prefix for the pinned parameters (PHC string format, `$id$v=$params$salt$hash`). */
const PHC_PREFIX = `$argon2id$v=19$m=${ARGON2.m},t=${ARGON2.t},p=${ARGON2.p}$`;
/** Unpadded base64 lengths of the 16-byte salt and the 32-byte hash. */
const SALT_B64_LEN = 22;
const HASH_B64_LEN = 43;
const PHC_LEN = PHC_PREFIX.length + SALT_B64_LEN + 1 + HASH_B64_LEN;

/**
 * A longer UTF-16 string cannot be a valid password: NFC composes at most 4 code points into one (the longest
 * canonical decomposition, e.g. U+1F82), and a code point takes at most 2 UTF-16 units, so more than
 * 8 * PASSWORD_MAX units leave more than PASSWORD_MAX code points after normalization. Checking this first keeps
 * normalization and hashing of huge inputs off the request path.
 */
const RAW_LENGTH_LIMIT = PASSWORD_MAX * 8;

/**
 * A valid PHC string for the pinned parameters whose password no input can produce: it was computed once from 32
 * random bytes that include 0xFF, which never occurs in UTF-8, and those bytes were discarded. Verify against it
 * when the user does not exist, so that path costs one Argon2id run like the known-user path and does not reveal
 * which accounts exist.
 */
export const DUMMY_PASSWORD_HASH =
  "$argon2id$v=19$m=19456,t=2,p=1$hZl11jTv2mWarOVCZ92nIQ$F5Qi8CGFgcOpy/xP8Fh0FCbLNpPnt2dzBssESCsm8Xg";

/** The two parts of a PHC string for the pinned parameters. */
export interface PasswordHashParts {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

/** Why a new password is refused, or null when it meets the policy. */
export type PasswordPolicyViolation = "too-short" | "too-long";

function normalize(password: string): string {
  return password.normalize("NFC");
}

function codePointCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/**
 * Checks a new password's length in Unicode code points after NFC normalization (so "é" typed as one or as two
 * code points counts the same, and an emoji such as U+1F600 counts as one). No composition rules: NIST SP 800-63B
 * §3.1.1.2 advises length over character classes.
 */
export function checkPasswordPolicy(password: string): PasswordPolicyViolation | null {
  if (password.length > RAW_LENGTH_LIMIT) return "too-long";
  const count = codePointCount(normalize(password));
  if (count < PASSWORD_MIN) return "too-short";
  if (count > PASSWORD_MAX) return "too-long";
  return null;
}

function derive(password: string, salt: Uint8Array): Uint8Array {
  // NFC first (NIST SP 800-63B §3.1.1.2), so the same password typed on different keyboards hashes the same.
  // A lone surrogate becomes U+FFFD in UTF-8; it only merges passwords that no keyboard produces.
  return argon2id(utf8(normalize(password)), salt, ARGON2);
}

/**
 * Hashes a password with Argon2id and a fresh 16-byte salt from `random`, returning the PHC string
 * `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (unpadded base64). Takes about 200 ms. Check the policy first;
 * this function hashes whatever it is given.
 */
export function hashPassword(password: string, random: RandomSource): string {
  const salt = randomBytes(random, SALT_LEN);
  return `${PHC_PREFIX}${base64NoPadEncode(salt)}$${base64NoPadEncode(derive(password, salt))}`;
}

/**
 * Parses a PHC string strictly: only argon2id, v=19 and exactly the pinned parameters, a 16-byte salt and a 32-byte
 * hash in canonical unpadded base64. Anything else (other parameters, extra fields, padding) is null; never throws.
 */
export function parsePasswordHash(phc: string): PasswordHashParts | null {
  if (phc.length !== PHC_LEN || !phc.startsWith(PHC_PREFIX)) return null;
  const rest = phc.slice(PHC_PREFIX.length);
  if (rest.charAt(SALT_B64_LEN) !== "$") return null;
  const salt = base64NoPadDecode(rest.slice(0, SALT_B64_LEN));
  const hash = base64NoPadDecode(rest.slice(SALT_B64_LEN + 1));
  if (salt === null || hash === null || salt.length !== SALT_LEN || hash.length !== ARGON2.dkLen) return null;
  return { salt, hash };
}

/**
 * Verifies a password against a stored PHC string in constant time. False for a wrong password and for any PHC
 * string {@link parsePasswordHash} refuses; never throws. A password longer than any the policy admits is refused
 * without hashing (its length is the caller's own input, so skipping the work reveals nothing). For an unknown
 * user, call it with {@link DUMMY_PASSWORD_HASH}.
 */
export function verifyPassword(password: string, phc: string): boolean {
  const parts = parsePasswordHash(phc);
  if (parts === null || password.length > RAW_LENGTH_LIMIT) return false;
  return constantTimeEqual(derive(password, parts.salt), parts.hash);
}
