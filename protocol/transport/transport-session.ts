import { type CryptoBackend, NONCE_LEN, writeCounterNonceNumber } from "../crypto/backend.ts";
import { CryptoError } from "../crypto/errors.ts";
import { viewOf } from "../wire/decode.ts";
import {
  AEAD_TAG_LEN,
  DATA_HEADER_LEN,
  type DataFrame,
  MAX_DATA_PLAINTEXT,
  writeDataHeader,
} from "../wire/peer-frames.ts";
import { ReplayWindow } from "./replay-window.ts";

/**
 * When a session must be replaced by a new handshake. Times are milliseconds of the caller's clock.
 * Defaults follow WireGuard's shape (rekey at 2 min, refuse at 3 min) with message limits far below
 * 2^53 so counters never wrap or lose precision.
 */
export interface RekeyLimits {
  /** After this age the sender should start a new handshake. */
  readonly rekeyAfterMs: number;
  /** After this age the session neither seals nor opens anything. */
  readonly rejectAfterMs: number;
  /** After this many sent messages the sender should start a new handshake. */
  readonly rekeyAfterMessages: number;
  /** Counters at or above this are never sent or accepted: sealing stops and a rekey is required. */
  readonly rejectAfterMessages: number;
}

export const DEFAULT_REKEY_LIMITS: RekeyLimits = Object.freeze({
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  rekeyAfterMessages: 2 ** 40,
  rejectAfterMessages: 2 ** 48,
});

/** Why a datagram was not opened. Doubles as a drop-counter label. */
export type OpenFailure = "wrong-index" | "replayed" | "decrypt-failed" | "expired" | "counter-limit";

/** Why a payload was not sealed. */
export type SealFailure = "expired" | "counter-limit" | "too-large";

export class TransportError extends Error {
  override readonly name = "TransportError";
  readonly code: SealFailure;
  constructor(code: SealFailure) {
    super(
      code === "too-large"
        ? "payload too large for one datagram"
        : code === "expired"
          ? "session expired: rekey required"
          : "message limit reached: rekey required",
    );
    this.code = code;
  }
}

export interface TransportSessionInit {
  readonly backend: CryptoBackend;
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  /** Our index: the peer puts it in every DATA frame it sends us. */
  readonly localIndex: number;
  /** The peer's index: we put it in every DATA frame we send. */
  readonly remoteIndex: number;
  /** The caller's clock when the session was established. */
  readonly establishedAt: number;
  readonly limits?: RekeyLimits;
  /** Channel binding (the Noise handshake hash), kept for the short authentication string. */
  readonly handshakeHash: Uint8Array;
  readonly remoteStaticKey: Uint8Array;
}

/**
 * One direction pair of transport keys from Noise Split(), with explicit 64-bit counters (Noise §11.4
 * lets the application send nonces explicitly for datagram transports).
 *
 * DATA frame = 16-byte header (version, type, receiver index, counter) || AEAD(payload). The header is the
 * associated data, the counter is the nonce. Receiving checks the replay window before decrypting and
 * updates it only after the tag verified.
 */
export class TransportSession {
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly establishedAt: number;
  readonly handshakeHash: Uint8Array;
  readonly remoteStaticKey: Uint8Array;
  readonly limits: RekeyLimits;
  readonly #backend: CryptoBackend;
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  readonly #replay: ReplayWindow;
  // Scratch buffers hoisted out of the per-packet path.
  readonly #sendNonce = new Uint8Array(NONCE_LEN);
  readonly #sendNonceView = viewOf(this.#sendNonce);
  readonly #receiveNonce = new Uint8Array(NONCE_LEN);
  readonly #receiveNonceView = viewOf(this.#receiveNonce);
  readonly #header = new Uint8Array(DATA_HEADER_LEN);
  readonly #headerView = viewOf(this.#header);
  #sendCounter = 0;

  constructor(init: TransportSessionInit) {
    this.#backend = init.backend;
    this.#sendKey = init.sendKey;
    this.#receiveKey = init.receiveKey;
    this.localIndex = init.localIndex;
    this.remoteIndex = init.remoteIndex;
    this.establishedAt = init.establishedAt;
    this.handshakeHash = init.handshakeHash;
    this.remoteStaticKey = init.remoteStaticKey;
    this.limits = init.limits ?? DEFAULT_REKEY_LIMITS;
    if (!(this.limits.rejectAfterMessages <= Number.MAX_SAFE_INTEGER))
      throw new RangeError("message limit too large");
    this.#replay = new ReplayWindow(this.limits.rejectAfterMessages);
  }

  /** Messages sent so far (the next counter). */
  get sentCount(): number {
    return this.#sendCounter;
  }

  /** True when the sender should start a new handshake (by age or by count). */
  needsRekey(now: number): boolean {
    return (
      now - this.establishedAt >= this.limits.rekeyAfterMs ||
      this.#sendCounter >= this.limits.rekeyAfterMessages
    );
  }

  /** True when the session may no longer seal or open anything. */
  isExpired(now: number): boolean {
    return now - this.establishedAt >= this.limits.rejectAfterMs;
  }

  /**
   * Seals a payload into a DATA datagram. Throws {@link TransportError} when the session is expired, the
   * counter reached its limit (it never wraps) or the payload does not fit one datagram.
   */
  seal(payload: Uint8Array, now: number): Uint8Array {
    if (payload.length > MAX_DATA_PLAINTEXT) throw new TransportError("too-large");
    if (this.isExpired(now)) throw new TransportError("expired");
    const counter = this.#sendCounter;
    if (counter >= this.limits.rejectAfterMessages) throw new TransportError("counter-limit");
    this.#sendCounter = counter + 1;
    writeDataHeader(this.#headerView, this.remoteIndex, counter);
    writeCounterNonceNumber(this.#sendNonceView, counter);
    // One allocation: the backend leaves room for the header in front of the ciphertext.
    const out = this.#backend.aeadSeal(
      this.#sendKey,
      this.#sendNonce,
      this.#header,
      payload,
      DATA_HEADER_LEN,
    );
    out.set(this.#header, 0);
    return out;
  }

  /**
   * Opens a decoded DATA frame. Returns the plaintext, or a failure label. Never throws on bad input.
   */
  open(frame: DataFrame, now: number): Uint8Array | OpenFailure {
    if (frame.receiverIndex !== this.localIndex) return "wrong-index";
    if (this.isExpired(now)) return "expired";
    if (frame.counter >= this.limits.rejectAfterMessages) return "counter-limit";
    if (!this.#replay.check(frame.counter)) return "replayed";
    if (frame.ciphertext.length < AEAD_TAG_LEN) return "decrypt-failed";
    writeCounterNonceNumber(this.#receiveNonceView, frame.counter);
    let plaintext: Uint8Array;
    try {
      plaintext = this.#backend.aeadOpen(
        this.#receiveKey,
        this.#receiveNonce,
        frame.header,
        frame.ciphertext,
      );
    } catch (error) {
      if (error instanceof CryptoError) return "decrypt-failed";
      throw error;
    }
    this.#replay.accept(frame.counter);
    return plaintext;
  }
}
