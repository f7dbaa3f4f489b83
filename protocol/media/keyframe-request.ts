import { type Decoded, EncodeError, fail, ok } from "../wire/decode.ts";
import { readU32, writeU32 } from "./little-endian.ts";
import { VIDEO_FORMAT_VERSION, VideoMessageKind } from "./video-fragment.ts";

/**
 * KEYFRAME_REQUEST (client -> host on the video channel): the client gave up on a frame, so every later
 * non-keyframe may reference something it does not have. Exactly 8 bytes, little-endian:
 *
 *   offset size field
 *   0      1    version (high nibble) = 1 | kind 3
 *   1      3    reserved, zero
 *   4      4    given_up_through u32: the newest frame id the client gave up on (or withheld)
 *
 * The host answers with a keyframe unless it already sent one with an id after `given_up_through` (that
 * keyframe is in flight and answers the request); the client repeats the request while it waits, so a
 * lost request or a lost keyframe costs one repeat interval, not the session.
 */
export const KEYFRAME_REQUEST_LEN = 8;

export interface KeyframeRequest {
  readonly givenUpThrough: number;
}

/** Encodes a KEYFRAME_REQUEST. */
export function encodeKeyframeRequest(request: KeyframeRequest): Uint8Array {
  const id = request.givenUpThrough;
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new EncodeError("frame id out of range");
  const out = new Uint8Array(KEYFRAME_REQUEST_LEN);
  out[0] = (VIDEO_FORMAT_VERSION << 4) | VideoMessageKind.KeyframeRequest;
  writeU32(out, 4, id);
  return out;
}

/** Decodes a KEYFRAME_REQUEST. Never throws. */
export function decodeKeyframeRequest(bytes: Uint8Array): Decoded<KeyframeRequest> {
  if (bytes.length > KEYFRAME_REQUEST_LEN) return fail("too-large");
  if (bytes.length < KEYFRAME_REQUEST_LEN) return fail("too-short");
  const first = bytes[0] as number;
  if (first >>> 4 !== VIDEO_FORMAT_VERSION) return fail("unsupported-version");
  if ((first & 0x0f) !== VideoMessageKind.KeyframeRequest) return fail("unknown-type");
  if (bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return fail("bad-field");
  return ok({ givenUpThrough: readU32(bytes, 4) });
}
