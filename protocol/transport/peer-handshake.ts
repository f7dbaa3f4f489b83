import { concatBytes, constantTimeEqual, utf8 } from "../bytes.ts";
import type { CryptoBackend, KeyPair, RandomSource } from "../crypto/backend.ts";
import { NoiseError, type NoiseErrorCode } from "../noise/errors.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import {
  encodeHandshakeInit,
  encodeHandshakeReply,
  type HandshakeInitFrame,
  type HandshakeReplyFrame,
  PeerFrameType,
} from "../wire/peer-frames.ts";
import { PROTOCOL_VERSION, SESSION_ID_LEN } from "../wire/version.ts";
import { type RekeyLimits, TransportSession } from "./transport-session.ts";

/** The peer link's pinned Noise protocol. */
export const PEER_NOISE_PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/** The largest application payload carried in handshake messages 2 and 3 (encrypted there). */
export const MAX_HANDSHAKE_PAYLOAD = 256;

const PROLOGUE_LABEL = utf8("wavry peer link\0");

/**
 * The prologue binds the protocol version and the session id into the handshake hash: a handshake
 * message replayed into another session, or from a peer of another version, fails to authenticate.
 */
export function peerPrologue(sessionId: Uint8Array): Uint8Array {
  if (sessionId.length !== SESSION_ID_LEN) throw new RangeError("session id must be 16 bytes");
  return concatBytes(PROLOGUE_LABEL, Uint8Array.of(PROTOCOL_VERSION), sessionId);
}

/** Why a handshake datagram was not taken. Doubles as a drop-counter label. */
export type HandshakeFailure =
  | "wrong-session"
  | "wrong-index"
  | "unexpected"
  | "payload-too-large"
  | Extract<NoiseErrorCode, "decrypt-failed" | "invalid-dh" | "message-too-short" | "remote-static-rejected">;

export interface PeerHandshakeOptions {
  readonly backend: CryptoBackend;
  readonly random: RandomSource;
  readonly staticKeyPair: KeyPair;
  readonly sessionId: Uint8Array;
  /** Our random 32-bit index for this attempt. */
  readonly localIndex: number;
  /**
   * Accepts or refuses the peer's static key: it must equal the key the edge published for the expected
   * device and the local trust store. A refused key fails only that datagram.
   */
  readonly verifyRemoteStatic: (remoteStaticKey: Uint8Array) => boolean;
  /** Our payload for message 2 or 3 (encrypted), e.g. a device id. At most 256 bytes. */
  readonly payload?: Uint8Array;
  readonly limits?: RekeyLimits;
}

export interface Established {
  readonly session: TransportSession;
  /** The peer's handshake payload (authenticated and encrypted). */
  readonly remotePayload: Uint8Array;
}

function failure(error: unknown): HandshakeFailure {
  if (error instanceof NoiseError) {
    switch (error.code) {
      case "decrypt-failed":
      case "invalid-dh":
      case "message-too-short":
      case "remote-static-rejected":
        return error.code;
      default:
        return "unexpected";
    }
  }
  throw error;
}

function newState(options: PeerHandshakeOptions, initiator: boolean): HandshakeState {
  if ((options.payload?.length ?? 0) > MAX_HANDSHAKE_PAYLOAD)
    throw new RangeError("handshake payload too large");
  return new HandshakeState({
    backend: options.backend,
    protocolName: PEER_NOISE_PROTOCOL,
    initiator,
    prologue: peerPrologue(options.sessionId),
    staticKeyPair: options.staticKeyPair,
    random: options.random,
    verifyRemoteStatic: options.verifyRemoteStatic,
  });
}

function establish(
  options: PeerHandshakeOptions,
  state: HandshakeState,
  remoteIndex: number,
  now: number,
): TransportSession {
  const ciphers = state.split();
  if (ciphers.send === null || ciphers.receive === null || ciphers.remoteStaticKey === null) {
    throw new NoiseError("handshake-not-finished");
  }
  return new TransportSession({
    backend: options.backend,
    sendKey: ciphers.send.takeKey(),
    receiveKey: ciphers.receive.takeKey(),
    localIndex: options.localIndex,
    remoteIndex,
    establishedAt: now,
    handshakeHash: ciphers.handshakeHash,
    remoteStaticKey: ciphers.remoteStaticKey,
    ...(options.limits !== undefined && { limits: options.limits }),
  });
}

/**
 * The initiator (client) side of the peer-link XX handshake:
 * `start()` -> INIT; `handleResponse(RESP)` -> FINAL + session. Retransmitting is the caller's job:
 * `start()` returns the same INIT each time, and a repeated RESP after success yields the same FINAL.
 */
