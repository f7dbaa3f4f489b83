import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PeerLink, type PeerLinkOptions } from "../../endpoint/peer-link/peer-link.ts";
import type { RelayTiming } from "../../endpoint/peer-link/relay-binder.ts";
import { constantTimeEqual } from "../../protocol/bytes.ts";
import { Channel, encodeChannelPayload } from "../../protocol/channels/channel.ts";
import { generateX25519KeyPair, type KeyPair } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { encodeHandshakeInit, encodeHandshakeReply, PeerFrameType } from "../../protocol/wire/peer-frames.ts";
import { encodeLeaseReject, RejectReason } from "../../protocol/wire/relay-frames.ts";
import { FakeEdge } from "../support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  newSessionId,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority } from "../support/relay-lease-kit.ts";

// The peer link on loopback (issue 5, "Peer link"): real UDP sockets, the real Noise handshake, and the real relay
// node in-process for the relayed path.

const random = (length: number) => new Uint8Array(randomBytes(length));
const LOOPBACK = { address: "127.0.0.1" } as const;
const is = (keys: KeyPair) => (key: Uint8Array) => constantTimeEqual(key, keys.publicKey);
const FAST_RELAY: RelayTiming = { retryMs: 100, maxRetryMs: 500, pingMs: 300, pongTimeoutMs: 1200 };

const links: PeerLink[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  await Promise.all(links.splice(0).map((link) => link.close()));
  await Promise.all(
    sockets.splice(0).map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))),
  );
});

async function open(role: "client" | "host", options: PeerLinkOptions): Promise<PeerLink> {
  const link = await (role === "client" ? PeerLink.client(options) : PeerLink.host(options));
  links.push(link);
  return link;
}

async function udp(): Promise<Socket> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return socket;
}

/** The first `event` within `ms`, or a rejection naming it. */
function next<T extends unknown[]>(link: PeerLink, event: string, ms = 5000): Promise<T> {
  return once(link, event, { signal: AbortSignal.timeout(ms) }) as Promise<T>;
}

/** Collects (channel, body) pairs a link delivers. */
function inbox(link: PeerLink): { channel: Channel; text: string }[] {
  const seen: { channel: Channel; text: string }[] = [];
  link.on("data", (channel, body) => seen.push({ channel, text: Buffer.from(body).toString() }));
  return seen;
}

const message = (channel: Channel, text: string) => encodeChannelPayload(channel, Buffer.from(text));

interface Pair {
  readonly host: PeerLink;
  readonly client: PeerLink;
  readonly hostKeys: KeyPair;
  readonly clientKeys: KeyPair;
}

/** A host and a client over the direct path, both established. */
async function directPair(extra: Partial<PeerLinkOptions> = {}): Promise<Pair> {
  const sessionId = newSessionId();
  const hostKeys = generateX25519KeyPair(nodeBackend, random);
  const clientKeys = generateX25519KeyPair(nodeBackend, random);
  const common = { sessionId, bind: LOOPBACK, tickMs: 10, ...extra };
  const host = await open("host", { ...common, staticKeyPair: hostKeys, verifyRemoteStatic: is(clientKeys) });
  const hostUp = next(host, "established");
  const client = await open("client", {
    ...common,
    staticKeyPair: clientKeys,
    verifyRemoteStatic: is(hostKeys),
    candidates: [host.localAddress],
  });
  await Promise.all([next(client, "established"), hostUp]);
  return { host, client, hostKeys, clientKeys };
}

