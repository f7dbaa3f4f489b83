import { type Decoded, EncodeError, fail, ok, viewOf } from "./decode.ts";
import { MAX_PEER_DATAGRAM } from "./peer-frames.ts";
import { PROTOCOL_VERSION, SESSION_ID_LEN } from "./version.ts";

/**
 * Relay datagrams (endpoint <-> relay node). Multi-byte integers are little-endian. Every frame starts with
 * a 20-byte header:
 *
 *   0      1      2             4                      20
 *   +------+------+-------------+----------------------+
 *   | ver  | type | reserved=0  | session_id (16)      |
 *   +------+------+-------------+----------------------+
 *
 * Types are disjoint from peer frame types (0x01..0x04), so an endpoint can tell a relay frame from a
 * direct peer datagram by the second byte. See PROTOCOL.md for each layout.
 */
export const RelayFrameType = {
  /** peer -> relay: header | role u8 | reserved[3] | client_nonce[16] | zero padding to 96 bytes */
  Hello: 0x10,
  /** relay -> peer: header | client_nonce[16] | cookie[32]  (68 bytes, never larger than the HELLO) */
  Challenge: 0x11,
  /** peer -> relay: header | role u8 | reserved u8 | lease_len u16 | cookie[32] | proof[64] | lease[lease_len] */
  LeasePresent: 0x12,
  /** relay -> peer: header | role u8 | peer_bound u8 | reserved[2] | expires_in_secs u32 | address */
  LeaseAck: 0x13,
  /** relay -> peer: header | reason u8 | reserved[3] */
  LeaseReject: 0x14,
  /** both ways: header | payload (1..MAX_PEER_DATAGRAM opaque bytes) */
  Forward: 0x15,
  /** peer -> relay keepalive: header | nonce[8] */
  Ping: 0x16,
  /** relay -> bound peer: header | nonce[8] */
  Pong: 0x17,
} as const;
export type RelayFrameType = (typeof RelayFrameType)[keyof typeof RelayFrameType];

export const RELAY_HEADER_LEN = 4 + SESSION_ID_LEN;
export const HELLO_LEN = 96;
export const CLIENT_NONCE_LEN = 16;
export const COOKIE_LEN = 32;
export const PROOF_LEN = 64;
export const CHALLENGE_LEN = RELAY_HEADER_LEN + CLIENT_NONCE_LEN + COOKIE_LEN;
export const LEASE_PRESENT_FIXED_LEN = RELAY_HEADER_LEN + 4 + COOKIE_LEN + PROOF_LEN;
export const REJECT_LEN = RELAY_HEADER_LEN + 4;
export const PING_LEN = RELAY_HEADER_LEN + 8;
/** The largest relay datagram accepted or produced. */
export const MAX_RELAY_DATAGRAM = RELAY_HEADER_LEN + MAX_PEER_DATAGRAM;
/** The largest lease (a compact JWS) a LEASE_PRESENT can carry. */
export const MAX_LEASE_LEN = MAX_RELAY_DATAGRAM - LEASE_PRESENT_FIXED_LEN;

/** Which side of a session a peer is. */
export const Role = { Host: 1, Client: 2 } as const;
export type Role = (typeof Role)[keyof typeof Role];

/**
 * Why a relay refused a lease or a frame. The code doubles as a metric label.
 */
