import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import { type CryptoBackend, generateX25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { CipherState, MAX_NONCE } from "../../protocol/noise/cipher-state.ts";
import { NoiseError } from "../../protocol/noise/errors.ts";
import { HandshakeState } from "../../protocol/noise/handshake-state.ts";
import { PATTERNS } from "../../protocol/noise/patterns.ts";
import { parseProtocolName } from "../../protocol/noise/protocol-name.ts";
import { nodeRandom } from "../support/random.ts";

const XX = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    if (error instanceof NoiseError) return error.code;
    throw error;
  }
}

function pair(backend: CryptoBackend, protocolName = XX) {
  const initiator = new HandshakeState({
    backend,
    protocolName,
    initiator: true,
    staticKeyPair: generateX25519KeyPair(backend, nodeRandom),
    random: nodeRandom,
  });
  const responder = new HandshakeState({
    backend,
    protocolName,
    initiator: false,
    staticKeyPair: generateX25519KeyPair(backend, nodeRandom),
    random: nodeRandom,
  });
  return { initiator, responder };
}

describe("pattern table", () => {
  it("holds the 15 fundamental and 23 deferred patterns of revision 34", () => {
    expect(PATTERNS.size).toBe(38);
    expect([...PATTERNS.values()].filter((p) => p.oneWay).map((p) => p.name)).toEqual(["N", "K", "X"]);
  });

  it("parses psk modifiers and refuses other suites and unknown patterns", () => {
    expect(parseProtocolName("Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s")?.pattern.messages[2]).toEqual([
      "s",
      "se",
      "psk",
    ]);
    expect(parseProtocolName("Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2s")?.pskCount).toBe(2);
    expect(parseProtocolName("Noise_XX_25519_AESGCM_SHA256")).toBeUndefined();
    expect(parseProtocolName("Noise_ZZ_25519_ChaChaPoly_BLAKE2s")).toBeUndefined();
    expect(parseProtocolName("Noise_NNpsk9_25519_ChaChaPoly_BLAKE2s")).toBeUndefined();
  });
});