describe("peer link: direct path", () => {
  it("handshakes, agrees on keys, and carries data both ways on the direct path", async () => {
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const host = await open("host", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: is(clientKeys),
    });
    const hostUp = next<[{ handshakeHash: Uint8Array; remoteStaticKey: Uint8Array }]>(host, "established");
    const client = await open("client", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: clientKeys,
      verifyRemoteStatic: is(hostKeys),
      candidates: [host.localAddress],
    });
    expect(client.send(message(Channel.Input, "too early"))).toBe(false);
    const [clientInfo] = await next<[{ path: unknown; handshakeMs: number } & Record<string, Uint8Array>]>(
      client,
      "established",
    );
    const [hostInfo] = await hostUp;
    expect(clientInfo.path).toEqual({ kind: "direct", ...host.localAddress });
    expect(clientInfo.handshakeMs).toBeGreaterThanOrEqual(0);
    expect(clientInfo.handshakeMs).toBeLessThan(2000);
    expect(constantTimeEqual(clientInfo.remoteStaticKey ?? new Uint8Array(), hostKeys.publicKey)).toBe(true);
    expect(constantTimeEqual(hostInfo.remoteStaticKey, clientKeys.publicKey)).toBe(true);
    expect(constantTimeEqual(clientInfo.handshakeHash ?? new Uint8Array(), hostInfo.handshakeHash)).toBe(
      true,
    );
    expect(host.activePath).toEqual({ kind: "direct", ...client.localAddress });

    const atHost = inbox(host);
    const atClient = inbox(client);
    for (let i = 0; i < 10; i++) {
      expect(client.send(message(Channel.Input, `key ${i}`))).toBe(true);
      expect(host.send(message(Channel.Video, `frame ${i}`))).toBe(true);
    }
    await waitFor(() => atHost.length === 10 && atClient.length === 10, "data both ways");
    expect(atHost[3]).toEqual({ channel: Channel.Input, text: "key 3" });
    expect(atClient[9]).toEqual({ channel: Channel.Video, text: "frame 9" });
    // Keepalives are swallowed, not delivered as data.
    expect(atHost.every((m) => m.text.length > 0)).toBe(true);
  });

  it("survives spoofed INITs, a rival responder and garbage from third sockets", async () => {
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const host = await open("host", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: is(clientKeys),
      tickMs: 10,
    });
    // A rival that answers any INIT with a well-formed RESP under its own static key: the client must drop it
    // (remote-static-rejected) and still complete with the genuine host.
    const rival = await open("host", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: generateX25519KeyPair(nodeBackend, random),
      verifyRemoteStatic: () => true,
    });
    const attacker = await udp();
    const hostPort = host.localAddress.port;
    const spray = () => {
      // INITs with fresh sender indexes and the right session id: each costs a responder slot, none replaces one.
      attacker.send(
        encodeHandshakeInit(randomBytes(4).readUInt32LE(), sessionId, random(32)),
        hostPort,
        "127.0.0.1",
      );
      attacker.send(
        encodeHandshakeReply(PeerFrameType.HandshakeFinal, randomBytes(4).readUInt32LE(), 1, random(64)),
        hostPort,
        "127.0.0.1",
      );
      attacker.send(random(1 + (randomBytes(1)[0] ?? 0)), hostPort, "127.0.0.1");
      attacker.send(Uint8Array.of(1, 4, 0, 0, ...random(40)), hostPort, "127.0.0.1");
      attacker.send(encodeLeaseReject(sessionId, RejectReason.UnknownSession), hostPort, "127.0.0.1");
    };
    for (let i = 0; i < 5; i++) spray();
    const sprayer = setInterval(spray, 2);
    try {
      // The genuine host sits behind a 40 ms delay, so the rival's forged RESP is always the first to arrive.
      const proxy = await udp();
      let clientAt: { address: string; port: number } | null = null;
      proxy.on("message", (datagram, from) => {
        if (from.port === hostPort) {
          if (clientAt !== null) proxy.send(datagram, clientAt.port, clientAt.address);
          return;
        }
        clientAt = { address: from.address, port: from.port };
        setTimeout(() => proxy.send(datagram, hostPort, "127.0.0.1"), 40);
      });
      const hostUp = next(host, "established");
      const client = await open("client", {
        sessionId,
        bind: LOOPBACK,
        staticKeyPair: clientKeys,
        verifyRemoteStatic: is(hostKeys),
        candidates: [rival.localAddress, { address: "127.0.0.1", port: proxy.address().port }],
        tickMs: 10,
      });
      const clientPort = client.localAddress.port;
      attacker.send(
        encodeHandshakeReply(PeerFrameType.HandshakeResponse, 7, 7, random(96)),
        clientPort,
        "127.0.0.1",
      );
      attacker.send(random(300), clientPort, "127.0.0.1");
      await Promise.all([next(client, "established"), hostUp]);
      expect(client.activePath).toEqual({ kind: "direct", address: "127.0.0.1", port: proxy.address().port });
      expect(client.drops.get("remote-static-rejected") ?? 0).toBeGreaterThanOrEqual(1);
      const atHost = inbox(host);
      expect(client.send(message(Channel.Control, "hello"))).toBe(true);
      await waitFor(() => atHost.length === 1, "data after the attack");
    } finally {
      clearInterval(sprayer);
    }
    const dropped = [...host.drops.values()].reduce((a, b) => a + b, 0);
    expect(dropped).toBeGreaterThan(10);
    expect(host.drops.get("not-relay") ?? 0).toBeGreaterThan(0);
    // The flood churned only the attacker's own slots.
    expect(host.responderEvictions).toBeGreaterThan(5);
  });

  it("refuses a host whose static key is not the expected one", async () => {
    const sessionId = newSessionId();
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const expected = generateX25519KeyPair(nodeBackend, random);
    const host = await open("host", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: generateX25519KeyPair(nodeBackend, random),
      verifyRemoteStatic: () => true,
    });
    let established = false;
    host.on("established", () => {
      established = true;
    });
    const client = await open("client", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: clientKeys,
      verifyRemoteStatic: is(expected),
      candidates: [host.localAddress],
      timing: { handshakeTimeoutMs: 800 },
      tickMs: 10,
    });
    const [reason] = await next<[string]>(client, "failed");
    expect(reason).toBe("remote-static-rejected");
    expect(client.status).toBe("failed");
    expect(established).toBe(false);
    expect(client.send(message(Channel.Input, "x"))).toBe(false);
  });

  it("reports a timeout when the peer is silent, after retransmitting INIT with backoff", async () => {
    const silent = await udp();
    let inits = 0;
    silent.on("message", (datagram) => {
      if (datagram[1] === PeerFrameType.HandshakeInit) inits++;
    });
    const client = await open("client", {
      sessionId: newSessionId(),
      bind: LOOPBACK,
      staticKeyPair: generateX25519KeyPair(nodeBackend, random),
      verifyRemoteStatic: () => true,
      candidates: [{ address: "127.0.0.1", port: silent.address().port }],
      timing: { handshakeTimeoutMs: 700 },
      tickMs: 10,
    });
    const started = performance.now();
    const [reason] = await next<[string]>(client, "failed");
    expect(reason).toBe("timeout");
    expect(performance.now() - started).toBeGreaterThanOrEqual(600);
    // 0, 100, 300 ms (doubling): at least three copies, and far fewer than a fixed 10 ms schedule would send.
    expect(inits).toBeGreaterThanOrEqual(3);
    expect(inits).toBeLessThanOrEqual(5);
  });

  it("rekeys when the limits say so and keeps data flowing across the switch", async () => {
    const limits = {
      rekeyAfterMs: 250,
      rejectAfterMs: 5000,
      rekeyAfterMessages: 2 ** 40,
      rejectAfterMessages: 2 ** 48,
    };
    const { host, client } = await directPair({ limits });
    const atHost = inbox(host);
    const atClient = inbox(client);
    const total = 120;
    for (let i = 0; i < total; i++) {
      expect(client.send(message(Channel.Input, `c${i}`))).toBe(true);
      expect(host.send(message(Channel.Video, `h${i}`))).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await waitFor(() => atHost.length === total && atClient.length === total, "every message across rekeys");
    expect(client.rekeys).toBeGreaterThanOrEqual(2);
    expect(host.rekeys).toBeGreaterThanOrEqual(2);
    expect(atHost.map((m) => m.text)).toEqual(Array.from({ length: total }, (_, i) => `c${i}`));
  });

  it("rekeys by message count when the host does most of the sending", async () => {
    const limits = {
      rekeyAfterMs: 60_000,
      rejectAfterMs: 120_000,
      rekeyAfterMessages: 40,
      rejectAfterMessages: 1000,
    };
    const { host, client } = await directPair({ limits });
    const atClient = inbox(client);
    const total = 300;
    for (let i = 0; i < total; i++) {
      expect(host.send(message(Channel.Video, `v${i}`))).toBe(true);
      if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(() => atClient.length === total, "every video message across count-driven rekeys");
    // The client counts what it receives, so the host's heavy direction triggers rekeys too.
    expect(client.rekeys).toBeGreaterThanOrEqual(3);
    expect(atClient.map((m) => m.text)).toEqual(Array.from({ length: total }, (_, i) => `v${i}`));
  });

  it("follows the client to a new source address (NAT rebinding) without a new handshake", async () => {
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const host = await open("host", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: is(clientKeys),
    });
    const hostPort = host.localAddress.port;
    // A NAT in the test: the client talks to `front`; the host sees the client as `outside`, which changes.
    const [front, natA, natB] = [await udp(), await udp(), await udp()];
    let outside = natA;
    let clientAt: { address: string; port: number } | null = null;
    front.on("message", (datagram, from) => {
      clientAt = { address: from.address, port: from.port };
      outside.send(datagram, hostPort, "127.0.0.1");
    });
    for (const nat of [natA, natB]) {
      nat.on("message", (datagram) => {
        if (clientAt !== null) front.send(datagram, clientAt.port, clientAt.address);
      });
    }
    const hostUp = next(host, "established");
    const client = await open("client", {
      sessionId,
      bind: LOOPBACK,
      staticKeyPair: clientKeys,
      verifyRemoteStatic: is(hostKeys),
      candidates: [{ address: "127.0.0.1", port: front.address().port }],
    });
    await Promise.all([next(client, "established"), hostUp]);
    expect(host.activePath).toEqual({ kind: "direct", address: "127.0.0.1", port: natA.address().port });
    const moved = next<[unknown]>(host, "pathChanged");
    outside = natB;
    expect(client.send(message(Channel.Input, "from the new address"))).toBe(true);
    const [path] = await moved;
    expect(path).toEqual({ kind: "direct", address: "127.0.0.1", port: natB.address().port });
    const atClient = inbox(client);
    expect(host.send(message(Channel.Video, "to the new address"))).toBe(true);
    await waitFor(() => atClient.length === 1, "the host's answer at the new address");
    expect(client.rekeys + host.rekeys).toBe(0);
  });
});

