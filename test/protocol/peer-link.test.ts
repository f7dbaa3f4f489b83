import { describe, expect, it } from "vitest";
import { constantTimeEqual, toHex } from "../../protocol/bytes.ts";
import { type CryptoBackend, generateX25519KeyPair, type KeyPair } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { InitiatorHandshake, ResponderHandshake } from "../../protocol/transport/peer-handshake.ts";
import {
  type RekeyLimits,
  TransportError,
  type TransportSession,
} from "../../protocol/transport/transport-session.ts";
import {
  decodePeerFrame,
  encodeHandshakeInit,
  MAX_DATA_PLAINTEXT,
  type PeerFrame,
  PeerFrameType,
} from "../../protocol/wire/peer-frames.ts";
import { nodeRandom } from "../support/random.ts";

function frame(datagram: Uint8Array): PeerFrame {
  const decoded = decodePeerFrame(datagram);
  if (!decoded.ok) throw new Error(`decode failed: ${decoded.error}`);
  return decoded.value;
}

function dataFrame(datagram: Uint8Array) {
  const f = frame(datagram);
  if (f.type !== PeerFrameType.Data) throw new Error("not a DATA frame");
  return f;
}

interface Setup {
  backend: CryptoBackend;
  client: KeyPair;
  host: KeyPair;
  sessionId: Uint8Array;
  limits?: RekeyLimits;
}

function setup(backend: CryptoBackend, limits?: RekeyLimits): Setup {
  return {
    backend,
    client: generateX25519KeyPair(backend, nodeRandom),
    host: generateX25519KeyPair(backend, nodeRandom),
    sessionId: nodeRandom(16),
    ...(limits !== undefined && { limits }),
  };
}

function parties(s: Setup, hostSessionId = s.sessionId) {
  const common = {
    backend: s.backend,
    random: nodeRandom,
    ...(s.limits !== undefined && { limits: s.limits }),
  };
  const initiator = new InitiatorHandshake({
    ...common,
    staticKeyPair: s.client,
    sessionId: s.sessionId,
    localIndex: 0x1111,
    verifyRemoteStatic: (key) => constantTimeEqual(key, s.host.publicKey),
    payload: new TextEncoder().encode("client-device"),
  });
  const responder = new ResponderHandshake({
    ...common,
    staticKeyPair: s.host,
    sessionId: hostSessionId,
    localIndex: 0x2222,
    verifyRemoteStatic: (key) => constantTimeEqual(key, s.client.publicKey),
    payload: new TextEncoder().encode("host-device"),
  });
  return { initiator, responder };
}

/** Runs the three-message handshake and returns both sessions. */
function handshake(s: Setup, now = 0): { client: TransportSession; host: TransportSession } {
  const { initiator, responder } = parties(s);
  const init = frame(initiator.start());
  if (init.type !== PeerFrameType.HandshakeInit) throw new Error("bad init");
  const response = responder.handleInit(init);
  if (typeof response === "string") throw new Error(response);
  const resp = frame(response);
  if (resp.type !== PeerFrameType.HandshakeResponse) throw new Error("bad response");
  const done = initiator.handleResponse(resp, now);
  if (typeof done === "string" || done.session === undefined) throw new Error("initiator failed");
  const fin = frame(done.final);
  if (fin.type !== PeerFrameType.HandshakeFinal) throw new Error("bad final");
  const host = responder.handleFinal(fin, now);
  if (typeof host === "string") throw new Error(host);
  return { client: done.session, host: host.session };
}