export const RejectReason = {
  InvalidLease: 1,
  Expired: 2,
  WrongRelay: 3,
  WrongSession: 4,
  BadCookie: 5,
  RevokedKey: 6,
  SessionFull: 7,
  Overloaded: 8,
  AddressBlocked: 9,
  BadProof: 10,
  UnsupportedVersion: 11,
  RateLimited: 12,
  UnknownSession: 13,
  RoleMismatch: 14,
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

const REJECT_REASONS: ReadonlySet<number> = new Set(Object.values(RejectReason));

/** The peer's address as the relay saw it (a candidate for the direct path). */
export type ObservedAddress =
  | { readonly family: 4; readonly address: Uint8Array; readonly port: number }
  | { readonly family: 6; readonly address: Uint8Array; readonly port: number };

export interface HelloFrame {
  readonly type: typeof RelayFrameType.Hello;
  readonly sessionId: Uint8Array;
  readonly role: Role;
  readonly clientNonce: Uint8Array;
}
export interface ChallengeFrame {
  readonly type: typeof RelayFrameType.Challenge;
  readonly sessionId: Uint8Array;
  readonly clientNonce: Uint8Array;
  readonly cookie: Uint8Array;
}
export interface LeasePresentFrame {
  readonly type: typeof RelayFrameType.LeasePresent;
  readonly sessionId: Uint8Array;
  readonly role: Role;
  readonly cookie: Uint8Array;
  /** Ed25519 signature by the lease's confirmation key over {@link leaseProofMessage}. */
  readonly proof: Uint8Array;
  /** The lease, a compact JWS in ASCII. */
  readonly lease: Uint8Array;
}
export interface LeaseAckFrame {
  readonly type: typeof RelayFrameType.LeaseAck;
  readonly sessionId: Uint8Array;
  readonly role: Role;
  /** True when the other peer of the session is bound too, so FORWARD frames will be delivered. */
  readonly peerBound: boolean;
  readonly expiresInSecs: number;
  readonly observed: ObservedAddress;
}
export interface LeaseRejectFrame {
  readonly type: typeof RelayFrameType.LeaseReject;
  readonly sessionId: Uint8Array;
  readonly reason: RejectReason;
}
export interface ForwardFrame {
  readonly type: typeof RelayFrameType.Forward;
  readonly sessionId: Uint8Array;
  readonly payload: Uint8Array;
}
export interface PingFrame {
  readonly type: typeof RelayFrameType.Ping | typeof RelayFrameType.Pong;
  readonly sessionId: Uint8Array;
  readonly nonce: Uint8Array;
}

export type RelayFrame =
  | HelloFrame
  | ChallengeFrame
  | LeasePresentFrame
  | LeaseAckFrame
  | LeaseRejectFrame
  | ForwardFrame
  | PingFrame;

function isRole(value: number): value is Role {
  return value === Role.Host || value === Role.Client;
}

/**
 * Decodes one relay datagram. Byte fields are views into `datagram`. Never throws.
 */
export function decodeRelayFrame(datagram: Uint8Array): Decoded<RelayFrame> {
  if (datagram.length > MAX_RELAY_DATAGRAM) return fail("too-large");
  if (datagram.length < RELAY_HEADER_LEN) return fail("too-short");
  const view = viewOf(datagram);
  if (view.getUint8(0) !== PROTOCOL_VERSION) return fail("unsupported-version");
  if (view.getUint16(2, true) !== 0) return fail("bad-field");
  const type = view.getUint8(1);
  const sessionId = datagram.subarray(4, RELAY_HEADER_LEN);
  const h = RELAY_HEADER_LEN;
  switch (type) {
    case RelayFrameType.Hello: {
      if (datagram.length !== HELLO_LEN) return fail("bad-length");
      const role = view.getUint8(h);
      if (!isRole(role)) return fail("bad-field");
      return ok({ type, sessionId, role, clientNonce: datagram.subarray(h + 4, h + 4 + CLIENT_NONCE_LEN) });
    }
    case RelayFrameType.Challenge:
      if (datagram.length !== CHALLENGE_LEN) return fail("bad-length");
      return ok({
        type,
        sessionId,
        clientNonce: datagram.subarray(h, h + CLIENT_NONCE_LEN),
        cookie: datagram.subarray(h + CLIENT_NONCE_LEN, CHALLENGE_LEN),
      });
    case RelayFrameType.LeasePresent: {
      if (datagram.length < LEASE_PRESENT_FIXED_LEN + 1) return fail("too-short");
      const role = view.getUint8(h);
      if (!isRole(role) || view.getUint8(h + 1) !== 0) return fail("bad-field");
      const leaseLength = view.getUint16(h + 2, true);
      if (leaseLength === 0 || datagram.length !== LEASE_PRESENT_FIXED_LEN + leaseLength)
        return fail("bad-length");
      const cookieAt = h + 4;
      const proofAt = cookieAt + COOKIE_LEN;
      return ok({
        type,
        sessionId,
        role,
        cookie: datagram.subarray(cookieAt, proofAt),
        proof: datagram.subarray(proofAt, proofAt + PROOF_LEN),
        lease: datagram.subarray(LEASE_PRESENT_FIXED_LEN),
      });
    }
    case RelayFrameType.LeaseAck: {
      if (datagram.length < h + 8 + 3) return fail("too-short");
      const role = view.getUint8(h);
      const peerBound = view.getUint8(h + 1);
      if (!isRole(role) || peerBound > 1 || view.getUint16(h + 2, true) !== 0) return fail("bad-field");
      const expiresInSecs = view.getUint32(h + 4, true);
      const family = view.getUint8(h + 8);
      const port = view.getUint16(h + 9, true);
      const addressAt = h + 11;
      const addressLength = family === 4 ? 4 : family === 6 ? 16 : -1;
      if (addressLength < 0) return fail("bad-field");
      if (datagram.length !== addressAt + addressLength) return fail("bad-length");
      const address = datagram.subarray(addressAt, addressAt + addressLength);
      return ok({
        type,
        sessionId,
        role,
        peerBound: peerBound === 1,
        expiresInSecs,
        observed: family === 4 ? { family: 4, address, port } : { family: 6, address, port },
      });
    }
    case RelayFrameType.LeaseReject: {
      if (datagram.length !== REJECT_LEN) return fail("bad-length");
      const reason = view.getUint8(h);
      if (!REJECT_REASONS.has(reason) || view.getUint8(h + 1) !== 0 || view.getUint16(h + 2, true) !== 0) {
        return fail("bad-field");
      }
      return ok({ type, sessionId, reason: reason as RejectReason });
    }
    case RelayFrameType.Forward:
      if (datagram.length === h) return fail("too-short");
      return ok({ type, sessionId, payload: datagram.subarray(h) });
    case RelayFrameType.Ping:
    case RelayFrameType.Pong:
      if (datagram.length !== PING_LEN) return fail("bad-length");
      return ok({ type, sessionId, nonce: datagram.subarray(h, PING_LEN) });
    default:
      return fail("unknown-type");
  }
}

/**
 * The receive-path check of a FORWARD frame for one session, without allocating: true exactly when
 * {@link decodeRelayFrame} would decode `datagram` as a FORWARD whose session id equals `sessionId` (compared in
 * constant time). Its payload is then `datagram.subarray(RELAY_HEADER_LEN)`. Anything else (another type, a bad
 * header, another session) is false, and the caller decodes it the full way to learn why.
 */
export function isForwardFor(datagram: Uint8Array, sessionId: Uint8Array): boolean {
  const length = datagram.length;
  if (length <= RELAY_HEADER_LEN || length > MAX_RELAY_DATAGRAM || sessionId.length !== SESSION_ID_LEN)
    return false;
  if (datagram[0] !== PROTOCOL_VERSION || datagram[1] !== RelayFrameType.Forward) return false;
  if (datagram[2] !== 0 || datagram[3] !== 0) return false;
  let diff = 0;
  for (let i = 0; i < SESSION_ID_LEN; i++) diff |= (datagram[4 + i] as number) ^ (sessionId[i] as number);
  return diff === 0;
}

function header(length: number, type: RelayFrameType, sessionId: Uint8Array): [Uint8Array, DataView] {
  if (sessionId.length !== SESSION_ID_LEN) throw new EncodeError("session id must be 16 bytes");
  if (length > MAX_RELAY_DATAGRAM) throw new EncodeError("relay frame too large");
  const out = new Uint8Array(length);
  const view = viewOf(out);
  view.setUint8(0, PROTOCOL_VERSION);
  view.setUint8(1, type);
  out.set(sessionId, 4);
  return [out, view];
}

function fixed(bytes: Uint8Array, length: number, what: string): Uint8Array {
  if (bytes.length !== length) throw new EncodeError(`${what} must be ${length} bytes`);
  return bytes;
}

/** HELLO: padded to {@link HELLO_LEN} so the CHALLENGE reply is never larger than the request. */
export function encodeHello(sessionId: Uint8Array, role: Role, clientNonce: Uint8Array): Uint8Array {
  const [out, view] = header(HELLO_LEN, RelayFrameType.Hello, sessionId);
  view.setUint8(RELAY_HEADER_LEN, role);
  out.set(fixed(clientNonce, CLIENT_NONCE_LEN, "client nonce"), RELAY_HEADER_LEN + 4);
  return out;
}

export function encodeChallenge(
  sessionId: Uint8Array,
  clientNonce: Uint8Array,
  cookie: Uint8Array,
): Uint8Array {
  const [out] = header(CHALLENGE_LEN, RelayFrameType.Challenge, sessionId);
  out.set(fixed(clientNonce, CLIENT_NONCE_LEN, "client nonce"), RELAY_HEADER_LEN);
  out.set(fixed(cookie, COOKIE_LEN, "cookie"), RELAY_HEADER_LEN + CLIENT_NONCE_LEN);
  return out;
}

export function encodeLeasePresent(
  sessionId: Uint8Array,
  role: Role,
  cookie: Uint8Array,
  proof: Uint8Array,
  lease: Uint8Array,
): Uint8Array {
  if (lease.length === 0 || lease.length > MAX_LEASE_LEN)
    throw new EncodeError("lease is empty or too large");
  const [out, view] = header(LEASE_PRESENT_FIXED_LEN + lease.length, RelayFrameType.LeasePresent, sessionId);
  const h = RELAY_HEADER_LEN;
  view.setUint8(h, role);
  view.setUint16(h + 2, lease.length, true);
  out.set(fixed(cookie, COOKIE_LEN, "cookie"), h + 4);
  out.set(fixed(proof, PROOF_LEN, "proof"), h + 4 + COOKIE_LEN);
  out.set(lease, LEASE_PRESENT_FIXED_LEN);
  return out;
}

export function encodeLeaseAck(
  sessionId: Uint8Array,
  role: Role,
  peerBound: boolean,
  expiresInSecs: number,
  observed: ObservedAddress,
): Uint8Array {
  const addressLength = observed.family === 4 ? 4 : 16;
  fixed(observed.address, addressLength, "address");
  if (!Number.isInteger(observed.port) || observed.port < 0 || observed.port > 0xffff) {
    throw new EncodeError("port out of range");
  }
  if (!Number.isInteger(expiresInSecs) || expiresInSecs < 0 || expiresInSecs > 0xffff_ffff) {
    throw new EncodeError("expiry out of range");
  }
  const h = RELAY_HEADER_LEN;
  const [out, view] = header(h + 11 + addressLength, RelayFrameType.LeaseAck, sessionId);
  view.setUint8(h, role);
  view.setUint8(h + 1, peerBound ? 1 : 0);
  view.setUint32(h + 4, expiresInSecs, true);
  view.setUint8(h + 8, observed.family);
  view.setUint16(h + 9, observed.port, true);
  out.set(observed.address, h + 11);
  return out;
}

export function encodeLeaseReject(sessionId: Uint8Array, reason: RejectReason): Uint8Array {
  const [out, view] = header(REJECT_LEN, RelayFrameType.LeaseReject, sessionId);
  view.setUint8(RELAY_HEADER_LEN, reason);
  return out;
}

export function encodeForward(sessionId: Uint8Array, payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length > MAX_PEER_DATAGRAM)
    throw new EncodeError("payload size out of range");
  const [out] = header(RELAY_HEADER_LEN + payload.length, RelayFrameType.Forward, sessionId);
  out.set(payload, RELAY_HEADER_LEN);
  return out;
}

