import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { isAllZero } from "../bytes.ts";
import { assertKeyLength, type CryptoBackend, NONCE_LEN, SIGNATURE_LEN, TAG_LEN } from "./backend.ts";
import { CryptoError } from "./errors.ts";

/**
 * The portable backend: @noble/ciphers, @noble/curves and @noble/hashes. Runs in Node, workerd and browsers.
 */
export const nobleBackend: CryptoBackend = {
  name: "noble",

  x25519PublicKey(privateKey) {
    assertKeyLength(privateKey);
    return x25519.getPublicKey(privateKey);
  },

  x25519(privateKey, publicKey) {
    assertKeyLength(privateKey);
    if (publicKey.length !== 32) throw new CryptoError("invalid-public-key");
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      // noble refuses an all-zero result itself; report it as the same closed error.
      throw new CryptoError("zero-shared-secret");
    }
    if (isAllZero(shared)) throw new CryptoError("zero-shared-secret");
    return shared;
  },

  aeadSeal(key, nonce, ad, plaintext, headroom = 0) {
    assertKeyLength(key);
    if (nonce.length !== NONCE_LEN) throw new CryptoError("invalid-nonce-length");
    const out = new Uint8Array(headroom + plaintext.length + TAG_LEN);
    chacha20poly1305(key, nonce, ad).encrypt(plaintext, out.subarray(headroom));
    return out;
  },

  aeadOpen(key, nonce, ad, ciphertext) {
    assertKeyLength(key);
    if (nonce.length !== NONCE_LEN) throw new CryptoError("invalid-nonce-length");
    if (ciphertext.length < TAG_LEN) throw new CryptoError("invalid-tag");
    try {
      return chacha20poly1305(key, nonce, ad).decrypt(ciphertext);
    } catch {
      throw new CryptoError("invalid-tag");
    }
  },

  blake2s(...parts) {
    const h = blake2s.create();
    for (const part of parts) h.update(part);
    return h.digest();
  },

  hmacBlake2s(key, ...parts) {
    const h = hmac.create(blake2s, key);
    for (const part of parts) h.update(part);
    return h.digest();
  },

  ed25519PublicKey(seed) {
    assertKeyLength(seed);
    return ed25519.getPublicKey(seed);
  },

  ed25519Sign(seed, message) {
    assertKeyLength(seed);
    return ed25519.sign(message, seed);
  },

  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== SIGNATURE_LEN) return false;
    try {
      // zip215: false is RFC 8032 strict verification (canonical A and R, S < L).
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};
