import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../protocol/bytes.ts";
import {
  type CryptoBackend,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  noiseHkdf,
  randomBytes,
  writeCounterNonce,
  writeCounterNonceNumber,
} from "../../protocol/crypto/backend.ts";
import { CryptoError } from "../../protocol/crypto/errors.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { nodeRandom } from "../support/random.ts";
import { readSharedVector } from "../support/vectors.ts";

interface WycheproofFile<T> {
  testGroups: ({
    tests: (T & { tcId: number; result: "valid" | "invalid" | "acceptable"; flags: string[] })[];
  } & Record<string, unknown>)[];
}
type AeadCase = { key: string; iv: string; aad: string; msg: string; ct: string; tag: string };
type XdhCase = { public: string; private: string; shared: string };
type EddsaCase = { msg: string; sig: string };

const backends: readonly CryptoBackend[] = [nobleBackend, nodeBackend];

function cases<T>(file: string) {
  const doc = readSharedVector(file) as WycheproofFile<T>;
  return doc.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof CryptoError ? error.code : `unexpected ${String(error)}`;
  }
}

describe.each(backends)("$name backend: Wycheproof", (backend) => {
  it("ChaCha20-Poly1305: every valid case seals and opens, every invalid case is refused", () => {
    const all = cases<AeadCase>("wycheproof/chacha20_poly1305_test.json");
    expect(all.length).toBe(325);
    let valid = 0;
    for (const { test } of all) {
      const key = fromHex(test.key);
      const nonce = fromHex(test.iv);
      const aad = fromHex(test.aad);
      const sealedExpected = test.ct + test.tag;
      if (test.result === "valid") {
        valid++;
        expect(toHex(backend.aeadSeal(key, nonce, aad, fromHex(test.msg))), `tcId ${test.tcId}`).toBe(
          sealedExpected,
        );
        expect(toHex(backend.aeadOpen(key, nonce, aad, fromHex(sealedExpected))), `tcId ${test.tcId}`).toBe(
          test.msg,
        );
      } else {
        const code = codeOf(() => backend.aeadOpen(key, nonce, aad, fromHex(sealedExpected)));
        expect(["invalid-tag", "invalid-nonce-length"], `tcId ${test.tcId}`).toContain(code);
      }
    }
    expect(valid).toBe(256);
  });

  it("X25519: valid cases match; acceptable cases match unless the result is all zeros, which is refused", () => {
    const all = cases<XdhCase>("wycheproof/x25519_test.json");
    expect(all.length).toBe(518);
    let refusedZero = 0;
    for (const { test } of all) {
      expect(test.result, `tcId ${test.tcId}`).not.toBe("invalid");
      const compute = () => backend.x25519(fromHex(test.private), fromHex(test.public));
      if (/^0+$/.test(test.shared)) {
        expect(codeOf(compute), `tcId ${test.tcId}`).toBe("zero-shared-secret");
        refusedZero++;
      } else {
        expect(toHex(compute()), `tcId ${test.tcId}`).toBe(test.shared);
      }
    }
    expect(refusedZero).toBe(31);
  });

  it("Ed25519: every valid signature verifies, every invalid one is refused (strict RFC 8032)", () => {
    const all = cases<EddsaCase>("wycheproof/ed25519_test.json");
    expect(all.length).toBe(151);
    for (const { group, test } of all) {
      const publicKey = fromHex((group.publicKey as { pk: string }).pk);
      const verdict = backend.ed25519Verify(publicKey, fromHex(test.msg), fromHex(test.sig));
      expect(verdict, `tcId ${test.tcId} ${test.result}`).toBe(test.result === "valid");
    }
  });
});

describe("backends agree on random inputs", () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  const runs = { numRuns: 200 };

  it("X25519 public keys and shared secrets", () => {
    fc.assert(
      fc.property(bytes(32), bytes(32), (a, b) => {
        const pa = nobleBackend.x25519PublicKey(a);
        expect(toHex(nodeBackend.x25519PublicKey(a))).toBe(toHex(pa));
        expect(toHex(nodeBackend.x25519(b, pa))).toBe(toHex(nobleBackend.x25519(b, pa)));
      }),
      runs,
    );
  });

  it("ChaCha20-Poly1305 seal, and open across backends", () => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(12),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 2000 }),
        (k, n, ad, pt) => {
          const sealed = nobleBackend.aeadSeal(k, n, ad, pt);
          expect(toHex(nodeBackend.aeadSeal(k, n, ad, pt))).toBe(toHex(sealed));
          expect(toHex(nodeBackend.aeadOpen(k, n, ad, sealed))).toBe(toHex(pt));
        },
      ),
      runs,
    );
  });

  it("BLAKE2s, HMAC-BLAKE2s (keys shorter and longer than a block) and the Noise HKDF", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 200 }), (key, data) => {
        expect(toHex(nodeBackend.blake2s(data, key))).toBe(toHex(nobleBackend.blake2s(data, key)));
        expect(toHex(nodeBackend.hmacBlake2s(key, data))).toBe(toHex(nobleBackend.hmacBlake2s(key, data)));
        const a = noiseHkdf(nobleBackend, key, data, 3).map(toHex);
        expect(noiseHkdf(nodeBackend, key, data, 3).map(toHex)).toEqual(a);
      }),
      runs,
    );
  });

  it("Ed25519 keys and signatures (deterministic, so identical) verify on the other backend", () => {
    fc.assert(
      fc.property(bytes(32), fc.uint8Array({ maxLength: 500 }), (seed, message) => {
        const pub = nobleBackend.ed25519PublicKey(seed);
        expect(toHex(nodeBackend.ed25519PublicKey(seed))).toBe(toHex(pub));
        const sig = nodeBackend.ed25519Sign(seed, message);
        expect(toHex(nobleBackend.ed25519Sign(seed, message))).toBe(toHex(sig));
        expect(nobleBackend.ed25519Verify(pub, message, sig)).toBe(true);
        const tampered = sig.slice();
        tampered[0] = (tampered[0] as number) ^ 1;
        expect(nodeBackend.ed25519Verify(pub, message, tampered)).toBe(false);
      }),
      runs,
    );
  });
});

