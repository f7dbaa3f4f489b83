import {
  type CryptoBackend,
  generateX25519KeyPair,
  KEY_LEN,
  type KeyPair,
  type RandomSource,
} from "../crypto/backend.ts";
import { CryptoError } from "../crypto/errors.ts";
import type { CipherState } from "./cipher-state.ts";
import { MAX_MESSAGE_LEN, NoiseError } from "./errors.ts";
import type { HandshakePattern, PreToken, Token } from "./patterns.ts";
import { parseProtocolName } from "./protocol-name.ts";
import { SymmetricState } from "./symmetric-state.ts";

const DH_LEN = 32;
const TAG_LEN = 16;
const EMPTY = new Uint8Array(0);

/** What a handshake needs to start (Noise §5.3 Initialize()). */
export interface HandshakeOptions {
  readonly backend: CryptoBackend;
  /** e.g. "Noise_XX_25519_ChaChaPoly_BLAKE2s"; only the 25519_ChaChaPoly_BLAKE2s suite is accepted. */
  readonly protocolName: string;
  readonly initiator: boolean;
  readonly prologue?: Uint8Array;
  /** Our static key pair, where the pattern sends or pre-shares ours. */
  readonly staticKeyPair?: KeyPair;
  /** The peer's static public key, where the pattern pre-shares it. */
  readonly remoteStaticKey?: Uint8Array;
  /** One 32-byte key per psk token, in the order the tokens appear. */
  readonly psks?: readonly Uint8Array[];
  /** Source for the ephemeral key. */
  readonly random: RandomSource;
  /**
   * A fixed ephemeral key pair. Only for test vectors: a real handshake must draw a fresh one.
   */
  readonly fixedEphemeralKeyPair?: KeyPair;
  /** The peer's ephemeral public key, only for patterns whose pre-messages carry "e". */
  readonly remoteEphemeralKey?: Uint8Array;
  /**
   * Called with the peer's static key as soon as a message reveals it. Returning false fails that
   * readMessage with `remote-static-rejected` and leaves the handshake unchanged.
   */
  readonly verifyRemoteStatic?: (remoteStaticKey: Uint8Array) => boolean;
}

/** The result of Split(): the transport ciphers from our point of view, plus the final handshake hash. */
export interface TransportCiphers {
  readonly send: CipherState | null;
  readonly receive: CipherState | null;
  readonly handshakeHash: Uint8Array;
  readonly remoteStaticKey: Uint8Array | null;
}

/** Where a handshake is; a finished or failed handshake cannot be used again. */
export type HandshakeStatus = "in-progress" | "finished" | "split";

interface Keys {
  e: KeyPair | null;
  re: Uint8Array | null;
  rs: Uint8Array | null;
}

/**
 * Noise §5.3 HandshakeState, for any pattern of the 25519_ChaChaPoly_BLAKE2s suite.
 *
 * Each writeMessage/readMessage works on copies of the state and commits only on success. A message that
 * fails to decrypt (a spoofed or corrupted one) therefore leaves the handshake exactly as it was, so a
 * genuine message can still complete it. The spec lets an application choose this (§5.3 says the
 * handshake "may" be deleted on error); our peer link needs it so that an attacker cannot kill a
 * handshake with one forged datagram.
 */
export class HandshakeState {
  readonly #backend: CryptoBackend;
  readonly #pattern: HandshakePattern;
  readonly #initiator: boolean;
  readonly #pskMode: boolean;
  readonly #psks: readonly Uint8Array[];
  readonly #s: KeyPair | null;
  readonly #random: RandomSource;
  readonly #verifyRemoteStatic: ((key: Uint8Array) => boolean) | null;
  #fixedEphemeral: KeyPair | null;
  #symmetric: SymmetricState;
  #keys: Keys;
  #messageIndex = 0;
  #pskIndex = 0;
  #status: HandshakeStatus = "in-progress";