describe.each([nobleBackend, nodeBackend] as CryptoBackend[])("$name backend: handshake state", (backend) => {
  it("completes XX, agrees on h and the split keys, and learns each other's static keys", () => {
    const { initiator, responder } = pair(backend);
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    initiator.readMessage(responder.writeMessage(Uint8Array.of(1)));
    expect(toHex(responder.readMessage(initiator.writeMessage(Uint8Array.of(2))))).toBe("02");
    expect(initiator.status).toBe("finished");
    const a = initiator.split();
    const b = responder.split();
    expect(toHex(a.handshakeHash)).toBe(toHex(b.handshakeHash));
    const sent = a.send?.encryptWithAd(new Uint8Array(0), Uint8Array.of(9)) as Uint8Array;
    expect(toHex(b.receive?.decryptWithAd(new Uint8Array(0), sent) as Uint8Array)).toBe("09");
  });

  it("a finished handshake cannot be reused: no more messages, and split() only once", () => {
    const { initiator, responder } = pair(backend, "Noise_NN_25519_ChaChaPoly_BLAKE2s");
    expect(codeOf(() => initiator.split())).toBe("handshake-not-finished");
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    initiator.readMessage(responder.writeMessage(new Uint8Array(0)));
    expect(codeOf(() => initiator.writeMessage(new Uint8Array(0)))).toBe("handshake-finished");
    expect(codeOf(() => initiator.readMessage(new Uint8Array(48)))).toBe("handshake-finished");
    initiator.split();
    expect(codeOf(() => initiator.split())).toBe("handshake-finished");
  });

  it("refuses to write or read out of turn", () => {
    const { initiator, responder } = pair(backend);
    expect(codeOf(() => responder.writeMessage(new Uint8Array(0)))).toBe("not-my-turn");
    expect(codeOf(() => initiator.readMessage(new Uint8Array(32)))).toBe("not-my-turn");
  });

  it("enforces the 65535-byte message limit on write and read", () => {
    const { initiator, responder } = pair(backend);
    expect(codeOf(() => initiator.writeMessage(new Uint8Array(65535 - 32 + 1)))).toBe("message-too-large");
    // The limit check leaves the state usable: a message of exactly 65535 bytes goes through.
    const max = initiator.writeMessage(new Uint8Array(65535 - 32));
    expect(max.length).toBe(65535);
    expect(codeOf(() => responder.readMessage(new Uint8Array(65536)))).toBe("message-too-large");
    expect(responder.readMessage(max).length).toBe(65535 - 32);
  });

  it("a corrupted or truncated message fails with a closed code and leaves the handshake intact", () => {
    const { initiator, responder } = pair(backend);
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    const message2 = responder.writeMessage(Uint8Array.of(5, 5));
    const hashBefore = toHex(initiator.handshakeHash);
    fc.assert(
      fc.property(fc.nat({ max: message2.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bad = message2.slice();
        bad[at] = (bad[at] as number) ^ xor;
        const code = codeOf(() => initiator.readMessage(bad));
        expect(["decrypt-failed", "invalid-dh"]).toContain(code);
      }),
      { numRuns: 200 },
    );
    expect(codeOf(() => initiator.readMessage(message2.subarray(0, 40)))).toBe("message-too-short");
    expect(toHex(initiator.handshakeHash)).toBe(hashBefore);
    expect(toHex(initiator.readMessage(message2))).toBe("0505");
  });

  it("a decrypt failure says nothing more than 'decryption failed'", () => {
    const cipher = new CipherState(backend, nodeRandom(32));
    const error = (() => {
      try {
        cipher.decryptWithAd(new Uint8Array(0), new Uint8Array(40));
      } catch (e) {
        return e as NoiseError;
      }
      return undefined;
    })();
    expect(error?.code).toBe("decrypt-failed");
    expect(error?.message).toBe("decryption failed");
    expect(cipher.nonce).toBe(0n);
  });

  it("refuses a rejected remote static key without changing the handshake", () => {
    let accept = false;
    const initiator = new HandshakeState({
      backend,
      protocolName: XX,
      initiator: true,
      staticKeyPair: generateX25519KeyPair(backend, nodeRandom),
      random: nodeRandom,
      verifyRemoteStatic: () => accept,
    });
    const responder = pair(backend).responder;
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    const message2 = responder.writeMessage(new Uint8Array(0));
    expect(codeOf(() => initiator.readMessage(message2))).toBe("remote-static-rejected");
    expect(initiator.remoteStaticKey).toBeNull();
    accept = true;
    initiator.readMessage(message2);
    expect(initiator.remoteStaticKey).not.toBeNull();
  });

  it("checks keys and psks the pattern needs at construction", () => {
    expect(
      codeOf(() => new HandshakeState({ backend, protocolName: XX, initiator: true, random: nodeRandom })),
    ).toBe("missing-key");
    expect(
      codeOf(
        () =>
          new HandshakeState({
            backend,
            protocolName: "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s",
            initiator: true,
            random: nodeRandom,
          }),
      ),
    ).toBe("invalid-psk");
    expect(
      codeOf(
        () =>
          new HandshakeState({
            backend,
            protocolName: "Noise_XX_25519_AESGCM_SHA256",
            initiator: true,
            random: nodeRandom,
          }),
      ),
    ).toBe("unsupported-protocol");
  });
});

describe.each([nobleBackend, nodeBackend] as CryptoBackend[])("$name backend: cipher state", (backend) => {
  it("stops at nonce 2^64-1 (nonce exhaustion) instead of reusing a nonce", () => {
    const key = nodeRandom(32);
    const sender = new CipherState(backend, key);
    sender.setNonce(MAX_NONCE - 1n);
    const last = sender.encryptWithAd(new Uint8Array(0), Uint8Array.of(1));
    expect(sender.nonce).toBe(MAX_NONCE);
    expect(codeOf(() => sender.encryptWithAd(new Uint8Array(0), Uint8Array.of(1)))).toBe("nonce-exhausted");
    const receiver = new CipherState(backend, key);
    receiver.setNonce(MAX_NONCE - 1n);
    expect(toHex(receiver.decryptWithAd(new Uint8Array(0), last))).toBe("01");
    expect(codeOf(() => receiver.decryptWithAd(new Uint8Array(0), last))).toBe("nonce-exhausted");
  });

  it("Rekey() changes the key the same way on both sides (Noise §4.2)", () => {
    const key = nodeRandom(32);
    const a = new CipherState(backend, key.slice());
    const b = new CipherState(backend, key.slice());
    const before = a.encryptWithAd(new Uint8Array(0), Uint8Array.of(3));
    a.rekey();
    b.decryptWithAd(new Uint8Array(0), before);
    b.rekey();
    const after = a.encryptWithAd(new Uint8Array(0), Uint8Array.of(4));
    expect(toHex(b.decryptWithAd(new Uint8Array(0), after))).toBe("04");
    const stale = new CipherState(backend, key.slice(), 1n);
    expect(codeOf(() => stale.decryptWithAd(new Uint8Array(0), after))).toBe("decrypt-failed");
  });
});
