import { type Decoded, type DecodeErrorCode, EncodeError, fail, ok } from "../wire/decode.ts";
import { AEAD_TAG_LEN, DATA_HEADER_LEN } from "../wire/peer-frames.ts";
import { readU16, readU32, writeU16, writeU32 } from "./little-endian.ts";

/**
 * The video channel's messages travel as the plaintext of DATA frames, after the 1-byte channel id the channel
 * layer prepends. Every message starts with one byte: the video format version in the high nibble and the
 * message kind in the low nibble, so one peek tells a fragment from receiver feedback.
 */
export const VIDEO_FORMAT_VERSION = 1;

/** Low nibble of byte 0 of every video-channel message. */
export const VideoMessageKind = {
  /** host -> client: a slice of an encoded frame */
  Data: 0x0,
  /** host -> client: XOR of one FEC group's data fragments */
  Parity: 0x1,
  /** client -> host: fragments to send again (nack.ts) */
  Nack: 0x2,
  /** client -> host: the decoder lost its reference, send a keyframe (keyframe-request.ts) */
  KeyframeRequest: 0x3,
} as const;
export type VideoMessageKind = (typeof VideoMessageKind)[keyof typeof VideoMessageKind];

/** A whole DATA datagram carrying video stays within 1200 bytes (issue 5: "datagrams of at most 1200 bytes"). */
export const MAX_VIDEO_DATAGRAM = 1200;
/** The channel layer's channel-id byte in front of every video message. */
export const CHANNEL_ID_LEN = 1;
/** The largest video-channel message: 1200 − 16 (DATA header) − 16 (AEAD tag) − 1 (channel id) = 1167. */
export const VIDEO_FRAGMENT_MAX_BYTES = MAX_VIDEO_DATAGRAM - DATA_HEADER_LEN - AEAD_TAG_LEN - CHANNEL_ID_LEN;
export const VIDEO_FRAGMENT_HEADER_LEN = 24;
/** The most frame bytes one fragment can carry (1143). */
export const VIDEO_FRAGMENT_MAX_PAYLOAD = VIDEO_FRAGMENT_MAX_BYTES - VIDEO_FRAGMENT_HEADER_LEN;
/**
 * The payload size the fragmenter uses by default: the largest multiple of 4 that fits, so every fragment
 * starts word aligned in the receiver's frame buffer and parity XOR runs over 32-bit words.
 */
export const DEFAULT_FRAGMENT_PAYLOAD = VIDEO_FRAGMENT_MAX_PAYLOAD & ~3;
/** The largest encoded frame accepted or produced (a 4K keyframe at high quality stays well below). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** The most data fragments per frame: a MAX_FRAME_BYTES frame needs 3680 at the default payload size. */
export const MAX_FRAGMENTS_PER_FRAME = 4096;
/** FEC group sizes: 0 turns parity off; otherwise one parity fragment per 2..32 data fragments. */
export const MIN_FEC_GROUP = 2;
export const MAX_FEC_GROUP = 32;

/** Bits of byte 1. Every other bit must be zero. */
export const VideoFragmentFlag = {
  /** the frame decodes without any earlier frame */
  Keyframe: 0x01,
  /** data: the frame's last fragment; parity: the last group's parity */
  Last: 0x02,
} as const;
const KNOWN_FLAGS = VideoFragmentFlag.Keyframe | VideoFragmentFlag.Last;

/**
 * DATA and PARITY fragments share one 24-byte header (little-endian):
 *
 *   offset size field
 *   0      1    version (high nibble) = 1 | kind (low nibble): 0 data, 1 parity
 *   1      1    flags: bit 0 keyframe, bit 1 last (see VideoFragmentFlag); bits 2..7 zero
 *   2      4    frame_id u32, +1 per frame, wraps (serial-number arithmetic)
 *   6      2    fragment_index u16: data 0..count−1; parity count + group_index
 *   8      2    fragment_count u16: data fragments in the frame, 1..4096
 *   10     2    group_index u16: data ⌊index / group_size⌋ (0 without FEC); parity the group it covers
 *   12     1    group_size u8: 0 (no FEC) or 2..32
 *   13     1    reserved, zero
 *   14     2    payload_length u16: bytes after the header; the message is exactly 24 + this
 *   16     4    timestamp u32: capture time in milliseconds (sender's clock, wraps), for delay measurement
 *   20     4    frame_length u32: bytes in the whole encoded frame, 1..4 MiB
 *   24     n    payload
 *
 * Geometry: the frame is cut into `count` slices of `S` bytes (the fragment size), the last one shorter or
 * equal. `S` is never sent: it is the length of any non-last data fragment, or follows from
 * `frame_length − (count − 1)·S = last length`. A parity payload is the XOR of its group's data payloads,
 * each zero-padded to the longest member, so it is `S` long when the group has two or more members and the
 * last fragment's length when the group is just that fragment. Carrying frame_length lets a receiver size
 * the frame (and check its bounds) from the first fragment it sees, and recover the short last fragment's
 * exact length from parity. The decoder rejects any header whose fields disagree with each other.
 */
