import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { constantTimeEqual, isAllZero } from "../bytes.ts";
import { assertKeyLength, type CryptoBackend, NONCE_LEN, SIGNATURE_LEN, TAG_LEN } from "./backend.ts";
import { CryptoError } from "./errors.ts";

type OkpCurve = "X25519" | "Ed25519";

// OpenSSL 3 decodes DER keys through its generic decoder framework, which costs ~300 µs per private key
// here; a JWK import takes the raw-key path (~20 µs). Node requires an `x` member even for a private key but
// OpenSSL derives the public half from `d` and ignores it (the cross-backend tests check the derived keys
// and signatures match noble's), so a fixed placeholder stands in for it.
const PLACEHOLDER_X = Buffer.alloc(32).toString("base64url");

interface CachedKey {
  readonly bytes: Uint8Array;
  readonly key: KeyObject;
}

// Private keys are used several times (a static key in every handshake, an ephemeral in two or three DHs),
// so their KeyObjects are cached by array identity. The cached copy of the bytes is compared on every hit:
// a caller who overwrites (wipes) the array gets a fresh import, never a stale key.
const privateKeys: Record<OkpCurve, WeakMap<Uint8Array, CachedKey>> = {
  X25519: new WeakMap(),
  Ed25519: new WeakMap(),
};

function privateKeyObject(crv: OkpCurve, raw: Uint8Array): KeyObject {
  const cache = privateKeys[crv];
  const hit = cache.get(raw);
  if (hit !== undefined && constantTimeEqual(hit.bytes, raw)) return hit.key;
  const key = createPrivateKey({
    key: {
      kty: "OKP",
      crv,
      d: Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString("base64url"),
      x: PLACEHOLDER_X,
    },
    format: "jwk",
  });
  cache.set(raw, { bytes: raw.slice(), key });
  return key;
}

function publicKeyObject(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: "OKP", crv, x: Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString("base64url") },
    format: "jwk",
  });
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new CryptoError("invalid-public-key");
  return asUint8(Buffer.from(x, "base64url"));
}

function asUint8(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/**
 * The daemons' fast path: node:crypto (OpenSSL). Same contract and vectors as the noble backend.
 */
export const nodeBackend: CryptoBackend = {
  name: "node",

  x25519PublicKey(privateKey) {
    assertKeyLength(privateKey);
    return rawPublicKey(createPublicKey(privateKeyObject("X25519", privateKey)));
  },

  x25519(privateKey, publicKey) {
    assertKeyLength(privateKey);
    if (publicKey.length !== 32) throw new CryptoError("invalid-public-key");
    let shared: Buffer;
    try {
      shared = diffieHellman({
        privateKey: privateKeyObject("X25519", privateKey),
        publicKey: publicKeyObject("X25519", publicKey),
      });
    } catch {
      // OpenSSL fails the derivation when the result is all zeros (a low-order public key).
      throw new CryptoError("zero-shared-secret");
    }
    if (isAllZero(shared)) throw new CryptoError("zero-shared-secret");
    return asUint8(shared);
  },

  aeadSeal(key, nonce, ad, plaintext, headroom = 0) {
    assertKeyLength(key);
    if (nonce.length !== NONCE_LEN) throw new CryptoError("invalid-nonce-length");
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_LEN });
    cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    const out = new Uint8Array(headroom + plaintext.length + TAG_LEN);
    out.set(body, headroom);
    out.set(cipher.getAuthTag(), headroom + plaintext.length);
    return out;
  },

  aeadOpen(key, nonce, ad, ciphertext) {
    assertKeyLength(key);
    if (nonce.length !== NONCE_LEN) throw new CryptoError("invalid-nonce-length");
    if (ciphertext.length < TAG_LEN) throw new CryptoError("invalid-tag");
    const bodyLength = ciphertext.length - TAG_LEN;
    try {
      const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_LEN });
      decipher.setAuthTag(ciphertext.subarray(bodyLength));
      decipher.setAAD(ad, { plaintextLength: bodyLength });
      const body = decipher.update(ciphertext.subarray(0, bodyLength));
      decipher.final();
      return asUint8(body);
    } catch {
      throw new CryptoError("invalid-tag");
    }
  },

  blake2s(...parts) {
    const h = createHash("blake2s256");
    for (const part of parts) h.update(part);
    return asUint8(h.digest());
  },

  hmacBlake2s(key, ...parts) {
    const h = createHmac("blake2s256", key);
    for (const part of parts) h.update(part);
    return asUint8(h.digest());
  },

  ed25519PublicKey(seed) {
    assertKeyLength(seed);
    return rawPublicKey(createPublicKey(privateKeyObject("Ed25519", seed)));
  },

  ed25519Sign(seed, message) {
    assertKeyLength(seed);
    return asUint8(sign(null, message, privateKeyObject("Ed25519", seed)));
  },

  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== SIGNATURE_LEN) return false;
    try {
      return verify(null, message, publicKeyObject("Ed25519", publicKey), signature);
    } catch {
      return false;
    }
  },
};
