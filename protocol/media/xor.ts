/**
 * XOR for parity FEC. Runs over 32-bit words when both ranges start 4-byte aligned in their buffers (the
 * fragmenter and the reassembler lay fragments out so that they do), byte by byte otherwise and for the tail.
 * XOR is byte-wise, so the platform's word endianness does not matter.
 */

/** Below this many bytes the word views cost more than they save. */
const WORD_PATH_MIN = 32;

/** `dst[dstAt + i] ^= src[srcAt + i]` for `i` in `[0, length)`. Ranges must lie inside both arrays. */
export function xorInto(
  dst: Uint8Array,
  dstAt: number,
  src: Uint8Array,
  srcAt: number,
  length: number,
): void {
  let i = 0;
  const dstByte = dst.byteOffset + dstAt;
  const srcByte = src.byteOffset + srcAt;
  if (length >= WORD_PATH_MIN && ((dstByte | srcByte) & 3) === 0) {
    const words = length >>> 2;
    const d32 = new Uint32Array(dst.buffer, dstByte, words);
    const s32 = new Uint32Array(src.buffer, srcByte, words);
    for (let w = 0; w < words; w++) d32[w] = (d32[w] as number) ^ (s32[w] as number);
    i = words << 2;
  }
  for (; i < length; i++) dst[dstAt + i] = (dst[dstAt + i] as number) ^ (src[srcAt + i] as number);
}

/** Rounds up to a multiple of 4, the stride unit that keeps fragment payloads word aligned. */
export function roundUp4(n: number): number {
  return (n + 3) & ~3;
}
