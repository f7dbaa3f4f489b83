import { type Decoded, EncodeError, fail, ok } from "../wire/decode.ts";
import { MAX_DATA_PLAINTEXT } from "../wire/peer-frames.ts";

/**
 * Channels inside the encrypted DATA payload (DESIGN.md "Endpoint data plane"). The first plaintext byte
 * names the channel; the rest is the channel body, whose layout each channel defines:
 *
 *   0          1                                  n (<= MAX_DATA_PLAINTEXT = 1368)
 *   +----------+----------------------------------+
 *   | channel  | body (0 ... 1367 bytes)          |
 *   +----------+----------------------------------+
 *
 * The channel byte sits inside the ciphertext, so an observer (or the relay) cannot tell input from video
 * except by size and timing. Codes are dense and small so a receiver can index a table by them; a code
 * outside this set is refused as `unknown-type` (a peer of a newer minor version must not be
 * misinterpreted, and the protocol version byte already guards incompatible changes).
 */
export const Channel = {
  /** Session control (keepalive, keyframe policy, stats); body layout: its own module. */
  Control: 0,
  /** Keyboard and mouse, reliable and ordered: see `reliable-input.ts`. Sent ahead of video. */
  Input: 1,
  /** Encoded video fragments with parity FEC (protocol/media). */
  Video: 2,
  /** Encoded audio frames (protocol/media). */
  Audio: 3,
  /** Receiver -> sender transport feedback (congestion reports): body byte 0 is a {@link FeedbackKind}. */
  Feedback: 4,
} as const;
export type Channel = (typeof Channel)[keyof typeof Channel];

/**
 * The first body byte on the feedback channel, so several receiver -> sender reports can share it. The
 * layout after the kind byte belongs to the module named here; other values are refused (`unknown-type`).
 * Video NACKs and keyframe requests currently travel on the video channel as video message kinds
 * (protocol/media/nack.ts, keyframe-request.ts); 2 and 3 stay free should they move here.
 *
 *   0       1
 *   +-------+---------------------------+
 *   | kind  | kind-specific fields      |
 *   +-------+---------------------------+
 */
export const FeedbackKind = {
  /** Per-packet arrival report for congestion control: `protocol/media/congestion-feedback.ts`. */
  CongestionReport: 1,
} as const;
export type FeedbackKind = (typeof FeedbackKind)[keyof typeof FeedbackKind];

/** Bytes in front of every channel body. */
export const CHANNEL_HEADER_LEN = 1;
/** The largest channel body one DATA frame can carry. */
export const MAX_CHANNEL_BODY = MAX_DATA_PLAINTEXT - CHANNEL_HEADER_LEN;

const CHANNEL_COUNT = 5;

/** A plaintext split into its channel and body. `body` is a view of the plaintext (no copy). */
export interface ChannelPayload {
  readonly channel: Channel;
  readonly body: Uint8Array;
}

/** True when `value` is a known channel code. */
export function isChannel(value: number): value is Channel {
  return Number.isInteger(value) && value >= 0 && value < CHANNEL_COUNT;
}

/**
 * Splits a DATA plaintext into (channel, body view). Never throws: an empty plaintext is `too-short`, one
 * above {@link MAX_DATA_PLAINTEXT} is `too-large`, an unassigned channel code is `unknown-type`.
 */
export function decodeChannelPayload(plaintext: Uint8Array): Decoded<ChannelPayload> {
  if (plaintext.length > MAX_DATA_PLAINTEXT) return fail("too-large");
  if (plaintext.length < CHANNEL_HEADER_LEN) return fail("too-short");
  const channel = plaintext[0] as number;
  if (!isChannel(channel)) return fail("unknown-type");
  return ok({ channel, body: plaintext.subarray(CHANNEL_HEADER_LEN) });
}

/**
 * Allocates a plaintext of `bodyLength` body bytes with the channel byte written, so encoders fill the
 * body in place instead of building it and copying. Throws {@link EncodeError} on a caller bug.
 */
export function allocChannelPayload(channel: Channel, bodyLength: number): Uint8Array {
  if (!isChannel(channel)) throw new EncodeError("unknown channel");
  if (!Number.isInteger(bodyLength) || bodyLength < 0 || bodyLength > MAX_CHANNEL_BODY) {
    throw new EncodeError("channel body does not fit one DATA frame");
  }
  const out = new Uint8Array(CHANNEL_HEADER_LEN + bodyLength);
  out[0] = channel;
  return out;
}

/** Builds a DATA plaintext from a channel and a body (one copy of the body). */
export function encodeChannelPayload(channel: Channel, body: Uint8Array): Uint8Array {
  const out = allocChannelPayload(channel, body.length);
  out.set(body, CHANNEL_HEADER_LEN);
  return out;
}
