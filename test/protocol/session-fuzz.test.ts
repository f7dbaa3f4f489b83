import { describe, expect, it } from "vitest";
import { constantTimeEqual } from "../../protocol/bytes.ts";
import { generateX25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { NoiseError } from "../../protocol/noise/errors.ts";
import { HandshakeState } from "../../protocol/noise/handshake-state.ts";
import { InitiatorHandshake, ResponderHandshake } from "../../protocol/transport/peer-handshake.ts";
import { TransportSession } from "../../protocol/transport/transport-session.ts";
import {
  decodePeerFrame,
  encodeHandshakeReply,
  PeerFrameType,
  writeDataHeader,
} from "../../protocol/wire/peer-frames.ts";
import { fuzzInputs } from "../support/fuzz.ts";
import { nodeRandom } from "../support/random.ts";

const backend = nodeBackend;
const OPEN_FAILURES = new Set(["wrong-index", "replayed", "decrypt-failed", "expired", "counter-limit"]);

describe("stateful decoders fed arbitrary bytes", () => {
  it("TransportSession.open: 100,000 arbitrary datagrams give plaintext or a failure label, never an exception", () => {
    const key = nodeRandom(32);
    const sender = new TransportSession({
      backend,
      sendKey: key,
      receiveKey: nodeRandom(32),
      localIndex: 9,
      remoteIndex: 7,
      establishedAt: 0,
      handshakeHash: new Uint8Array(32),
      remoteStaticKey: new Uint8Array(32),
    });
    const receiver = new TransportSession({
      backend,
      sendKey: nodeRandom(32),
      receiveKey: key,
      localIndex: 7,
      remoteIndex: 9,
      establishedAt: 0,
      handshakeHash: new Uint8Array(32),
      remoteStaticKey: new Uint8Array(32),
    });
    const corpus = Array.from({ length: 16 }, (_, i) => sender.seal(new Uint8Array(i * 70), 0));
    const header = new Uint8Array(16);
    writeDataHeader(new DataView(header.buffer), 7, 3);
    let opened = 0;
    const labels = new Set<string>();
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 77,
      maxLength: 1408,
      corpus,
      prefixes: [[...header.subarray(0, 8)]],
    })) {
      const frame = decodePeerFrame(input);
      if (!frame.ok || frame.value.type !== PeerFrameType.Data) continue;
      const result = receiver.open(frame.value, 0);
      if (typeof result === "string") {
        if (!OPEN_FAILURES.has(result)) throw new Error(`unexpected label ${result}`);
        labels.add(result);
      } else {
        opened++;
      }
    }
    // Only genuine packets open, each at most once.
    expect(opened).toBeLessThanOrEqual(corpus.length);
    expect([...labels].sort()).toEqual(["counter-limit", "decrypt-failed", "replayed", "wrong-index"]);
  });

  it("handshake reads: 5,000 arbitrary messages give a NoiseError or a failure label and never break the state", () => {
    const client = generateX25519KeyPair(backend, nodeRandom);
    const host = generateX25519KeyPair(backend, nodeRandom);
    const sessionId = nodeRandom(16);
    const initiator = new InitiatorHandshake({
      backend,
      random: nodeRandom,
      staticKeyPair: client,
      sessionId,
      localIndex: 1,
      verifyRemoteStatic: (k) => constantTimeEqual(k, host.publicKey),
    });
    const responder = new ResponderHandshake({
      backend,
      random: nodeRandom,
      staticKeyPair: host,
      sessionId,
      localIndex: 2,
      verifyRemoteStatic: (k) => constantTimeEqual(k, client.publicKey),
    });
    const init = decodePeerFrame(initiator.start());
    if (!init.ok || init.value.type !== PeerFrameType.HandshakeInit) throw new Error("init");
    const respBytes = responder.handleInit(init.value);
    if (typeof respBytes === "string") throw new Error(respBytes);
    const resp = decodePeerFrame(respBytes);
    if (!resp.ok || resp.value.type !== PeerFrameType.HandshakeResponse) throw new Error("resp");
    const genuine = resp.value;
    const corpus = [
      respBytes,
      encodeHandshakeReply(PeerFrameType.HandshakeResponse, 2, 1, new Uint8Array(200)),
    ];
    const labels = new Set<string>();
    for (const input of fuzzInputs({
      count: 5_000,
      seed: 99,
      maxLength: 400,
      corpus,
      prefixes: [[1, 2, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]],
    })) {
      const frame = decodePeerFrame(input);
      if (!frame.ok || frame.value.type !== PeerFrameType.HandshakeResponse) continue;
      if (constantTimeEqual(frame.value.noiseMessage, genuine.noiseMessage)) continue;
      const result = initiator.handleResponse(frame.value, 0);
      if (typeof result !== "string") throw new Error("a forged response completed the handshake");
      labels.add(result);
    }
    const allowed = ["decrypt-failed", "invalid-dh", "message-too-short", "wrong-index"];
    for (const label of labels) expect(allowed).toContain(label);
    expect(labels.has("decrypt-failed")).toBe(true);
    // After all that, the genuine response still completes the handshake.
    const done = initiator.handleResponse(genuine, 0);
    expect(typeof done === "string" ? done : done.session?.remoteIndex).toBe(2);
  });

  it("HandshakeState.readMessage: 10,000 arbitrary messages throw only NoiseError and leave the state as it was", () => {
    const state = new HandshakeState({
      backend,
      protocolName: "Noise_XX_25519_ChaChaPoly_BLAKE2s",
      initiator: true,
      staticKeyPair: generateX25519KeyPair(backend, nodeRandom),
      random: nodeRandom,
    });
    state.writeMessage(new Uint8Array(0));
    const before = state.handshakeHash;
    const codes = new Set<string>();
    for (const input of fuzzInputs({ count: 10_000, seed: 5, maxLength: 300, corpus: [], prefixes: [] })) {
      try {
        state.readMessage(input);
        throw new Error("arbitrary bytes were accepted as XX message 2");
      } catch (error) {
        if (!(error instanceof NoiseError)) throw error;
        codes.add(error.code);
      }
    }
    expect([...codes].sort()).toEqual(["decrypt-failed", "message-too-short"]);
    expect(constantTimeEqual(state.handshakeHash, before)).toBe(true);
    expect(state.status).toBe("in-progress");
  });
});