  constructor(options: HandshakeOptions) {
    const parsed = parseProtocolName(options.protocolName);
    if (parsed === undefined) throw new NoiseError("unsupported-protocol");
    this.#backend = options.backend;
    this.#pattern = parsed.pattern;
    this.#initiator = options.initiator;
    this.#random = options.random;
    this.#verifyRemoteStatic = options.verifyRemoteStatic ?? null;
    this.#pskMode = parsed.pskCount > 0;
    const psks = options.psks ?? [];
    if (psks.length !== parsed.pskCount || psks.some((psk) => psk.length !== KEY_LEN)) {
      throw new NoiseError("invalid-psk");
    }
    this.#psks = psks;
    this.#s = options.staticKeyPair ?? null;
    this.#fixedEphemeral = options.fixedEphemeralKeyPair ?? null;
    checkKey(this.#s?.publicKey);
    checkKey(this.#s?.privateKey);
    checkKey(options.remoteStaticKey);
    checkKey(options.remoteEphemeralKey);
    this.#keys = { e: null, re: options.remoteEphemeralKey ?? null, rs: options.remoteStaticKey ?? null };
    this.#requireKeys();

    this.#symmetric = SymmetricState.initialize(this.#backend, options.protocolName);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    // §7.1: pre-message keys are hashed initiator's first, then the responder's.
    this.#mixPreMessage(this.#pattern.initiatorPre, this.#initiator);
    this.#mixPreMessage(this.#pattern.responderPre, !this.#initiator);
  }

  /** The current status. */
  get status(): HandshakeStatus {
    return this.#status;
  }

  /** True when it is our turn to write the next message. */
  get isMyTurn(): boolean {
    return this.#status === "in-progress" && this.#messageIndex % 2 === (this.#initiator ? 0 : 1);
  }

  /** The peer's static public key once known (from a pre-message or a received "s" token). */
  get remoteStaticKey(): Uint8Array | null {
    return this.#keys.rs;
  }

  /** Our ephemeral public key once generated. */
  get localEphemeralPublicKey(): Uint8Array | null {
    return this.#keys.e?.publicKey ?? null;
  }

  /** The handshake hash h so far (the channel binding once finished, Noise §11.2). */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.handshakeHash;
  }

  /** WriteMessage(payload): returns the handshake message to send. */
  writeMessage(payload: Uint8Array): Uint8Array {
    this.#assertInProgress();
    if (!this.isMyTurn) throw new NoiseError("not-my-turn");
    const tokens = this.#pattern.messages[this.#messageIndex] as readonly Token[];
    const symmetric = this.#symmetric.clone();
    const keys: Keys = { ...this.#keys };
    let pskIndex = this.#pskIndex;
    let consumedFixed = false;
    const parts: Uint8Array[] = [];
    for (const token of tokens) {
      switch (token) {
        case "e": {
          if (this.#fixedEphemeral !== null) {
            keys.e = this.#fixedEphemeral;
            consumedFixed = true;
          } else {
            keys.e = generateX25519KeyPair(this.#backend, this.#random);
          }
          parts.push(keys.e.publicKey);
          symmetric.mixHash(keys.e.publicKey);
          if (this.#pskMode) symmetric.mixKey(keys.e.publicKey);
          break;
        }
        case "s":
          parts.push(symmetric.encryptAndHash((this.#s as KeyPair).publicKey));
          break;
        case "psk":
          symmetric.mixKeyAndHash(this.#psks[pskIndex++] as Uint8Array);
          break;
        default:
          symmetric.mixKey(this.#dh(token, keys));
      }
    }
    parts.push(symmetric.encryptAndHash(payload));
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > MAX_MESSAGE_LEN) throw new NoiseError("message-too-large");
    const message = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      message.set(part, offset);
      offset += part.length;
    }
    this.#commit(symmetric, keys, pskIndex);
    if (consumedFixed) this.#fixedEphemeral = null;
    return message;
  }

  /** ReadMessage(message): returns the payload, or throws without changing any state. */
  readMessage(message: Uint8Array): Uint8Array {
    this.#assertInProgress();
    if (this.isMyTurn) throw new NoiseError("not-my-turn");
    if (message.length > MAX_MESSAGE_LEN) throw new NoiseError("message-too-large");
    const tokens = this.#pattern.messages[this.#messageIndex] as readonly Token[];
    const symmetric = this.#symmetric.clone();
    const keys: Keys = { ...this.#keys };
    let pskIndex = this.#pskIndex;
    let offset = 0;
    for (const token of tokens) {
      switch (token) {
        case "e": {
          if (message.length - offset < DH_LEN) throw new NoiseError("message-too-short");
          const re = message.slice(offset, offset + DH_LEN);
          offset += DH_LEN;
          keys.re = re;
          symmetric.mixHash(re);
          if (this.#pskMode) symmetric.mixKey(re);
          break;
        }
        case "s": {
          const length = DH_LEN + (symmetric.cipher.hasKey() ? TAG_LEN : 0);
          if (message.length - offset < length) throw new NoiseError("message-too-short");
          keys.rs = symmetric.decryptAndHash(message.subarray(offset, offset + length));
          offset += length;
          break;
        }
        case "psk":
          symmetric.mixKeyAndHash(this.#psks[pskIndex++] as Uint8Array);
          break;
        default:
          symmetric.mixKey(this.#dh(token, keys));
      }
    }
    const rest = message.subarray(offset);
    if (symmetric.cipher.hasKey() && rest.length < TAG_LEN) throw new NoiseError("message-too-short");
    const payload = symmetric.decryptAndHash(rest);
    // Judge a newly revealed static key only once the whole message authenticated.
    if (keys.rs !== null && keys.rs !== this.#keys.rs && this.#verifyRemoteStatic !== null) {
      if (!this.#verifyRemoteStatic(keys.rs)) throw new NoiseError("remote-static-rejected");
    }
    this.#commit(symmetric, keys, pskIndex);
    return payload;
  }

  /**
   * Split() once the last message is written or read. Can be called once; the handshake is then spent.
   * For one-way patterns the responder gets no send cipher and the initiator no receive cipher.
   */
  split(): TransportCiphers {
    if (this.#status === "in-progress") throw new NoiseError("handshake-not-finished");
    if (this.#status === "split") throw new NoiseError("handshake-finished");
    this.#status = "split";
    const [c1, c2] = this.#symmetric.split();
    const handshakeHash = this.#symmetric.handshakeHash;
    const remoteStaticKey = this.#keys.rs;
    // Forget the ephemeral private key: forward secrecy depends on it not outliving the handshake.
    this.#keys = { e: null, re: null, rs: null };
    if (this.#pattern.oneWay) {
      return this.#initiator
        ? { send: c1, receive: null, handshakeHash, remoteStaticKey }
        : { send: null, receive: c1, handshakeHash, remoteStaticKey };
    }
    return this.#initiator
      ? { send: c1, receive: c2, handshakeHash, remoteStaticKey }
      : { send: c2, receive: c1, handshakeHash, remoteStaticKey };
  }

  #commit(symmetric: SymmetricState, keys: Keys, pskIndex: number): void {
    this.#symmetric = symmetric;
    this.#keys = keys;
    this.#pskIndex = pskIndex;
    this.#messageIndex++;
    if (this.#messageIndex === this.#pattern.messages.length) this.#status = "finished";
  }

  #assertInProgress(): void {
    if (this.#status !== "in-progress") throw new NoiseError("handshake-finished");
  }

  #dh(token: "ee" | "es" | "se" | "ss", keys: Keys): Uint8Array {
    // §5.3: for "es" the initiator uses (e, rs) and the responder (s, re); "se" is the mirror.
    let local: KeyPair | null;
    let remote: Uint8Array | null;
    switch (token) {
      case "ee":
        local = keys.e;
        remote = keys.re;
        break;
      case "es":
        local = this.#initiator ? keys.e : this.#s;
        remote = this.#initiator ? keys.rs : keys.re;
        break;
      case "se":
        local = this.#initiator ? this.#s : keys.e;
        remote = this.#initiator ? keys.re : keys.rs;
        break;
      case "ss":
        local = this.#s;
        remote = keys.rs;
        break;
      default:
        return assertNever(token);
    }
    if (local === null || remote === null) throw new NoiseError("missing-key");
    try {
      return this.#backend.x25519(local.privateKey, remote);
    } catch (error) {
      if (error instanceof CryptoError) throw new NoiseError("invalid-dh");
      throw error;
    }
  }

  #mixPreMessage(tokens: readonly PreToken[], ours: boolean): void {
    for (const token of tokens) {
      let key: Uint8Array | null;
      if (token === "s") {
        key = ours ? (this.#s?.publicKey ?? null) : this.#keys.rs;
      } else {
        if (ours) {
          this.#keys.e = this.#fixedEphemeral;
          this.#fixedEphemeral = null;
        }
        key = ours ? (this.#keys.e?.publicKey ?? null) : this.#keys.re;
      }
      if (key === null) throw new NoiseError("missing-key");
      this.#symmetric.mixHash(key);
      if (token === "e" && this.#pskMode) this.#symmetric.mixKey(key);
    }
  }

  #requireKeys(): void {
    const ownPre = this.#initiator ? this.#pattern.initiatorPre : this.#pattern.responderPre;
    const remotePre = this.#initiator ? this.#pattern.responderPre : this.#pattern.initiatorPre;
    const sendsStatic = this.#pattern.messages.some(
      (message, index) => index % 2 === (this.#initiator ? 0 : 1) && message.includes("s"),
    );
    if ((ownPre.includes("s") || sendsStatic) && this.#s === null) throw new NoiseError("missing-key");
    if (remotePre.includes("s") && this.#keys.rs === null) throw new NoiseError("missing-key");
    if (ownPre.includes("e") && this.#fixedEphemeral === null) throw new NoiseError("missing-key");
    if (remotePre.includes("e") && this.#keys.re === null) throw new NoiseError("missing-key");
  }
}

function checkKey(key: Uint8Array | undefined): void {
  if (key !== undefined && key.length !== KEY_LEN) throw new NoiseError("invalid-key");
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}
