import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RelayBinder } from "../../endpoint/peer-link/relay-binder.ts";
import { ResponderTable } from "../../endpoint/peer-link/responder-table.ts";
import { generateEd25519KeyPair, generateX25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { InitiatorHandshake, ResponderHandshake } from "../../protocol/transport/peer-handshake.ts";
import { decodePeerFrame, type HandshakeInitFrame } from "../../protocol/wire/peer-frames.ts";
import {
  decodeRelayFrame,
  encodeChallenge,
  encodeLeaseAck,
  encodeLeaseReject,
  encodePing,
  leaseProofMessage,
  RejectReason,
  type RelayFrame,
  RelayFrameType,
  Role,
} from "../../protocol/wire/relay-frames.ts";

// The pure parts of the peer link, driven by hand with a fake clock: the relay binder's state machine (including
// UNKNOWN_SESSION after a relay restart and lost PONGs) and the host's bounded responder table.

const random = (length: number) => new Uint8Array(randomBytes(length));
const sessionId = random(16);
const observed = { family: 4, address: Uint8Array.of(127, 0, 0, 1), port: 5000 } as const;

function decode(datagram: Uint8Array): RelayFrame {
  const decoded = decodeRelayFrame(datagram);
  if (!decoded.ok) throw new Error(`undecodable relay frame (${decoded.error})`);
  return decoded.value;
}

function binder(timing = { retryMs: 100, maxRetryMs: 400, pingMs: 1000, pongTimeoutMs: 3000 }) {
  const device = generateEd25519KeyPair(nodeBackend, random);
  const sent: RelayFrame[] = [];
  const events: string[] = [];
  const b = new RelayBinder(
    {
      sessionId,
      role: Role.Client,
      lease: "header.payload.signature",
      sign: (message) => nodeBackend.ed25519Sign(device.privateKey, message),
      random,
      send: (datagram) => sent.push(decode(datagram)),
      onBound: (peerBound) => events.push(`bound ${peerBound}`),
      onFailed: (reason) => events.push(`failed ${reason}`),
      timing,
    },
    0,
  );
  return { b, sent, events, device };
}

/** Answers the last HELLO with a CHALLENGE and the LEASE_PRESENT with an ACK. */
function bind(b: RelayBinder, sent: RelayFrame[], now: number, peerBound: boolean): Uint8Array {
  const hello = sent.at(-1);
  if (hello?.type !== RelayFrameType.Hello) throw new Error("expected a HELLO");
  const cookie = random(32);
  b.handle(decode(encodeChallenge(sessionId, hello.clientNonce, cookie)), now);
  b.handle(decode(encodeLeaseAck(sessionId, Role.Client, peerBound, 200, observed)), now);
  return cookie;
}

describe("relay binder", () => {
  it("presents the lease with a proof by the device key, then pings while bound", () => {
    const { b, sent, events, device } = binder();
    expect(sent.map((f) => f.type)).toEqual([RelayFrameType.Hello]);
    const cookie = bind(b, sent, 10, false);
    const present = sent[1];
    if (present?.type !== RelayFrameType.LeasePresent) throw new Error("expected LEASE_PRESENT");
    expect(present.role).toBe(Role.Client);
    expect([...present.cookie]).toEqual([...cookie]);
    const message = leaseProofMessage(sessionId, Role.Client, cookie, present.lease);
    expect(nodeBackend.ed25519Verify(device.publicKey, message, present.proof)).toBe(true);
    expect(b.state).toEqual({ kind: "bound", peerBound: false });
    expect(b.forwarding).toBe(false);
    // The unasked ACK once the other peer binds.
    b.handle(decode(encodeLeaseAck(sessionId, Role.Client, true, 190, observed)), 20);
    expect(b.forwarding).toBe(true);
    expect(events).toEqual(["bound false", "bound true"]);
    b.tick(500);
    expect(sent).toHaveLength(2);
    b.tick(1010);
    expect(sent.at(-1)?.type).toBe(RelayFrameType.Ping);
  });

  it("ignores a CHALLENGE for another nonce or session, and retransmits HELLO with backoff", () => {
    const { b, sent } = binder();
    b.handle(decode(encodeChallenge(sessionId, random(16), random(32))), 1);
    b.handle(decode(encodeChallenge(random(16), random(16), random(32))), 1);
    expect(b.state.kind).toBe("hello");
    for (const now of [100, 150, 300, 700, 1100]) b.tick(now);
    // 100 (then 200), 300 (then 400), 700 (then 400 cap), 1100.
    expect(sent.filter((f) => f.type === RelayFrameType.Hello)).toHaveLength(5);
  });

  it("starts over from HELLO on UNKNOWN_SESSION (relay restart) and when PONGs stop", () => {
    const { b, sent } = binder();
    bind(b, sent, 0, true);
    b.handle(decode(encodeLeaseReject(sessionId, RejectReason.UnknownSession)), 50);
    expect(b.state.kind).toBe("hello");
    expect(b.rebinds).toBe(1);
    bind(b, sent, 60, true);
    expect(b.forwarding).toBe(true);
    b.tick(1100);
    const ping = sent.at(-1);
    if (ping?.type !== RelayFrameType.Ping) throw new Error("expected PING");
    b.handle(decode(encodePing(RelayFrameType.Pong, sessionId, ping.nonce)), 1110);
    b.tick(3000);
    expect(b.state.kind).toBe("bound");
    b.tick(4200); // no PONG since 1110
    expect(b.state.kind).toBe("hello");
    expect(b.rebinds).toBe(2);
  });

  it("gives up on a reject it cannot fix, and retries on rate limiting", () => {
    const again = binder();
    again.b.handle(decode(encodeLeaseReject(sessionId, RejectReason.RateLimited)), 5);
    expect(again.b.state.kind).toBe("hello");
    again.b.handle(decode(encodeLeaseReject(sessionId, RejectReason.Expired)), 6);
    expect(again.b.state).toEqual({ kind: "failed", reason: "expired" });
    expect(again.events).toEqual(["failed expired"]);
    again.b.tick(10_000);
    expect(again.sent).toHaveLength(1);
  });
});

describe("responder table", () => {
  const hostKeys = generateX25519KeyPair(nodeBackend, random);
  const options = (localIndex: number) => ({
    backend: nodeBackend,
    random,
    staticKeyPair: hostKeys,
    sessionId,
    localIndex,
    verifyRemoteStatic: () => true,
  });
  let next = 1;
  const table = (max: number, perSource: number) =>
    new ResponderTable(max, perSource, () => new ResponderHandshake(options(next++)));
  const init = (index: number): HandshakeInitFrame => {
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const hs = new InitiatorHandshake({ ...options(index), staticKeyPair: clientKeys });
    const decoded = decodePeerFrame(hs.start());
    if (!decoded.ok || decoded.value.type !== 0x01) throw new Error("expected an INIT");
    return decoded.value;
  };

  it("answers a repeated INIT with the same RESP and never lets another index take its slot", () => {
    const t = table(4, 2);
    const genuine = init(7);
    const first = t.handleInit(genuine, "10.0.0.1:1", 0);
    expect(first).toBeInstanceOf(Uint8Array);
    expect(t.handleInit(genuine, "10.0.0.1:1", 1)).toEqual(first);
    // Same index, other bytes: refused, the slot stays.
    expect(t.handleInit({ ...init(7), senderIndex: 7 }, "10.0.0.9:9", 2)).toBe("unexpected");
    expect(t.get(7)?.source).toBe("10.0.0.1:1");
    // A bare ephemeral only: a longer message 1 is refused and leaves no slot.
    const padded = { ...init(8), noiseMessage: random(48) };
    expect(t.handleInit(padded, "10.0.0.9:9", 3)).toBe("unexpected");
    expect(t.get(8)).toBeUndefined();
  });

  it("bounds slots per source and in all, evicting from the busiest source", () => {
    const t = table(4, 2);
    t.handleInit(init(1), "genuine", 0);
    for (let i = 100; i < 150; i++) t.handleInit(init(i), "flood", i);
    expect(t.size).toBe(3);
    expect(t.get(1)).toBeDefined();
    expect(t.evictions).toBe(48);
    t.handleInit(init(2), "other", 200);
    t.handleInit(init(3), "third", 201);
    expect(t.size).toBe(4);
    expect(t.get(1)).toBeDefined();
    expect(t.get(149)).toBeDefined();
    expect(t.get(148)).toBeUndefined();
  });
});
