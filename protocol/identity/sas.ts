import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8 } from "../bytes.ts";

/**
 * Short authentication string (DESIGN.md: Identity): six decimal digits derived from a finished Noise handshake
 * hash `h` (Noise §5.2: GetHandshakeHash), which both peers hold and which commits to every key of the handshake.
 * Two people read the digits aloud or compare them on screen to confirm a first pairing: a machine in the middle
 * runs two handshakes with two different hashes, so it would have to find a collision of the digits, a 1 in 10^6
 * chance per attempt, and every attempt shows as a failed comparison to a human.
 *
 *   sas = decimal6( u64be(SHA-256("wavry sas v1\0" || h)[0..8]) mod 10^6 )
 *
 * A 64-bit value reduced mod 10^6 has a bias below 2^-44, negligible. Pure: the caller passes `h` in.
 */

const SAS_CONTEXT = utf8("wavry sas v1\0");
/** Digits in a short authentication string. */
export const SAS_DIGITS = 6;

/** The six-digit short authentication string of a handshake hash (zero-padded, e.g. "048213"). */
export function shortAuthString(handshakeHash: Uint8Array): string {
  if (!(handshakeHash instanceof Uint8Array) || handshakeHash.length < 32) {
    throw new RangeError("handshake hash must be at least 32 bytes");
  }
  const digest = sha256(concatBytes(SAS_CONTEXT, handshakeHash));
  const value = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
  return (value % 1_000_000n).toString().padStart(SAS_DIGITS, "0");
}

/** Shows a short authentication string in two groups of three ("048 213"), easier to read aloud. */
export function formatShortAuthString(sas: string): string {
  return `${sas.slice(0, 3)} ${sas.slice(3)}`;
}
