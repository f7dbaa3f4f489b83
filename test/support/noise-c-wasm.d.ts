/**
 * The subset of noise-c.wasm@0.4.0 (rweather/noise-c built with Emscripten) that the interop test uses.
 * The package ships no types; see node_modules/noise-c.wasm/src/index.ls for the full API.
 */
declare module "noise-c.wasm" {
  export interface NoiseConstants {
    readonly NOISE_ROLE_INITIATOR: number;
    readonly NOISE_ROLE_RESPONDER: number;
    readonly NOISE_DH_CURVE25519: number;
    readonly NOISE_ACTION_SPLIT: number;
  }

  /** A transport cipher from Split(). Errors are thrown as `Error("NOISE_ERROR_...")`. */
  export interface NoiseCipherState {
    EncryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
    DecryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
    free(): void;
  }

  /**
   * A handshake. Any method that throws `Error("NOISE_ERROR_...")` has already freed the object, and
   * Split() frees it too: read the hash and the remote key before splitting.
   */
  export interface NoiseHandshakeState {
    /** `s` is the local static private key; `rs` the remote static public key where pre-shared. */
    Initialize(prologue?: Uint8Array | null, s?: Uint8Array | null, rs?: Uint8Array | null): void;
    GetAction(): number;
    WriteMessage(payload?: Uint8Array | null): Uint8Array;
    /** Returns the payload only when `payloadNeeded` is true, otherwise null. */
    ReadMessage(message: Uint8Array, payloadNeeded: true): Uint8Array;
    ReadMessage(message: Uint8Array, payloadNeeded?: false): null;
    GetHandshakeHash(): Uint8Array;
    GetRemotePublicKey(): Uint8Array | null;
    /** Returns `[send, receive]` for this side's role. */
    Split(): [NoiseCipherState, NoiseCipherState];
    free(): void;
  }

  export interface NoiseLib {
    readonly constants: NoiseConstants;
    readonly HandshakeState: new (protocolName: string, role: number) => NoiseHandshakeState;
    /** Returns `[privateKey, publicKey]`. */
    CreateKeyPair(curveId: number): [Uint8Array, Uint8Array];
  }

  /** Passed through to the Emscripten module. */
  export interface NoiseModuleOptions {
    /** The .wasm bytes; without them Node 20 first tries fetch() on a file path and logs a warning. */
    wasmBinary?: Uint8Array;
    onAbort?: (reason: unknown) => void;
  }

  /** Loads the wasm asynchronously and calls back once; never calls back if loading fails. */
  function createNoise(callback: (noise: NoiseLib) => void): void;
  function createNoise(options: NoiseModuleOptions, callback: (noise: NoiseLib) => void): void;
  export default createNoise;
}
