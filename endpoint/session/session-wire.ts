import { DEFAULT_FRAGMENT_PAYLOAD } from "../../protocol/media/video-fragment.ts";

/**
 * What the media session adds to the video channel (host → client only), because the peer link does not expose
 * the DATA counter the congestion feedback is meant to carry: every host → client video-channel body starts with
 * a per-session, per-datagram measurement sequence, and the video message follows unchanged.
 *
 *   0          4
 *   +----------+--------------------------------------------+
 *   | seq u32  | video message (DATA / PARITY, PROTOCOL.md) |
 *   +----------+--------------------------------------------+
 *
 * `seq` counts measured datagrams (originals and resends alike) from 0, little-endian, low 32 bits; the client
 * extends it to the unbounded value nearest the highest seen and reports it in congestion reports as base_seq.
 * Client → host video-channel bodies (NACK, KEYFRAME_REQUEST) carry no prefix.
 */
export const MEASURED_SEQ_LEN = 4;

/**
 * Frame bytes per data fragment: 4 below the protocol default so the sequence prefix keeps every video DATA
 * datagram within the 1200-byte budget (and a multiple of 4 for the parity XOR).
 */
export const SESSION_FRAGMENT_BYTES = DEFAULT_FRAGMENT_PAYLOAD - MEASURED_SEQ_LEN;

/** Bytes a sealed DATA datagram adds to its plaintext (16-byte header, 16-byte tag), for rate accounting. */
export const DATA_OVERHEAD = 32;

/** The unbounded sequence nearest `reference` whose low 32 bits are `wire`. */
export function extendSeq(wire: number, reference: number): number {
  const extended = reference + ((wire - (reference >>> 0)) | 0);
  return extended < 0 ? wire : extended;
}
