import { type Decoded, EncodeError, fail, ok, viewOf } from "./decode.ts";
import { PROTOCOL_VERSION, SESSION_ID_LEN } from "./version.ts";

/**
 * Peer-link datagrams (endpoint <-> endpoint, directly or inside relay FORWARD frames).
 * Multi-byte integers are little-endian. Every frame starts with the same 4 bytes:
 *
 *   0      1      2             4
 *   +------+------+-------------+
 *   | ver  | type | reserved=0  |
 *   +------+------+-------------+
 *
 * See PROTOCOL.md for the byte-by-byte layout of each type.
 */
export const PeerFrameType = {
  /** XX message 1: ver type rsv(2) | sender_index u32 | session_id[16] | noise (>= 32) */
  HandshakeInit: 0x01,
  /** XX message 2: ver type rsv(2) | sender_index u32 | receiver_index u32 | noise (>= 96) */
  HandshakeResponse: 0x02,
  /** XX message 3: ver type rsv(2) | sender_index u32 | receiver_index u32 | noise (>= 64) */
  HandshakeFinal: 0x03,
  /** Transport: ver type rsv(2) | receiver_index u32 | counter u64 | ciphertext (>= 16); bytes 0..15 are AEAD AD */
  Data: 0x04,
} as const;
export type PeerFrameType = (typeof PeerFrameType)[keyof typeof PeerFrameType];

/** The largest peer datagram accepted or produced (fits a 1500-byte MTU with relay and IP/UDP headers). */
export const MAX_PEER_DATAGRAM = 1400;
export const PEER_COMMON_LEN = 4;
export const HANDSHAKE_INIT_HEADER_LEN = 8 + SESSION_ID_LEN;
export const HANDSHAKE_REPLY_HEADER_LEN = 12;
export const DATA_HEADER_LEN = 16;
export const AEAD_TAG_LEN = 16;

// Minimum Noise message sizes for XX with our suite: msg1 = e; msg2 = e + enc(s) + tag; msg3 = enc(s) + tag.
const MIN_NOISE_INIT = 32;
const MIN_NOISE_RESPONSE = 32 + 48 + 16;
const MIN_NOISE_FINAL = 48 + 16;

/** The largest plaintext a DATA frame can carry. */
export const MAX_DATA_PLAINTEXT = MAX_PEER_DATAGRAM - DATA_HEADER_LEN - AEAD_TAG_LEN;

export interface HandshakeInitFrame {
  readonly type: typeof PeerFrameType.HandshakeInit;
  readonly senderIndex: number;
  readonly sessionId: Uint8Array;
  readonly noiseMessage: Uint8Array;
}

export interface HandshakeReplyFrame {
  readonly type: typeof PeerFrameType.HandshakeResponse | typeof PeerFrameType.HandshakeFinal;
  readonly senderIndex: number;
  readonly receiverIndex: number;
  readonly noiseMessage: Uint8Array;
}

export interface DataFrame {
  readonly type: typeof PeerFrameType.Data;
  readonly receiverIndex: number;
  /** The explicit counter (nonce); decoded frames hold values below 2^53 only. */
  readonly counter: number;
  /** Bytes 0..15 of the datagram, the AEAD associated data. */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}

export type PeerFrame = HandshakeInitFrame | HandshakeReplyFrame | DataFrame;

/**
 * Decodes one peer datagram. Returned byte fields are views into `datagram` (no copies).
 * Never throws; any malformed input yields a failure code.
 */