export interface VideoFragmentFields {
  kind: typeof VideoMessageKind.Data | typeof VideoMessageKind.Parity;
  keyframe: boolean;
  last: boolean;
  frameId: number;
  index: number;
  count: number;
  groupIndex: number;
  groupSize: number;
  payloadLength: number;
  timestampMs: number;
  frameLength: number;
  /** Derived, not sent: the length of every data fragment of this frame but the last. */
  fragmentSize: number;
}

/** A decoded fragment; `payload` is a view into the decoded message. */
export interface VideoFragment extends Readonly<VideoFragmentFields> {
  readonly payload: Uint8Array;
}

/** Number of FEC groups (and parity fragments) of a frame of `count` data fragments. */
export function fecGroupCount(count: number, groupSize: number): number {
  return groupSize === 0 ? 0 : Math.ceil(count / groupSize);
}

/** Data fragments in group `group`: `groupSize`, except the last group which may be smaller. */
export function fecGroupMembers(count: number, groupSize: number, group: number): number {
  return Math.min(groupSize, count - group * groupSize);
}

/** A blank fields object to reuse with {@link decodeVideoFragmentInto}. */
export function emptyVideoFragmentFields(): VideoFragmentFields {
  return {
    kind: VideoMessageKind.Data,
    keyframe: false,
    last: false,
    frameId: 0,
    index: 0,
    count: 0,
    groupIndex: 0,
    groupSize: 0,
    payloadLength: 0,
    timestampMs: 0,
    frameLength: 0,
    fragmentSize: 0,
  };
}

/**
 * Decodes a fragment header into `out` (reused across packets, so the per-packet path allocates nothing).
 * Returns `undefined` on success, else the failure code; on failure `out` holds garbage. The payload is
 * `bytes.subarray(VIDEO_FRAGMENT_HEADER_LEN)`. Never throws.
 */
export function decodeVideoFragmentInto(
  bytes: Uint8Array,
  out: VideoFragmentFields,
): DecodeErrorCode | undefined {
  if (bytes.length > VIDEO_FRAGMENT_MAX_BYTES) return "too-large";
  if (bytes.length < VIDEO_FRAGMENT_HEADER_LEN) return "too-short";
  const versionKind = bytes[0] as number;
  if (versionKind >>> 4 !== VIDEO_FORMAT_VERSION) return "unsupported-version";
  const kind = versionKind & 0x0f;
  if (kind !== VideoMessageKind.Data && kind !== VideoMessageKind.Parity) return "unknown-type";
  const flags = bytes[1] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0 || bytes[13] !== 0) return "bad-field";
  const index = readU16(bytes, 6);
  const count = readU16(bytes, 8);
  const groupIndex = readU16(bytes, 10);
  const groupSize = bytes[12] as number;
  const payloadLength = readU16(bytes, 14);
  const frameLength = readU32(bytes, 20);
  if (VIDEO_FRAGMENT_HEADER_LEN + payloadLength !== bytes.length || payloadLength === 0) return "bad-length";
  if (frameLength === 0 || frameLength > MAX_FRAME_BYTES) return "bad-field";
  if (count === 0 || count > MAX_FRAGMENTS_PER_FRAME || count > frameLength) return "bad-field";
  if (groupSize !== 0 && (groupSize < MIN_FEC_GROUP || groupSize > MAX_FEC_GROUP)) return "bad-field";
  const last = (flags & VideoFragmentFlag.Last) !== 0;

  // Whether this payload has the last fragment's length (else it has the full fragment size S).
  let lastSized: boolean;
  if (kind === VideoMessageKind.Data) {
    if (index >= count) return "bad-field";
    if (groupIndex !== (groupSize === 0 ? 0 : Math.floor(index / groupSize))) return "bad-field";
    if (last !== (index === count - 1)) return "bad-field";
    lastSized = last;
  } else {
    if (groupSize === 0) return "bad-field";
    const groups = Math.ceil(count / groupSize);
    if (groupIndex >= groups || index !== count + groupIndex) return "bad-field";
    if (last !== (groupIndex === groups - 1)) return "bad-field";
    lastSized = fecGroupMembers(count, groupSize, groupIndex) === 1;
  }

  let fragmentSize: number;
  if (!lastSized) fragmentSize = payloadLength;
  else if (count === 1) fragmentSize = frameLength;
  else {
    const rest = frameLength - payloadLength;
    if (rest < count - 1 || rest % (count - 1) !== 0) return "bad-length";
    fragmentSize = rest / (count - 1);
  }
  if (fragmentSize > VIDEO_FRAGMENT_MAX_PAYLOAD) return "bad-length";
  const lastLength = frameLength - (count - 1) * fragmentSize;
  if (lastLength <= 0 || lastLength > fragmentSize) return "bad-length";
  if (payloadLength !== (lastSized ? lastLength : fragmentSize)) return "bad-length";

  out.kind = kind;
  out.keyframe = (flags & VideoFragmentFlag.Keyframe) !== 0;
  out.last = last;
  out.frameId = readU32(bytes, 2);
  out.index = index;
  out.count = count;
  out.groupIndex = groupIndex;
  out.groupSize = groupSize;
  out.payloadLength = payloadLength;
  out.timestampMs = readU32(bytes, 16);
  out.frameLength = frameLength;
  out.fragmentSize = fragmentSize;
  return undefined;
}

