import { utf8 } from "../bytes.ts";
import { type CryptoBackend, HASH_LEN, noiseHkdf } from "../crypto/backend.ts";
import { CipherState } from "./cipher-state.ts";

const EMPTY = new Uint8Array(0);

/**
 * Noise §5.2 SymmetricState: chaining key ck, handshake hash h and a CipherState.
 */
export class SymmetricState {
  readonly cipher: CipherState;
  #ck: Uint8Array;
  #h: Uint8Array;
  readonly #backend: CryptoBackend;

  private constructor(backend: CryptoBackend, ck: Uint8Array, h: Uint8Array, cipher: CipherState) {
    this.#backend = backend;
    this.#ck = ck;
    this.#h = h;
    this.cipher = cipher;
  }

  /** InitializeSymmetric(protocol_name). */
  static initialize(backend: CryptoBackend, protocolName: string): SymmetricState {
    const name = utf8(protocolName);
    let h: Uint8Array;
    if (name.length <= HASH_LEN) {
      h = new Uint8Array(HASH_LEN);
      h.set(name);
    } else {
      h = backend.blake2s(name);
    }
    return new SymmetricState(backend, h.slice(), h, new CipherState(backend));
  }

  /** The handshake hash h (a copy). */
  get handshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** MixKey(input_key_material). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = noiseHkdf(this.#backend, this.#ck, inputKeyMaterial, 2) as [Uint8Array, Uint8Array];
    this.#ck = ck;
    this.cipher.initializeKey(tempK);
  }

  /** MixHash(data). */
  mixHash(data: Uint8Array): void {
    this.#h = this.#backend.blake2s(this.#h, data);
  }

  /** MixKeyAndHash(input_key_material), used for psk tokens. */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = noiseHkdf(this.#backend, this.#ck, inputKeyMaterial, 3) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    this.#ck = ck;
    this.mixHash(tempH);
    this.cipher.initializeKey(tempK);
  }

  /** EncryptAndHash(plaintext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext). */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.cipher.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): two CipherStates, the first for initiator-to-responder traffic. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = noiseHkdf(this.#backend, this.#ck, EMPTY, 2) as [Uint8Array, Uint8Array];
    return [new CipherState(this.#backend, k1), new CipherState(this.#backend, k2)];
  }

  /** A deep copy, so a handshake step can be undone when it fails. */
  clone(): SymmetricState {
    return new SymmetricState(this.#backend, this.#ck, this.#h, this.cipher.clone());
  }
}
