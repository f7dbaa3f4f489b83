/**
 * The binary WebSocket message that carries one encoded H.264 access unit from the daemon to the viewer page.
 * The page (page/viewer.js) parses the same layout; keep both in step.
 *
 *   flags u8 (bit 0 = keyframe, bits 1-7 = 0) | timestamp_us float64 little-endian | Annex B bytes
 *
 * The timestamp is a float64 because that is what WebCodecs takes (`EncodedVideoChunk.timestamp`, microseconds);
 * integers are exact in it up to 2^53 µs, about 285 years.
 */
export const FRAME_HEADER_LEN = 9;
/** Bit 0 of the flags byte: the unit is an IDR access unit the decoder can start from. */
export const FRAME_FLAG_KEYFRAME = 0x01;

/** One encoded access unit (Annex B, start codes included) handed to {@link encodeFrameMessage}. */
export interface AccessUnit {
  /** Annex B bytes of one access unit. */
  readonly data: Uint8Array;
  /** True for an IDR access unit (SPS/PPS should travel with it so a fresh decoder can start). */
  readonly keyframe: boolean;
  /** Presentation time in microseconds, non-negative. */
  readonly timestampUs: number;
}

/** Builds the message for `unit`. Throws RangeError on a timestamp WebCodecs could not take. */
export function encodeFrameMessage(unit: AccessUnit): Uint8Array {
  if (!Number.isSafeInteger(unit.timestampUs) || unit.timestampUs < 0) {
    throw new RangeError("timestampUs must be a non-negative safe integer");
  }
  const out = new Uint8Array(FRAME_HEADER_LEN + unit.data.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, unit.keyframe ? FRAME_FLAG_KEYFRAME : 0);
  view.setFloat64(1, unit.timestampUs, true);
  out.set(unit.data, FRAME_HEADER_LEN);
  return out;
}