describe.each([nobleBackend, nodeBackend] as CryptoBackend[])("$name backend: peer link", (backend) => {
  it("establishes a session both ways with authenticated payloads and matching channel binding", () => {
    const s = setup(backend);
    const { client, host } = handshake(s);
    expect(toHex(client.handshakeHash)).toBe(toHex(host.handshakeHash));
    expect(toHex(client.remoteStaticKey)).toBe(toHex(s.host.publicKey));
    expect(toHex(host.remoteStaticKey)).toBe(toHex(s.client.publicKey));
    expect([client.remoteIndex, host.remoteIndex]).toEqual([0x2222, 0x1111]);
    const toHost = host.open(dataFrame(client.seal(Uint8Array.of(1, 2, 3), 1)), 1);
    expect(toHost).toEqual(Uint8Array.of(1, 2, 3));
    const toClient = client.open(dataFrame(host.seal(new Uint8Array(MAX_DATA_PLAINTEXT), 1)), 1);
    expect((toClient as Uint8Array).length).toBe(MAX_DATA_PLAINTEXT);
  });

  it("binds the session id through the prologue: a handshake moved to another session fails", () => {
    const s = setup(backend);
    const { initiator, responder } = parties(s, nodeRandom(16));
    const init = frame(initiator.start());
    if (init.type !== PeerFrameType.HandshakeInit) throw new Error("bad init");
    expect(responder.handleInit(init)).toBe("wrong-session");
    // Rewrite the cleartext session id to the one the host expects: message 1 is unauthenticated, so the host
    // answers, but the prologues differ and the client cannot authenticate the answer.
    const hostSession = nodeRandom(16);
    const other = parties(s, hostSession).responder;
    const moved = frame(encodeHandshakeInit(init.senderIndex, hostSession, init.noiseMessage));
    if (moved.type !== PeerFrameType.HandshakeInit) throw new Error("bad init");
    const reply = other.handleInit(moved);
    if (typeof reply === "string") throw new Error(reply);
    const resp = frame(reply);
    if (resp.type !== PeerFrameType.HandshakeResponse) throw new Error("bad response");
    expect(initiator.handleResponse(resp, 0)).toBe("decrypt-failed");
  });

  it("refuses a peer whose static key is not the expected one, and a spoof does not break the real handshake", () => {
    const s = setup(backend);
    const { initiator, responder } = parties(s);
    const init = frame(initiator.start());
    if (init.type !== PeerFrameType.HandshakeInit) throw new Error("bad init");
    // An attacker who saw INIT answers with its own static key.
    const mallory = new ResponderHandshake({
      backend,
      random: nodeRandom,
      staticKeyPair: generateX25519KeyPair(backend, nodeRandom),
      sessionId: s.sessionId,
      localIndex: 0x2222,
      verifyRemoteStatic: () => true,
    });
    const spoofed = mallory.handleInit(init);
    if (typeof spoofed === "string") throw new Error(spoofed);
    const spoofFrame = frame(spoofed);
    if (spoofFrame.type !== PeerFrameType.HandshakeResponse) throw new Error("bad spoof");
    expect(initiator.handleResponse(spoofFrame, 0)).toBe("remote-static-rejected");
    // Garbage with the right indexes fails too.
    const garbage = { ...spoofFrame, noiseMessage: nodeRandom(spoofFrame.noiseMessage.length) };
    expect(initiator.handleResponse(garbage, 0)).toBe("decrypt-failed");
    // The genuine response still completes the handshake.
    const real = responder.handleInit(init);
    if (typeof real === "string") throw new Error(real);
    const realFrame = frame(real);
    if (realFrame.type !== PeerFrameType.HandshakeResponse) throw new Error("bad response");
    const done = initiator.handleResponse(realFrame, 0);
    expect(typeof done === "string" ? done : done.session?.remoteIndex).toBe(0x2222);
  });

  it("retransmission: the same INIT gets the same RESP, the same RESP the same FINAL; other INITs are refused", () => {
    const s = setup(backend);
    const { initiator, responder } = parties(s);
    const first = initiator.start();
    expect(toHex(initiator.start())).toBe(toHex(first));
    const init = frame(first);
    if (init.type !== PeerFrameType.HandshakeInit) throw new Error("bad init");
    const r1 = responder.handleInit(init);
    const r2 = responder.handleInit(init);
    expect(typeof r1).not.toBe("string");
    expect(toHex(r2 as Uint8Array)).toBe(toHex(r1 as Uint8Array));
    expect(responder.handleInit({ ...init, noiseMessage: nodeRandom(32) })).toBe("unexpected");
    expect(responder.handleInit({ ...init, noiseMessage: nodeRandom(40) })).toBe("unexpected");
    const resp = frame(r1 as Uint8Array);
    if (resp.type !== PeerFrameType.HandshakeResponse) throw new Error("bad response");
    const a = initiator.handleResponse(resp, 0);
    const b = initiator.handleResponse(resp, 0);
    if (typeof a === "string" || typeof b === "string") throw new Error("failed");
    expect(toHex(b.final)).toBe(toHex(a.final));
    expect(b.session).toBeUndefined();
  });

  it("DATA: replays, reordering inside the window, a tampered header or body, and the wrong index", () => {
    const { client, host } = handshake(setup(backend));
    const packets = Array.from({ length: 5 }, (_, i) => client.seal(Uint8Array.of(i), 0));
    expect(host.open(dataFrame(packets[3] as Uint8Array), 0)).toEqual(Uint8Array.of(3));
    expect(host.open(dataFrame(packets[3] as Uint8Array), 0)).toBe("replayed");
    expect(host.open(dataFrame(packets[0] as Uint8Array), 0)).toEqual(Uint8Array.of(0));
    const tampered = (packets[1] as Uint8Array).slice();
    tampered[8] = (tampered[8] as number) ^ 0x10; // the counter is authenticated as AD
    expect(host.open(dataFrame(tampered), 0)).toBe("decrypt-failed");
    // A forged packet did not burn its counter: the genuine one still opens.
    expect(host.open(dataFrame(packets[1] as Uint8Array), 0)).toEqual(Uint8Array.of(1));
    const body = (packets[2] as Uint8Array).slice();
    body[body.length - 1] = (body[body.length - 1] as number) ^ 1;
    expect(host.open(dataFrame(body), 0)).toBe("decrypt-failed");
    expect(client.open(dataFrame(packets[4] as Uint8Array), 0)).toBe("wrong-index");
  });

  it("rekey signals by time and count; sealing stops at the message limit and after the reject time", () => {
    const limits: RekeyLimits = {
      rekeyAfterMs: 1000,
      rejectAfterMs: 2000,
      rekeyAfterMessages: 3,
      rejectAfterMessages: 5,
    };
    const { client, host } = handshake(setup(backend, limits), 10_000);
    expect(client.needsRekey(10_000)).toBe(false);
    expect(client.needsRekey(11_000)).toBe(true);
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) sent.push(client.seal(Uint8Array.of(i), 10_000));
    expect(client.needsRekey(10_000)).toBe(true);
    expect(() => client.seal(Uint8Array.of(9), 10_000)).toThrow(TransportError);
    expect(client.sentCount).toBe(5);
    expect(host.open(dataFrame(sent[4] as Uint8Array), 10_000)).toEqual(Uint8Array.of(4));
    expect(host.open(dataFrame(sent[3] as Uint8Array), 12_000)).toBe("expired");
    expect(() => host.seal(Uint8Array.of(1), 12_000)).toThrow(/rekey required/);
    expect(() => host.seal(new Uint8Array(MAX_DATA_PLAINTEXT + 1), 10_000)).toThrow(/too large/);
  });

  it("refuses a received counter at or above the message limit before decrypting", () => {
    const limits: RekeyLimits = {
      rekeyAfterMs: 1000,
      rejectAfterMs: 2000,
      rekeyAfterMessages: 3,
      rejectAfterMessages: 5,
    };
    const { client, host } = handshake(setup(backend, limits));
    const packet = client.seal(Uint8Array.of(1), 0);
    new DataView(packet.buffer).setUint32(8, 5, true);
    expect(host.open(dataFrame(packet), 0)).toBe("counter-limit");
  });
});
