import { utf8 } from "../bytes.ts";
import { DEVICE_PUBLIC_KEY_LEN } from "./device-id.ts";

/**
 * The exact byte strings a device signs with its Ed25519 key, so the edge (verifier) and the endpoint daemon
 * (signer) agree byte for byte. Pure: no clock, no randomness; the caller passes the timestamp in.
 *
 * Every message is a fixed context string (with a trailing NUL, so no context is a prefix of another) followed by
 * length-prefixed fields. Each field is
 *
 *   +----------------------+----------------+
 *   | length: u32 big-end. | length bytes   |
 *   +----------------------+----------------+
 *
 * Length prefixes make the encoding injective: no two different field tuples produce the same bytes, so bytes
 * cannot be moved from one field to its neighbour (e.g. a name suffix becoming part of the next field).
 * Strings are UTF-8; a string with a lone surrogate is refused, because UTF-8 encoding would silently replace it
 * and two different strings would then sign the same bytes.
 */

const ENROLLMENT_CONTEXT = utf8("wavry device enrollment v1\0");
const TOKEN_CONTEXT = utf8("wavry device token v1\0");

/** The largest field accepted: a bound against a confused caller, far above any real field. */
const MAX_FIELD_LEN = 4096;

/** What a device signs to enroll its keys. */
export interface EnrollmentProofInput {
  /**
   * The account the keys are bound to: the user id when a signed-in user enrolls the device, or the canonical
   * enrollment code (see {@link canonicalEnrollmentCode}) for a headless host. Binding it means a captured proof
   * cannot enroll the keys into another account.
   */
  readonly userIdOrCode: string;
  readonly x25519Public: Uint8Array;
  readonly ed25519Public: Uint8Array;
  /** The device name as sent in the request. */
  readonly name: string;
  /** Signing time, epoch milliseconds; the edge refuses a proof outside a few minutes of its clock. */
  readonly timestampMs: number;
}

/** What a device signs to exchange a server challenge for an access token. */
export interface TokenChallengeInput {
  readonly challengeId: string;
  /** The random challenge bytes the edge issued (decoded from base64url). */
  readonly challenge: Uint8Array;
  readonly deviceId: string;
}

/**
 * Enrollment proof message:
 *
 *   "wavry device enrollment v1\0"
 *   field(utf8(userIdOrCode)) field(x25519Public) field(ed25519Public) field(utf8(name)) field(u64be(timestampMs))
 *
 * Throws a RangeError for a key that is not 32 bytes, a negative or non-integer timestamp, a string with a lone
 * surrogate or a field over 4096 bytes.
 */
export function enrollmentProofMessage(input: EnrollmentProofInput): Uint8Array {
  assertKey(input.x25519Public, "X25519");
  assertKey(input.ed25519Public, "Ed25519");
  if (!Number.isSafeInteger(input.timestampMs) || input.timestampMs < 0) {
    throw new RangeError("timestampMs must be a non-negative safe integer");
  }
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(input.timestampMs), false);
  return encodeFields(ENROLLMENT_CONTEXT, [
    text(input.userIdOrCode, "userIdOrCode"),
    input.x25519Public,
    input.ed25519Public,
    text(input.name, "name"),
    time,
  ]);
}

/**
 * Token challenge message:
 *
 *   "wavry device token v1\0" field(utf8(challengeId)) field(challenge) field(utf8(deviceId))
 *
 * The device id is bound so a signature over one device's challenge says nothing about another device.
 */
export function tokenChallengeMessage(input: TokenChallengeInput): Uint8Array {
  return encodeFields(TOKEN_CONTEXT, [
    text(input.challengeId, "challengeId"),
    input.challenge,
    text(input.deviceId, "deviceId"),
  ]);
}

/** Number of characters of an enrollment code: 20 base32 characters = 100 random bits. */
export const ENROLLMENT_CODE_CHARS = 20;
/** Characters per group when a code is shown to a human. */
const ENROLLMENT_CODE_GROUP = 4;

/**
 * The canonical form of an enrollment code as a person may type it: case and the spaces or hyphens between groups
 * do not matter ("abcd-efgh ..." and "ABCDEFGH..." are the same code). Returns null unless exactly 20 RFC 4648
 * base32 characters remain. The canonical form is what the edge hashes and what the enrollment proof signs.
 */
export function canonicalEnrollmentCode(typed: string): string | null {
  if (typed.length > 64) return null;
  const compact = typed.replace(/[\s-]/g, "").toUpperCase();
  return new RegExp(`^[A-Z2-7]{${ENROLLMENT_CODE_CHARS}}$`).test(compact) ? compact : null;
}

/** Shows a canonical code in groups of 4 separated by hyphens, e.g. "ABCD-EFGH-IJKL-MNOP-QRST". */
export function formatEnrollmentCode(canonical: string): string {
  return (canonical.match(new RegExp(`.{1,${ENROLLMENT_CODE_GROUP}}`, "g")) ?? []).join("-");
}

function assertKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== DEVICE_PUBLIC_KEY_LEN) {
    throw new RangeError(`${what} public key must be ${DEVICE_PUBLIC_KEY_LEN} bytes`);
  }
}

// With the u flag, \p{Cs} matches only unpaired surrogates (a valid pair is one astral code point).
const LONE_SURROGATE = /\p{Cs}/u;

function text(value: string, what: string): Uint8Array {
  if (typeof value !== "string" || LONE_SURROGATE.test(value)) {
    throw new RangeError(`${what} must be a well-formed string`);
  }
  return utf8(value);
}

function encodeFields(context: Uint8Array, fields: readonly Uint8Array[]): Uint8Array {
  let length = context.length;
  for (const field of fields) {
    if (!(field instanceof Uint8Array) || field.length > MAX_FIELD_LEN) {
      throw new RangeError(`a signed field must be bytes of at most ${MAX_FIELD_LEN} bytes`);
    }
    length += 4 + field.length;
  }
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out.set(context, 0);
  let at = context.length;
  for (const field of fields) {
    view.setUint32(at, field.length, false);
    out.set(field, at + 4);
    at += 4 + field.length;
  }
  return out;
}
