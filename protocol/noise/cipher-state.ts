import type { CryptoBackend } from "../crypto/backend.ts";
import { NONCE_LEN, writeCounterNonce } from "../crypto/backend.ts";
import { CryptoError } from "../crypto/errors.ts";
import { NoiseError } from "./errors.ts";

/** 2^64 - 1: reserved by Noise §5.1, never used as a message nonce (it is Rekey()'s nonce). */
export const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

const ZEROS_32 = new Uint8Array(32);
const EMPTY = new Uint8Array(0);

/**
 * Noise §5.1 CipherState: a key k (or none) and a 64-bit nonce n.
 */
export class CipherState {
  #k: Uint8Array | null;
  #n: bigint;
  readonly #backend: CryptoBackend;
  readonly #nonce = new Uint8Array(NONCE_LEN);

  constructor(backend: CryptoBackend, key: Uint8Array | null = null, nonce = 0n) {
    this.#backend = backend;
    this.#k = key;
    this.#n = nonce;
  }

  /** InitializeKey(key): sets k and resets n to zero. */
  initializeKey(key: Uint8Array | null): void {
    this.#k = key;
    this.#n = 0n;
  }

  /** HasKey(). */
  hasKey(): boolean {
    return this.#k !== null;
  }

  /** SetNonce(nonce). */
  setNonce(nonce: bigint): void {
    if (nonce < 0n || nonce > MAX_NONCE) throw new RangeError("nonce out of range");
    this.#n = nonce;
  }

  /** The next nonce this state will use. */
  get nonce(): bigint {
    return this.#n;
  }

  /** EncryptWithAd(ad, plaintext); returns the plaintext unchanged (copied) when there is no key. */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === null) return plaintext.slice();
    if (this.#n === MAX_NONCE) throw new NoiseError("nonce-exhausted");
    const out = this.#backend.aeadSeal(this.#k, writeCounterNonce(this.#nonce, this.#n), ad, plaintext);
    this.#n += 1n;
    return out;
  }

  /** DecryptWithAd(ad, ciphertext); n advances only on success. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === null) return ciphertext.slice();
    if (this.#n === MAX_NONCE) throw new NoiseError("nonce-exhausted");
    let out: Uint8Array;
    try {
      out = this.#backend.aeadOpen(this.#k, writeCounterNonce(this.#nonce, this.#n), ad, ciphertext);
    } catch (error) {
      if (error instanceof CryptoError) throw new NoiseError("decrypt-failed");
      throw error;
    }
    this.#n += 1n;
    return out;
  }

  /** Rekey() (Noise §4.2 / §11.3): k = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros). */
  rekey(): void {
    if (this.#k === null) throw new NoiseError("missing-key");
    const out = this.#backend.aeadSeal(this.#k, writeCounterNonce(this.#nonce, MAX_NONCE), EMPTY, ZEROS_32);
    this.#k = out.subarray(0, 32).slice();
  }

  /** A copy with the same key and nonce (used to make handshake reads transactional). */
  clone(): CipherState {
    return new CipherState(this.#backend, this.#k, this.#n);
  }

  /**
   * Hands the raw key to a transport layer that manages its own explicit nonces, and forgets it here.
   * Noise §11.4 allows the application to take over nonce handling for out-of-order transports.
   */
  takeKey(): Uint8Array {
    if (this.#k === null) throw new NoiseError("missing-key");
    const key = this.#k;
    this.#k = null;
    return key;
  }
}
