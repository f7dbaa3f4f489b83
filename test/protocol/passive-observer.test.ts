import { describe, expect, it } from "vitest";
import { concatBytes, constantTimeEqual, toHex, utf8 } from "../../protocol/bytes.ts";
import {
  type CryptoBackend,
  generateX25519KeyPair,
  noiseHkdf,
  writeCounterNonce,
} from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import {
  InitiatorHandshake,
  PEER_NOISE_PROTOCOL,
  peerPrologue,
  ResponderHandshake,
} from "../../protocol/transport/peer-handshake.ts";
import { TransportSession } from "../../protocol/transport/transport-session.ts";
import {
  decodePeerFrame,
  type PeerFrame,
  PeerFrameType,
  writeDataHeader,
} from "../../protocol/wire/peer-frames.ts";
import { nodeRandom } from "../support/random.ts";

/**
 * A passive observer records every datagram of a session (handshake and data) and knows everything public:
 * both static public keys (the edge publishes them), the session id, the protocol name and prologue. It
 * recomputes the handshake hash from the transcript (Noise's h is public data), derives every key it can from
 * all of that, and tries each one to decrypt and to forge. None may work.
 */
const backend: CryptoBackend = nodeBackend;

function decode(datagram: Uint8Array): PeerFrame {
  const result = decodePeerFrame(datagram);
  if (!result.ok) throw new Error(result.error);
  return result.value;
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return backend.blake2s(h, data);
}

