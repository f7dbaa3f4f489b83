import { type Decoded, EncodeError, fail, ok } from "../wire/decode.ts";
import { readU16, readU32, writeU16, writeU32 } from "./little-endian.ts";
import { MAX_FRAGMENTS_PER_FRAME, VIDEO_FORMAT_VERSION, VideoMessageKind } from "./video-fragment.ts";

/**
 * NACK (client -> host on the video channel): the data fragments of one frame the client still misses after
 * FEC and a reorder grace. Entries are RTCP-style (RFC 4585 §6.2.1 generic NACK): an index plus a 16-bit
 * bitmap of the 16 indexes after it, so runs and scattered losses both stay small. Little-endian:
 *
 *   offset size field
 *   0      1    version (high nibble) = 1 | kind 2
 *   1      1    flags: bit 0 "all" (every data fragment: the client saw none of the frame and cannot
 *               name them); bits 1..7 zero
 *   2      4    frame_id u32
 *   6      1    entry_count u8: 0 with "all", else 1..64
 *   7      1    reserved, zero
 *   8      4·n  entries: index u16 (< 4096), bitmap u16 (bit k set: index + 1 + k is missing too)
 *
 * Entries are canonical: ascending, each index above the previous entry's whole range, no index ≥ 4096.
 * NACKs name data fragments only; the host never resends parity.
 */
export const NACK_HEADER_LEN = 8;
export const NACK_ENTRY_LEN = 4;
/** At most 64 entries: a NACK stays under 264 bytes, and 64 indexes always fit. */
export const MAX_NACK_ENTRIES = 64;
/** The most indexes a caller may put in one NACK regardless of spacing (each could need its own entry). */
export const MAX_NACK_INDEXES = MAX_NACK_ENTRIES;
export const MAX_NACK_BYTES = NACK_HEADER_LEN + MAX_NACK_ENTRIES * NACK_ENTRY_LEN;
/**
 * Send every NACK and KEYFRAME_REQUEST this many times. They are tiny, and one lost costs a frame and
 * everything after it until a keyframe: in the loss simulation (test/protocol/media-loss-sim.test.ts, 5%
 * random loss, G = 8, one NACK round) one copy completes about 94% of frames, two copies over 99%.
 */
export const FEEDBACK_SEND_COPIES = 2;
const ENTRY_SPAN = 17;
const FLAG_ALL = 0x01;

/** A decoded or to-be-encoded NACK. */
export interface Nack {
  readonly frameId: number;
  /** True: resend every data fragment of the frame; `missing` is empty. */
  readonly all: boolean;
  /** Missing data fragment indexes, ascending, unique. */
  readonly missing: readonly number[];
}

/**
 * Encodes a NACK. `missing` must be ascending, unique, below 4096 and need at most 64 entries (any 64
 * indexes do). Throws EncodeError otherwise.
 */
export function encodeNack(nack: Nack): Uint8Array {
  const { frameId, all, missing } = nack;
  if (!Number.isInteger(frameId) || frameId < 0 || frameId > 0xffff_ffff)
    throw new EncodeError("frame id out of range");
  if (all && missing.length !== 0) throw new EncodeError("an 'all' NACK names no indexes");
  if (!all && missing.length === 0) throw new EncodeError("a NACK names at least one index");
  const entries: number[] = [];
  let previous = -1;
  let base = -1;
  let bitmap = 0;
  for (const index of missing) {
    if (!Number.isInteger(index) || index <= previous || index >= MAX_FRAGMENTS_PER_FRAME)
      throw new EncodeError("NACK indexes must be ascending, unique and below 4096");
    previous = index;
    if (base >= 0 && index - base < ENTRY_SPAN) {
      bitmap |= 1 << (index - base - 1);
      continue;
    }
    if (base >= 0) entries.push(base, bitmap);
    base = index;
    bitmap = 0;
  }
  if (base >= 0) entries.push(base, bitmap);
  const entryCount = entries.length / 2;
  if (entryCount > MAX_NACK_ENTRIES) throw new EncodeError("too many NACK entries");
  const out = new Uint8Array(NACK_HEADER_LEN + entryCount * NACK_ENTRY_LEN);
  out[0] = (VIDEO_FORMAT_VERSION << 4) | VideoMessageKind.Nack;
  out[1] = all ? FLAG_ALL : 0;
  writeU32(out, 2, frameId);
  out[6] = entryCount;
  for (let e = 0; e < entryCount; e++) {
    writeU16(out, NACK_HEADER_LEN + e * NACK_ENTRY_LEN, entries[2 * e] as number);
    writeU16(out, NACK_HEADER_LEN + e * NACK_ENTRY_LEN + 2, entries[2 * e + 1] as number);
  }
  return out;
}

/** Decodes a NACK; the indexes are expanded (at most 64 × 17). Never throws. */
export function decodeNack(bytes: Uint8Array): Decoded<Nack> {
  if (bytes.length > MAX_NACK_BYTES) return fail("too-large");
  if (bytes.length < NACK_HEADER_LEN) return fail("too-short");
  const first = bytes[0] as number;
  if (first >>> 4 !== VIDEO_FORMAT_VERSION) return fail("unsupported-version");
  if ((first & 0x0f) !== VideoMessageKind.Nack) return fail("unknown-type");
  const flags = bytes[1] as number;
  if ((flags & ~FLAG_ALL) !== 0 || bytes[7] !== 0) return fail("bad-field");
  const all = flags === FLAG_ALL;
  const entryCount = bytes[6] as number;
  if (entryCount > MAX_NACK_ENTRIES) return fail("bad-field");
  if (bytes.length !== NACK_HEADER_LEN + entryCount * NACK_ENTRY_LEN) return fail("bad-length");
  if (all !== (entryCount === 0)) return fail("bad-field");
  const missing: number[] = [];
  let floor = 0;
  for (let e = 0; e < entryCount; e++) {
    const at = NACK_HEADER_LEN + e * NACK_ENTRY_LEN;
    const base = readU16(bytes, at);
    const bitmap = readU16(bytes, at + 2);
    if (base < floor || base >= MAX_FRAGMENTS_PER_FRAME) return fail("bad-field");
    // The highest index the bitmap names: 32 - clz32 gives the bit length.
    const top = base + (32 - Math.clz32(bitmap));
    if (top >= MAX_FRAGMENTS_PER_FRAME) return fail("bad-field");
    missing.push(base);
    for (let k = 0; k < 16; k++) if ((bitmap >>> k) & 1) missing.push(base + 1 + k);
    floor = base + ENTRY_SPAN;
  }
  return ok({ frameId: readU32(bytes, 2), all, missing });
}
