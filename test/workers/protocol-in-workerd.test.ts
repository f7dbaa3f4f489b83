import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { constantTimeEqual } from "../../protocol/bytes.ts";
import { generateX25519KeyPair, type RandomSource } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { runNoiseVectors } from "../../protocol/noise/test-vectors.ts";
import { InitiatorHandshake, ResponderHandshake } from "../../protocol/transport/peer-handshake.ts";
import { decodePeerFrame, PeerFrameType } from "../../protocol/wire/peer-frames.ts";

// protocol/ must run unchanged in workerd (DESIGN.md): the portable backend passes the Noise vectors here and
// completes a peer-link handshake, with randomness from the Workers runtime's crypto.getRandomValues.
const random: RandomSource = (length) => crypto.getRandomValues(new Uint8Array(length));

describe("protocol/ inside workerd", () => {
  it("passes all 59 cacophony vectors on the noble backend", () => {
    const report = runNoiseVectors(JSON.parse(env.NOISE_VECTORS_JSON), nobleBackend);
    expect(report.outcomes.filter((o) => !o.passed)).toEqual([]);
    expect(report.outcomes.length).toBe(59);
  });

  it("completes a peer-link XX handshake and exchanges a DATA datagram", () => {
    const client = generateX25519KeyPair(nobleBackend, random);
    const host = generateX25519KeyPair(nobleBackend, random);
    const sessionId = random(16);
    const common = { backend: nobleBackend, random, sessionId };
    const initiator = new InitiatorHandshake({
      ...common,
      staticKeyPair: client,
      localIndex: 1,
      verifyRemoteStatic: (k) => constantTimeEqual(k, host.publicKey),
    });
    const responder = new ResponderHandshake({
      ...common,
      staticKeyPair: host,
      localIndex: 2,
      verifyRemoteStatic: (k) => constantTimeEqual(k, client.publicKey),
    });
    const init = decodePeerFrame(initiator.start());
    if (!init.ok || init.value.type !== PeerFrameType.HandshakeInit) throw new Error("init");
    const resp = responder.handleInit(init.value);
    if (typeof resp === "string") throw new Error(resp);
    const respFrame = decodePeerFrame(resp);
    if (!respFrame.ok || respFrame.value.type !== PeerFrameType.HandshakeResponse) throw new Error("resp");
    const done = initiator.handleResponse(respFrame.value, 0);
    if (typeof done === "string" || done.session === undefined) throw new Error("initiator");
    const fin = decodePeerFrame(done.final);
    if (!fin.ok || fin.value.type !== PeerFrameType.HandshakeFinal) throw new Error("final");
    const established = responder.handleFinal(fin.value, 0);
    if (typeof established === "string") throw new Error(established);
    const data = decodePeerFrame(done.session.seal(new Uint8Array([42]), 0));
    if (!data.ok || data.value.type !== PeerFrameType.Data) throw new Error("data");
    expect(established.session.open(data.value, 0)).toEqual(new Uint8Array([42]));
  });
});