describe("peer link: relay path", () => {
  const authority = new LeaseAuthority();
  let edge: FakeEdge;
  let relay: TestRelay;

  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
    relay = await startTestRelay({ edge, authority });
    await waitFor(() => relay.node.ready(), "the relay's registration");
  });

  afterAll(async () => {
    await relay?.dispose();
    await edge?.pause();
  });

  const seed = (pair: Ed25519Pair) => {
    const d = pair.privateKey.export({ format: "jwk" }).d;
    if (typeof d !== "string") throw new Error("unexpected JWK export");
    return new Uint8Array(Buffer.from(d, "base64url"));
  };

  /** Host and client with no direct candidates: everything goes through the relay. */
  async function relayPair(direct = false): Promise<Pair> {
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const [hostDevice, clientDevice] = [ed25519Pair(), ed25519Pair()];
    const { address, port } = relay.node.udpAddress;
    const assignment = (role: "host" | "client", cnf: Ed25519Pair) => ({
      address,
      port,
      lease: authority.lease({
        kid: "lk1",
        aud: relay.node.relayId,
        sid: sessionId,
        role,
        cnf,
        sub: `d_${role}`,
      }),
      signingKey: seed(cnf),
    });
    const common = { sessionId, bind: LOOPBACK, tickMs: 10, relayTiming: FAST_RELAY };
    const host = await open("host", {
      ...common,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: is(clientKeys),
      relay: assignment("host", hostDevice),
    });
    const hostUp = next(host, "established");
    const client = await open("client", {
      ...common,
      staticKeyPair: clientKeys,
      verifyRemoteStatic: is(hostKeys),
      relay: assignment("client", clientDevice),
      ...(direct && { candidates: [host.localAddress] }),
    });
    const [[info]] = await Promise.all([next<[{ path: unknown }]>(client, "established"), hostUp]);
    expect(info.path).toEqual(direct ? { kind: "direct", ...host.localAddress } : { kind: "relay" });
    return { host, client, hostKeys, clientKeys };
  }

  it("presents leases, handshakes through the relay and carries data both ways", async () => {
    const { host, client } = await relayPair();
    expect(host.activePath).toEqual({ kind: "relay" });
    const atHost = inbox(host);
    const atClient = inbox(client);
    for (let i = 0; i < 5; i++) {
      expect(client.send(message(Channel.Input, `in ${i}`))).toBe(true);
      expect(host.send(message(Channel.Video, `out ${i}`))).toBe(true);
    }
    await waitFor(() => atHost.length === 5 && atClient.length === 5, "relayed data both ways");
    expect(atClient[4]).toEqual({ channel: Channel.Video, text: "out 4" });
  });

  it("prefers the direct path when both the direct path and the relay work", async () => {
    const { host, client } = await relayPair(true);
    await waitFor(() => host.activePath?.kind === "direct", "the host on the direct path");
    expect(client.activePath?.kind).toBe("direct");
  });

  it("takes a relay assigned after the links started (direct unreachable) and establishes through it", async () => {
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const clientKeys = generateX25519KeyPair(nodeBackend, random);
    const { address, port } = relay.node.udpAddress;
    const assignment = (role: "host" | "client") => {
      const cnf = ed25519Pair();
      const lease = authority.lease({ kid: "lk1", aud: relay.node.relayId, sid: sessionId, role, cnf });
      return { address, port, lease, signingKey: seed(cnf) };
    };
    // The host's socket is bound by the caller first (as the daemons do before publishing the port).
    const socket = await new Promise<Socket>((resolve) => {
      const s = createSocket("udp4");
      s.bind(0, "127.0.0.1", () => resolve(s));
    });
    const reserved = socket.address().port;
    const common = { sessionId, tickMs: 10, relayTiming: FAST_RELAY };
    const host = await open("host", {
      ...common,
      socket,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: is(clientKeys),
    });
    expect(host.localAddress.port).toBe(reserved);
    // A candidate nobody answers on: the direct path cannot work.
    const dead = await udp();
    const client = await open("client", {
      ...common,
      bind: LOOPBACK,
      staticKeyPair: clientKeys,
      verifyRemoteStatic: is(hostKeys),
      candidates: [{ address: "127.0.0.1", port: dead.address().port }],
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(client.status).toBe("handshaking");
    const hostUp = next(host, "established");
    host.useRelay(assignment("host"));
    client.useRelay(assignment("client"));
    const [[info]] = await Promise.all([next<[{ path: unknown }]>(client, "established"), hostUp]);
    expect(info.path).toEqual({ kind: "relay" });
    const atHost = inbox(host);
    client.send(message(Channel.Input, "late relay"));
    await waitFor(() => atHost.length === 1, "data through the late relay");
    expect(atHost[0]).toEqual({ channel: Channel.Input, text: "late relay" });
  });

  it("re-presents its lease after a relay restart and resumes without a new session", async () => {
    const { host, client } = await relayPair();
    const atHost = inbox(host);
    const { port } = relay.node.udpAddress;
    await relay.stop();
    relay = await startTestRelay({
      edge,
      authority,
      dir: relay.dir,
      env: { WAVRY_RELAY_LISTEN: `127.0.0.1:${port}` },
    });
    await waitFor(() => relay.node.ready(), "the restarted relay's registration");
    expect(relay.node.udpAddress.port).toBe(port);
    let sent = 0;
    await waitFor(
      () => {
        client.send(message(Channel.Input, `after ${sent++}`));
        return atHost.length > 0;
      },
      "data through the restarted relay",
      10_000,
    );
    expect(client.relayRebinds).toBeGreaterThanOrEqual(1);
    expect(host.relayRebinds).toBeGreaterThanOrEqual(1);
    expect(client.status).toBe("established");
    expect(host.status).toBe("established");
    // The same Noise session carried on: only the relay binding was renewed.
    expect(client.rekeys + host.rekeys).toBe(0);
  });
});