/**
 * Decodes one video fragment (DATA or PARITY). `payload` is a view into `bytes` (no copy).
 * Never throws; malformed or self-contradictory headers yield a failure code.
 */
export function decodeVideoFragment(bytes: Uint8Array): Decoded<VideoFragment> {
  const fields = emptyVideoFragmentFields();
  const error = decodeVideoFragmentInto(bytes, fields);
  if (error !== undefined) return fail(error);
  return ok({ ...fields, payload: bytes.subarray(VIDEO_FRAGMENT_HEADER_LEN) });
}

/**
 * Writes a fragment header at `out[at .. at + 24)` without checking the fields: the fragmenter's hot path,
 * whose geometry is right by construction. `fragmentSize` is not written (it is derived on decode).
 */
export function writeVideoFragmentHeader(out: Uint8Array, at: number, fields: VideoFragmentFields): void {
  out[at] = (VIDEO_FORMAT_VERSION << 4) | fields.kind;
  out[at + 1] =
    (fields.keyframe ? VideoFragmentFlag.Keyframe : 0) | (fields.last ? VideoFragmentFlag.Last : 0);
  writeU32(out, at + 2, fields.frameId);
  writeU16(out, at + 6, fields.index);
  writeU16(out, at + 8, fields.count);
  writeU16(out, at + 10, fields.groupIndex);
  out[at + 12] = fields.groupSize;
  out[at + 13] = 0;
  writeU16(out, at + 14, fields.payloadLength);
  writeU32(out, at + 16, fields.timestampMs);
  writeU32(out, at + 20, fields.frameLength);
}

/**
 * Encodes one fragment (a new array). `payloadLength` and `fragmentSize` are taken from `payload` and the
 * decoded geometry. Throws EncodeError when the result would not decode to the same fields: what this emits,
 * every receiver accepts.
 */
export function encodeVideoFragment(
  fields: Omit<VideoFragmentFields, "payloadLength" | "fragmentSize">,
  payload: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(fields.frameId) || fields.frameId < 0 || fields.frameId > 0xffff_ffff)
    throw new EncodeError("frame id out of range");
  if (!Number.isInteger(fields.timestampMs) || fields.timestampMs < 0 || fields.timestampMs > 0xffff_ffff)
    throw new EncodeError("timestamp out of range");
  for (const value of [fields.index, fields.count, fields.groupIndex, fields.frameLength, fields.groupSize]) {
    if (!Number.isInteger(value) || value < 0) throw new EncodeError("negative or fractional field");
  }
  if (fields.index > 0xffff || fields.count > 0xffff || fields.groupIndex > 0xffff || fields.groupSize > 0xff)
    throw new EncodeError("field out of range");
  if (payload.length > VIDEO_FRAGMENT_MAX_PAYLOAD) throw new EncodeError("payload too large");
  const out = new Uint8Array(VIDEO_FRAGMENT_HEADER_LEN + payload.length);
  const header = { ...fields, payloadLength: payload.length, fragmentSize: 0 };
  writeVideoFragmentHeader(out, 0, header);
  out.set(payload, VIDEO_FRAGMENT_HEADER_LEN);
  const error = decodeVideoFragmentInto(out, emptyVideoFragmentFields());
  if (error !== undefined) throw new EncodeError(`inconsistent fragment fields (${error})`);
  return out;
}

/**
 * The kind of any video-channel message from its first byte, or a failure for an empty message or another
 * format version. Lets the channel layer dispatch without decoding twice.
 */
export function peekVideoMessageKind(bytes: Uint8Array): Decoded<VideoMessageKind> {
  const first = bytes[0];
  if (first === undefined) return fail("too-short");
  if (first >>> 4 !== VIDEO_FORMAT_VERSION) return fail("unsupported-version");
  const kind = first & 0x0f;
  switch (kind) {
    case VideoMessageKind.Data:
    case VideoMessageKind.Parity:
    case VideoMessageKind.Nack:
    case VideoMessageKind.KeyframeRequest:
      return ok(kind);
    default:
      return fail("unknown-type");
  }
}
