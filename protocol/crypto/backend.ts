import { CryptoError } from "./errors.ts";

/**
 * A source of cryptographically secure random bytes. `protocol/` never draws randomness itself:
 * every caller passes one in (Node: `crypto.randomFillSync`; workerd and browsers: `crypto.getRandomValues`).
 */
export type RandomSource = (length: number) => Uint8Array;

/** An X25519 or Ed25519 key pair in raw 32-byte form. */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** Sizes fixed by the algorithms we pin. */
export const KEY_LEN = 32;
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const HASH_LEN = 32;
export const BLOCK_LEN = 64;
export const SIGNATURE_LEN = 64;

/**
 * The one crypto interface every part uses. Two implementations pass the same vectors:
 * `nobleBackend` (portable: Node, workerd, browsers) and `nodeBackend` (node:crypto, the daemons' fast path).
 *
 * Failures throw {@link CryptoError}; an AEAD open that fails says only "invalid tag".
 */
export interface CryptoBackend {
  readonly name: "noble" | "node";

  /** Derives the X25519 public key of a 32-byte private key (RFC 7748 clamping applies). */
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /** X25519(privateKey, publicKey). Throws `zero-shared-secret` for an all-zero result (low-order input). */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;

  /**
   * ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce; returns ciphertext || 16-byte tag.
   * With `headroom`, the result starts with that many zero bytes before the ciphertext, so a caller can write
   * its header in place instead of copying the ciphertext again (the datagram path does).
   */
  aeadSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    headroom?: number,
  ): Uint8Array;
  /** Opens ciphertext || tag; throws `invalid-tag` on any authentication failure. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;

  /** BLAKE2s-256 of the concatenation of the parts. */
  blake2s(...parts: readonly Uint8Array[]): Uint8Array;
  /** HMAC-BLAKE2s-256 (RFC 2104 with a 64-byte block) of the concatenation of the parts. */
  hmacBlake2s(key: Uint8Array, ...parts: readonly Uint8Array[]): Uint8Array;

  /** Derives the Ed25519 public key of a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 (RFC 8032, pure) signature of a message. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Strict RFC 8032 verification: non-canonical encodings and S >= L are refused. Never throws. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/** Draws exactly `length` bytes from a random source, refusing a source that returns anything else. */
export function randomBytes(random: RandomSource, length: number): Uint8Array {
  const out = random(length);
  if (!(out instanceof Uint8Array) || out.length !== length) throw new CryptoError("random-source");
  return out;
}

/** Generates an X25519 key pair from a passed-in random source. */
export function generateX25519KeyPair(backend: CryptoBackend, random: RandomSource): KeyPair {
  const privateKey = randomBytes(random, KEY_LEN);
  return { privateKey, publicKey: backend.x25519PublicKey(privateKey) };
}

/** Generates an Ed25519 key pair (the private key is the 32-byte seed) from a passed-in random source. */
export function generateEd25519KeyPair(backend: CryptoBackend, random: RandomSource): KeyPair {
  const privateKey = randomBytes(random, KEY_LEN);
  return { privateKey, publicKey: backend.ed25519PublicKey(privateKey) };
}

/**
 * Writes the ChaCha20-Poly1305 nonce for a 64-bit counter as Noise §5.1 lays it out:
 * 32 bits of zeros followed by the little-endian encoding of n.
 */
export function writeCounterNonce(out: Uint8Array, counter: bigint): Uint8Array {
  if (out.length !== NONCE_LEN) throw new CryptoError("invalid-nonce-length");
  const view = new DataView(out.buffer, out.byteOffset, NONCE_LEN);
  view.setUint32(0, 0, true);
  view.setBigUint64(4, BigInt.asUintN(64, counter), true);
  return out;
}

/**
 * The same layout for a counter held as a JavaScript number (at most 2^53 - 1), without BigInt:
 * the datagram path uses this to avoid an allocation per packet.
 */
export function writeCounterNonceNumber(out: DataView, counter: number): void {
  out.setUint32(0, 0, true);
  out.setUint32(4, counter >>> 0, true);
  out.setUint32(8, Math.floor(counter / 0x1_0000_0000), true);
}

/**
 * Noise HKDF (§4.3) over HMAC-BLAKE2s: returns `count` (2 or 3) outputs of 32 bytes.
 */
export function noiseHkdf(
  backend: CryptoBackend,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  count: 2 | 3,
): Uint8Array[] {
  const tempKey = backend.hmacBlake2s(chainingKey, inputKeyMaterial);
  const out1 = backend.hmacBlake2s(tempKey, ONE);
  const out2 = backend.hmacBlake2s(tempKey, out1, TWO);
  if (count === 2) return [out1, out2];
  const out3 = backend.hmacBlake2s(tempKey, out2, THREE);
  return [out1, out2, out3];
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** Throws `invalid-key-length` unless the key has 32 bytes. */
export function assertKeyLength(key: Uint8Array): void {
  if (key.length !== KEY_LEN) throw new CryptoError("invalid-key-length");
}