export function decodePeerFrame(datagram: Uint8Array): Decoded<PeerFrame> {
  if (datagram.length > MAX_PEER_DATAGRAM) return fail("too-large");
  if (datagram.length < PEER_COMMON_LEN) return fail("too-short");
  const view = viewOf(datagram);
  if (view.getUint8(0) !== PROTOCOL_VERSION) return fail("unsupported-version");
  if (view.getUint16(2, true) !== 0) return fail("bad-field");
  const type = view.getUint8(1);
  switch (type) {
    case PeerFrameType.HandshakeInit:
      if (datagram.length < HANDSHAKE_INIT_HEADER_LEN + MIN_NOISE_INIT) return fail("too-short");
      return ok({
        type,
        senderIndex: view.getUint32(4, true),
        sessionId: datagram.subarray(8, 8 + SESSION_ID_LEN),
        noiseMessage: datagram.subarray(HANDSHAKE_INIT_HEADER_LEN),
      });
    case PeerFrameType.HandshakeResponse:
    case PeerFrameType.HandshakeFinal: {
      const min = type === PeerFrameType.HandshakeResponse ? MIN_NOISE_RESPONSE : MIN_NOISE_FINAL;
      if (datagram.length < HANDSHAKE_REPLY_HEADER_LEN + min) return fail("too-short");
      return ok({
        type,
        senderIndex: view.getUint32(4, true),
        receiverIndex: view.getUint32(8, true),
        noiseMessage: datagram.subarray(HANDSHAKE_REPLY_HEADER_LEN),
      });
    }
    case PeerFrameType.Data: {
      if (datagram.length < DATA_HEADER_LEN + AEAD_TAG_LEN) return fail("too-short");
      const high = view.getUint32(12, true);
      // Counters at or above 2^53 are never sent (sessions stop far below); refuse them before any work.
      if (high >= 0x20_0000) return fail("bad-field");
      return ok({
        type,
        receiverIndex: view.getUint32(4, true),
        counter: high * 0x1_0000_0000 + view.getUint32(8, true),
        header: datagram.subarray(0, DATA_HEADER_LEN),
        ciphertext: datagram.subarray(DATA_HEADER_LEN),
      });
    }
    default:
      return fail("unknown-type");
  }
}

function writeCommon(view: DataView, type: PeerFrameType): void {
  view.setUint8(0, PROTOCOL_VERSION);
  view.setUint8(1, type);
  view.setUint16(2, 0, true);
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff_ffff)
    throw new EncodeError("index out of range");
}

/** Encodes XX message 1 with our sender index and the session id. */
export function encodeHandshakeInit(
  senderIndex: number,
  sessionId: Uint8Array,
  noiseMessage: Uint8Array,
): Uint8Array {
  checkIndex(senderIndex);
  if (sessionId.length !== SESSION_ID_LEN) throw new EncodeError("session id must be 16 bytes");
  const out = new Uint8Array(HANDSHAKE_INIT_HEADER_LEN + noiseMessage.length);
  if (out.length > MAX_PEER_DATAGRAM) throw new EncodeError("handshake message too large");
  const view = viewOf(out);
  writeCommon(view, PeerFrameType.HandshakeInit);
  view.setUint32(4, senderIndex, true);
  out.set(sessionId, 8);
  out.set(noiseMessage, HANDSHAKE_INIT_HEADER_LEN);
  return out;
}

/** Encodes XX message 2 or 3 with both indexes. */
export function encodeHandshakeReply(
  type: typeof PeerFrameType.HandshakeResponse | typeof PeerFrameType.HandshakeFinal,
  senderIndex: number,
  receiverIndex: number,
  noiseMessage: Uint8Array,
): Uint8Array {
  checkIndex(senderIndex);
  checkIndex(receiverIndex);
  const out = new Uint8Array(HANDSHAKE_REPLY_HEADER_LEN + noiseMessage.length);
  if (out.length > MAX_PEER_DATAGRAM) throw new EncodeError("handshake message too large");
  const view = viewOf(out);
  writeCommon(view, type);
  view.setUint32(4, senderIndex, true);
  view.setUint32(8, receiverIndex, true);
  out.set(noiseMessage, HANDSHAKE_REPLY_HEADER_LEN);
  return out;
}

/**
 * Writes a DATA header (16 bytes) at the start of `out`. The transport session fills in the ciphertext.
 */
export function writeDataHeader(view: DataView, receiverIndex: number, counter: number): void {
  writeCommon(view, PeerFrameType.Data);
  view.setUint32(4, receiverIndex, true);
  view.setUint32(8, counter >>> 0, true);
  view.setUint32(12, Math.floor(counter / 0x1_0000_0000), true);
}