describe("a passive observer with every datagram and all public data", () => {
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
    payload: utf8("client"),
  });
  const responder = new ResponderHandshake({
    backend,
    random: nodeRandom,
    staticKeyPair: host,
    sessionId,
    localIndex: 2,
    verifyRemoteStatic: (k) => constantTimeEqual(k, client.publicKey),
    payload: utf8("host"),
  });
  const wire: Uint8Array[] = [];
  const init = initiator.start();
  wire.push(init);
  const resp = responder.handleInit(
    decode(init) as Parameters<ResponderHandshake["handleInit"]>[0],
  ) as Uint8Array;
  wire.push(resp);
  const done = initiator.handleResponse(
    decode(resp) as Parameters<InitiatorHandshake["handleResponse"]>[0],
    0,
  );
  if (typeof done === "string" || done.session === undefined) throw new Error("handshake failed");
  wire.push(done.final);
  const hostSide = responder.handleFinal(
    decode(done.final) as Parameters<ResponderHandshake["handleFinal"]>[0],
    0,
  );
  if (typeof hostSide === "string") throw new Error(hostSide);
  const clientSession = done.session;
  const hostSession = hostSide.session;
  const secretPayloads = Array.from({ length: 8 }, (_, i) => utf8(`keystroke ${i} and a frame of video`));
  const dataPackets = secretPayloads.map((p, i) => (i % 2 === 0 ? clientSession : hostSession).seal(p, 0));
  wire.push(...dataPackets);

  // The observer's transcript-only reconstruction of h.
  const initFrame = decode(init);
  const respFrame = decode(resp);
  const finalFrame = decode(done.final);
  if (initFrame.type !== PeerFrameType.HandshakeInit || respFrame.type !== PeerFrameType.HandshakeResponse) {
    throw new Error("unexpected frames");
  }
  if (finalFrame.type !== PeerFrameType.HandshakeFinal) throw new Error("unexpected frame");
  // The protocol name is 33 bytes, longer than HASHLEN, so h starts as its hash (Noise §5.2).
  const name = backend.blake2s(utf8(PEER_NOISE_PROTOCOL));
  let h = mixHash(name, peerPrologue(sessionId));
  const ei = initFrame.noiseMessage.subarray(0, 32);
  h = mixHash(h, ei);
  h = mixHash(h, initFrame.noiseMessage.subarray(32));
  const er = respFrame.noiseMessage.subarray(0, 32);
  h = mixHash(h, er);
  h = mixHash(h, respFrame.noiseMessage.subarray(32, 80));
  h = mixHash(h, respFrame.noiseMessage.subarray(80));
  h = mixHash(h, finalFrame.noiseMessage.subarray(0, 48));
  h = mixHash(h, finalFrame.noiseMessage.subarray(48));
  const observedHash = h;

  const publicValues = [
    name,
    peerPrologue(sessionId),
    sessionId,
    ei,
    er,
    client.publicKey,
    host.publicKey,
    observedHash,
  ];
  function candidates(): Uint8Array[] {
    const out: Uint8Array[] = [...publicValues.filter((v) => v.length === 32)];
    for (const a of publicValues) {
      out.push(backend.blake2s(a));
      for (const b of publicValues) {
        out.push(...noiseHkdf(backend, a, b, 3));
        out.push(backend.blake2s(a, b));
        // Public keys misused as private scalars: "DH" anyone can compute.
        if (a.length === 32 && b.length === 32) {
          try {
            out.push(backend.x25519(a, b));
          } catch {
            // a low-order result is no candidate
          }
        }
      }
    }
    // The Split() of a chaining key built only from public inputs.
    let ck = name;
    for (const v of [ei, er, client.publicKey, host.publicKey])
      [ck] = noiseHkdf(backend, ck, v, 2) as [Uint8Array];
    out.push(
      ...noiseHkdf(backend, ck, new Uint8Array(0), 2),
      ...noiseHkdf(backend, observedHash, new Uint8Array(0), 2),
    );
    return out;
  }

  function tryDecrypt(keys: readonly Uint8Array[], packets: readonly Uint8Array[] = dataPackets): number {
    let opened = 0;
    const nonce = new Uint8Array(12);
    for (const packet of packets) {
      const f = decode(packet);
      if (f.type !== PeerFrameType.Data) throw new Error("not data");
      writeCounterNonce(nonce, BigInt(f.counter));
      for (const key of keys) {
        try {
          backend.aeadOpen(key, nonce, f.header, f.ciphertext);
          opened++;
        } catch {
          // expected: wrong key
        }
      }
    }
    return opened;
  }

  it("recomputes the real handshake hash from the transcript (h is public, so it must not be a key)", () => {
    expect(toHex(observedHash)).toBe(toHex(clientSession.handshakeHash));
  });

  it("sees no plaintext in any datagram", () => {
    for (const datagram of wire) {
      for (const secret of [...secretPayloads, utf8("client"), utf8("host")]) {
        expect(toHex(datagram).includes(toHex(secret))).toBe(false);
      }
    }
    // Static keys travel encrypted in XX: neither appears in clear.
    for (const datagram of wire) {
      expect(toHex(datagram).includes(toHex(client.publicKey))).toBe(false);
      expect(toHex(datagram).includes(toHex(host.publicKey))).toBe(false);
    }
  });

  it("decrypts nothing with any key derived from public data", () => {
    const keys = candidates();
    expect(keys.length).toBeGreaterThan(200);
    expect(tryDecrypt(keys)).toBe(0);
  });

  it("the same attack succeeds when the real key is among the candidates (the harness can detect a leak)", () => {
    const leaked = nodeRandom(32);
    const leaky = new TransportSession({
      backend,
      sendKey: leaked,
      receiveKey: nodeRandom(32),
      localIndex: 1,
      remoteIndex: 2,
      establishedAt: 0,
      handshakeHash: observedHash,
      remoteStaticKey: host.publicKey,
    });
    const packets = secretPayloads.map((p) => leaky.seal(p, 0));
    expect(tryDecrypt(candidates(), packets)).toBe(0);
    expect(tryDecrypt([...candidates(), leaked], packets)).toBe(packets.length);
  });

  it("forges nothing: packets sealed under derived keys, and altered real packets, are refused", () => {
    const header = new Uint8Array(16);
    const view = new DataView(header.buffer);
    const nonce = new Uint8Array(12);
    let accepted = 0;
    let counter = 1000;
    for (const key of candidates()) {
      writeDataHeader(view, 2, counter);
      writeCounterNonce(nonce, BigInt(counter));
      const forged = concatBytes(header, backend.aeadSeal(key, nonce, header, utf8("inject input")));
      const f = decode(forged);
      if (f.type === PeerFrameType.Data && typeof hostSession.open(f, 0) !== "string") accepted++;
      counter++;
    }
    for (const packet of dataPackets) {
      for (let at = 0; at < packet.length; at += 7) {
        const altered = packet.slice();
        altered[at] = (altered[at] as number) ^ 0x40;
        const f = decodePeerFrame(altered);
        if (f.ok && f.value.type === PeerFrameType.Data) {
          if (typeof hostSession.open(f.value, 0) !== "string") accepted++;
          if (typeof clientSession.open(f.value, 0) !== "string") accepted++;
        }
      }
    }
    expect(accepted).toBe(0);
  });
});