describe.each(backends)("$name backend: contract", (backend) => {
  it("refuses a wrong tag, wrong AD, a short ciphertext and a non-12-byte nonce with closed codes", () => {
    const key = nodeRandom(32);
    const nonce = nodeRandom(12);
    const sealed = backend.aeadSeal(key, nonce, Uint8Array.of(1), Uint8Array.of(1, 2, 3));
    const flipped = sealed.slice();
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 0x80;
    expect(codeOf(() => backend.aeadOpen(key, nonce, Uint8Array.of(1), flipped))).toBe("invalid-tag");
    expect(codeOf(() => backend.aeadOpen(key, nonce, Uint8Array.of(2), sealed))).toBe("invalid-tag");
    expect(codeOf(() => backend.aeadOpen(key, nonce, Uint8Array.of(1), sealed.subarray(0, 15)))).toBe(
      "invalid-tag",
    );
    expect(codeOf(() => backend.aeadSeal(key, new Uint8Array(8), new Uint8Array(0), new Uint8Array(0)))).toBe(
      "invalid-nonce-length",
    );
    expect(
      codeOf(() => backend.aeadSeal(new Uint8Array(31), nonce, new Uint8Array(0), new Uint8Array(0))),
    ).toBe("invalid-key-length");
  });

  it("seals with headroom: zero bytes in front, then the same ciphertext as without", () => {
    const key = nodeRandom(32);
    const nonce = nodeRandom(12);
    const plain = backend.aeadSeal(key, nonce, Uint8Array.of(1), nodeRandom(100).fill(5));
    const roomy = backend.aeadSeal(key, nonce, Uint8Array.of(1), nodeRandom(100).fill(5), 16);
    expect(roomy.length).toBe(plain.length + 16);
    expect(toHex(roomy.subarray(0, 16))).toBe("00".repeat(16));
    expect(toHex(roomy.subarray(16))).toBe(toHex(plain));
  });

  it("rejects an all-zero shared secret (the zero point and other low-order points)", () => {
    const priv = nodeRandom(32);
    expect(codeOf(() => backend.x25519(priv, new Uint8Array(32)))).toBe("zero-shared-secret");
    expect(codeOf(() => backend.x25519(priv, fromHex(`01${"00".repeat(31)}`)))).toBe("zero-shared-secret");
    expect(codeOf(() => backend.x25519(priv, new Uint8Array(31)))).toBe("invalid-public-key");
  });

  it("generates key pairs only from the passed-in source, and refuses a source that returns short", () => {
    const fixed = fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const pair = generateX25519KeyPair(backend, () => fixed.slice());
    // RFC 7748 §6.1 Alice's public key.
    expect(toHex(pair.publicKey)).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    const signer = generateEd25519KeyPair(backend, nodeRandom);
    expect(
      backend.ed25519Verify(
        signer.publicKey,
        Uint8Array.of(7),
        backend.ed25519Sign(signer.privateKey, Uint8Array.of(7)),
      ),
    ).toBe(true);
    expect(codeOf(() => randomBytes(() => new Uint8Array(31), 32))).toBe("random-source");
  });
});

describe("Noise §5.1 nonce layout", () => {
  it("is 32 zero bits then the little-endian 64-bit counter, for bigint and number forms", () => {
    const out = new Uint8Array(12);
    expect(toHex(writeCounterNonce(out, 0x0102030405060708n))).toBe("000000000807060504030201");
    expect(toHex(writeCounterNonce(out, 0xffff_ffff_ffff_ffffn))).toBe("00000000ffffffffffffffff");
    const view = new DataView(out.buffer);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        writeCounterNonceNumber(view, n);
        const asNumber = toHex(out);
        expect(toHex(writeCounterNonce(new Uint8Array(12), BigInt(n)))).toBe(asNumber);
      }),
    );
  });
});
