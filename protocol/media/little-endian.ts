/**
 * Little-endian integer access on byte arrays, for codecs that run once per packet: plain index arithmetic
 * instead of a DataView allocated per datagram. Callers check lengths first; these helpers do not.
 */

/** Reads an unsigned 16-bit integer at `at`. */
export function readU16(bytes: Uint8Array, at: number): number {
  return (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
}

/** Reads an unsigned 32-bit integer at `at` (the top byte is multiplied in, so the result is never negative). */
export function readU32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16)) +
    (bytes[at + 3] as number) * 0x100_0000
  );
}

/** Writes the low 16 bits of `value` at `at`. */
export function writeU16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
}

/** Writes the low 32 bits of `value` at `at`. */
export function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}