export class InitiatorHandshake {
  readonly #options: PeerHandshakeOptions;
  readonly #state: HandshakeState;
  #init: Uint8Array | null = null;
  #done: { response: Uint8Array; final: Uint8Array } | null = null;

  constructor(options: PeerHandshakeOptions) {
    this.#options = options;
    this.#state = newState(options, true);
  }

  /** The INIT datagram (XX message 1). The same bytes on every call, for retransmission. */
  start(): Uint8Array {
    if (this.#init === null) {
      // XX message 1 travels in clear: it carries only our ephemeral key, never a payload.
      const message = this.#state.writeMessage(new Uint8Array(0));
      this.#init = encodeHandshakeInit(this.#options.localIndex, this.#options.sessionId, message);
    }
    return this.#init;
  }

  /**
   * Takes a RESP frame. On success returns the FINAL datagram to send and the established session; a
   * duplicate of the RESP that completed the handshake returns `{ final }` again for retransmission.
   */
  handleResponse(
    frame: HandshakeReplyFrame,
    now: number,
  ): ({ final: Uint8Array } & Partial<Established>) | HandshakeFailure {
    if (frame.type !== PeerFrameType.HandshakeResponse) return "unexpected";
    if (frame.receiverIndex !== this.#options.localIndex) return "wrong-index";
    if (this.#done !== null) {
      return constantTimeEqual(this.#done.response, frame.noiseMessage)
        ? { final: this.#done.final }
        : "unexpected";
    }
    if (this.#init === null) return "unexpected";
    let remotePayload: Uint8Array;
    try {
      remotePayload = this.#state.readMessage(frame.noiseMessage);
    } catch (error) {
      return failure(error);
    }
    if (remotePayload.length > MAX_HANDSHAKE_PAYLOAD) return "payload-too-large";
    const message = this.#state.writeMessage(this.#options.payload ?? new Uint8Array(0));
    const final = encodeHandshakeReply(
      PeerFrameType.HandshakeFinal,
      this.#options.localIndex,
      frame.senderIndex,
      message,
    );
    this.#done = { response: frame.noiseMessage.slice(), final };
    const session = establish(this.#options, this.#state, frame.senderIndex, now);
    return { final, session, remotePayload };
  }
}

/**
 * The responder (host) side: `handleInit(INIT)` -> RESP; `handleFinal(FINAL)` -> session.
 * A repeated INIT (the same bytes) yields the same RESP, for retransmission.
 */
export class ResponderHandshake {
  readonly #options: PeerHandshakeOptions;
  readonly #state: HandshakeState;
  #answered: { init: Uint8Array; response: Uint8Array; remoteIndex: number } | null = null;

  constructor(options: PeerHandshakeOptions) {
    this.#options = options;
    this.#state = newState(options, false);
  }

  /** The peer's index, once an INIT was answered. */
  get remoteIndex(): number | null {
    return this.#answered?.remoteIndex ?? null;
  }

  handleInit(frame: HandshakeInitFrame): Uint8Array | HandshakeFailure {
    if (!constantTimeEqual(frame.sessionId, this.#options.sessionId)) return "wrong-session";
    if (this.#answered !== null) {
      const same =
        this.#answered.remoteIndex === frame.senderIndex &&
        constantTimeEqual(this.#answered.init, frame.noiseMessage);
      return same ? this.#answered.response : "unexpected";
    }
    // Message 1 is unauthenticated: refuse anything but a bare ephemeral key before touching the state.
    if (frame.noiseMessage.length !== 32) return "unexpected";
    try {
      this.#state.readMessage(frame.noiseMessage);
    } catch (error) {
      return failure(error);
    }
    const message = this.#state.writeMessage(this.#options.payload ?? new Uint8Array(0));
    const response = encodeHandshakeReply(
      PeerFrameType.HandshakeResponse,
      this.#options.localIndex,
      frame.senderIndex,
      message,
    );
    this.#answered = { init: frame.noiseMessage.slice(), response, remoteIndex: frame.senderIndex };
    return response;
  }

  handleFinal(frame: HandshakeReplyFrame, now: number): Established | HandshakeFailure {
    if (frame.type !== PeerFrameType.HandshakeFinal) return "unexpected";
    if (frame.receiverIndex !== this.#options.localIndex) return "wrong-index";
    if (this.#answered === null || frame.senderIndex !== this.#answered.remoteIndex) return "unexpected";
    if (this.#state.status !== "in-progress") return "unexpected";
    let remotePayload: Uint8Array;
    try {
      remotePayload = this.#state.readMessage(frame.noiseMessage);
    } catch (error) {
      return failure(error);
    }
    if (remotePayload.length > MAX_HANDSHAKE_PAYLOAD) return "payload-too-large";
    return { session: establish(this.#options, this.#state, this.#answered.remoteIndex, now), remotePayload };
  }
}