export function encodePing(
  type: typeof RelayFrameType.Ping | typeof RelayFrameType.Pong,
  sessionId: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  const [out] = header(PING_LEN, type, sessionId);
  out.set(fixed(nonce, 8, "nonce"), RELAY_HEADER_LEN);
  return out;
}

const PROOF_CONTEXT = new TextEncoder().encode("wavry relay lease proof v1\0");

/**
 * The bytes a peer signs with its lease's confirmation key to prove possession:
 * context || version || session_id || role || cookie || lease. The cookie binds the proof to the address
 * the relay challenged, so a captured LEASE_PRESENT cannot be replayed from elsewhere.
 */
export function leaseProofMessage(
  sessionId: Uint8Array,
  role: Role,
  cookie: Uint8Array,
  lease: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(PROOF_CONTEXT.length + 2 + SESSION_ID_LEN + COOKIE_LEN + lease.length);
  let at = 0;
  out.set(PROOF_CONTEXT, at);
  at += PROOF_CONTEXT.length;
  out[at++] = PROTOCOL_VERSION;
  out[at++] = role;
  out.set(fixed(sessionId, SESSION_ID_LEN, "session id"), at);
  at += SESSION_ID_LEN;
  out.set(fixed(cookie, COOKIE_LEN, "cookie"), at);
  at += COOKIE_LEN;
  out.set(lease, at);
  return out;
}
