import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeForward,
  encodePing,
  type LeaseAckFrame,
  RejectReason,
  type RelayFrame,
  RelayFrameType,
  Role,
} from "../../protocol/wire/relay-frames.ts";
import { DROP } from "../../relay-node/relay-stats.ts";
import { FakeEdge } from "../support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  metricValue,
  newSessionId,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority } from "../support/relay-lease-kit.ts";
import { RelayPeer } from "../support/relay-peer.ts";

// Relay integration on loopback (issue 4, Tests): the real relay node in-process, a fake edge that checks signed
// requests, two dgram peers doing HELLO -> CHALLENGE -> LEASE_PRESENT -> LEASE_ACK, then FORWARD both ways.

function expectAck(frame: RelayFrame): LeaseAckFrame {
  if (frame.type !== RelayFrameType.LeaseAck) {
    const reason = frame.type === RelayFrameType.LeaseReject ? ` (reason ${frame.reason})` : "";
    throw new Error(`expected LEASE_ACK, got type ${frame.type}${reason}`);
  }
  return frame;
}

interface Pair {
  readonly sid: Uint8Array;
  readonly host: RelayPeer;
  readonly client: RelayPeer;
  readonly hostKey: Ed25519Pair;
  readonly clientKey: Ed25519Pair;
}

describe("relay node: enrollment, binding and forwarding on loopback", () => {
  const authority = new LeaseAuthority();
  let edge: FakeEdge;
  let relay: TestRelay;
  // Moves the relay's clock (and only the relay's) to test expiry without waiting minutes.
  let offsetMs = 0;
  const peers: RelayPeer[] = [];

  const open = async () => {
    const peer = await RelayPeer.open(relay.node.udpAddress);
    peers.push(peer);
    return peer;
  };
  const lease = (sid: Uint8Array, role: "host" | "client", cnf: Ed25519Pair, extra: { jti?: string } = {}) =>
    authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role, cnf, sub: `d_${role}`, ...extra });

  async function bindPair(): Promise<Pair> {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];
    expectAck(await host.present(sid, Role.Host, lease(sid, "host", hostKey), hostKey));
    expectAck(await client.present(sid, Role.Client, lease(sid, "client", clientKey), clientKey));
    expectAck(await host.nextFrame()); // the relay tells the first peer that its partner arrived
    return { sid, host, client, hostKey, clientKey };
  }

  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
    relay = await startTestRelay({ edge, authority, clock: { nowMs: () => Date.now() + offsetMs } });
    await waitFor(() => relay.node.ready(), "the first registration");
  });

  afterAll(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
    await relay?.dispose();
    await edge?.pause();
  });

  it("enrolls once with a signed request, registers, and only then reports ready", async () => {
    expect(edge.counts.enroll).toBe(1);
    expect(edge.enrolled(relay.node.relayId)).toBe(true);
    expect(edge.counts.register).toBeGreaterThanOrEqual(1);
    expect(edge.refusals).toEqual([]);
    expect(edge.registrations[0]).toMatchObject({ region: "test-1", publicAddr: "127.0.0.1:7400" });
    expect((await relay.http("/ready")).status).toBe(200);
    expect((await relay.http("/health")).status).toBe(200);
    expect((await relay.http("/nope")).status).toBe(404);
  });

  it("binds two peers and forwards datagrams both ways, byte for byte", async () => {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];

    const first = expectAck(await host.present(sid, Role.Host, lease(sid, "host", hostKey), hostKey));
    expect(first.peerBound).toBe(false);
    expect(first.role).toBe(Role.Host);
    expect(first.observed.family).toBe(4);
    expect([...first.observed.address]).toEqual([127, 0, 0, 1]);
    expect(first.observed.port).toBe(host.port);
    // exp = iat + 240 s, plus the 30 s skew the relay honours.
    expect(first.expiresInSecs).toBeGreaterThan(250);
    expect(first.expiresInSecs).toBeLessThanOrEqual(270);

    const second = expectAck(
      await client.present(sid, Role.Client, lease(sid, "client", clientKey), clientKey),
    );
    expect(second.peerBound).toBe(true);
    const update = expectAck(await host.nextFrame());
    expect(update.peerBound).toBe(true);
    expect(update.role).toBe(Role.Host);

    for (let i = 0; i < 20; i++) {
      const toClient = encodeForward(sid, randomBytes(1 + i * 60));
      host.send(toClient);
      expect(new Uint8Array(await client.next())).toEqual(toClient);
      const toHost = encodeForward(sid, randomBytes(1200));
      client.send(toHost);
      expect(new Uint8Array(await host.next())).toEqual(toHost);
    }

    const nonce = randomBytes(8);
    host.send(encodePing(RelayFrameType.Ping, sid, nonce));
    const pong = await host.nextFrame();
    expect(pong).toMatchObject({ type: RelayFrameType.Pong });
    expect(pong.type === RelayFrameType.Pong && Buffer.from(pong.nonce).equals(nonce)).toBe(true);
    expect(await client.silentFor(100)).toBe(true);
  });

  it("drops and counts a garbage datagram without answering, and /metrics shows the drop counters", async () => {
    const peer = await open();
    const before = relay.node.stats.drops.slice();
    peer.send(Uint8Array.of(1, 0x7f, 0, 0, ...randomBytes(40))); // version 1, unknown type
    peer.send(randomBytes(7)); // shorter than any header
    peer.send(Uint8Array.of(9, 0x10, 0, 0, ...randomBytes(92))); // a HELLO-sized datagram of another version
    peer.send(encodeForward(newSessionId(), randomBytes(2)).subarray(0, 20)); // FORWARD without payload
    expect(await peer.silentFor(150)).toBe(false); // only the HELLO-shaped one gets UNSUPPORTED_VERSION
    expect(await peer.silentFor(150)).toBe(true);
    const drops = relay.node.stats.drops;
    const grew = (index: number) => (drops[index] ?? 0) - (before[index] ?? 0);
    expect(grew(DROP.malformed)).toBe(3);
    expect(grew(DROP.unsupported_version)).toBe(1);

    const metrics = await relay.http("/metrics");
    expect(metrics.status).toBe(200);
    expect(metricValue(metrics.text, 'wavry_relay_drops_total{reason="malformed"}')).toBeGreaterThanOrEqual(
      3,
    );
    expect(
      metricValue(metrics.text, 'wavry_relay_drops_total{reason="unsupported_version"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics.text, 'wavry_relay_drops_total{reason="address_blocked"}')).toBe(0);
    expect(metricValue(metrics.text, "wavry_relay_forwarded_packets_total")).toBeGreaterThanOrEqual(40);
    expect(metricValue(metrics.text, "wavry_relay_sessions")).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics.text, "wavry_relay_trusted_lease_keys")).toBe(1);
  });

  it("sends the edge signed heartbeats with counters and drops by reason", async () => {
    const count = edge.counts.heartbeat;
    await waitFor(() => edge.counts.heartbeat > count, "a heartbeat", 3000);
    expect(edge.lastHeartbeat?.packetsForwarded).toBeGreaterThanOrEqual(40);
    expect(edge.lastHeartbeat?.drops.malformed).toBeGreaterThanOrEqual(3);
    expect(edge.lastHeartbeat?.sessions).toBe(relay.node.sessionCount());
    expect(edge.refusals).toEqual([]);
  });

  it("keeps a live session forwarding through an edge outage, and registers again when the edge returns", async () => {
    const { sid, host, client } = await bindPair();
    const registers = edge.counts.register;
    await edge.pause();
    // Two heartbeat intervals with the edge gone: heartbeats fail, registration retries with backoff.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(metricValue((await relay.http("/metrics")).text, "wavry_relay_edge_connected")).toBe(0);
    for (let i = 0; i < 5; i++) {
      const datagram = encodeForward(sid, randomBytes(800));
      host.send(datagram);
      expect(new Uint8Array(await client.next())).toEqual(datagram);
      client.send(datagram);
      expect(new Uint8Array(await host.next())).toEqual(datagram);
    }
    expect(relay.node.ready()).toBe(true);
    await edge.resume();
    await waitFor(() => edge.counts.register > registers, "registration after the outage", 5000);
    await waitFor(
      () =>
        relay.logs.some(
          (line) => line.includes('"event":"edge_register"') && line.includes('"outcome":"ok"'),
        ),
      "a register log line",
    );
    const datagram = encodeForward(sid, randomBytes(100));
    host.send(datagram);
    expect(new Uint8Array(await client.next())).toEqual(datagram);
  });

  it("renews with a fresh lease, and moves a role to a new address only with a fresh lease", async () => {
    const { sid, host, client, hostKey } = await bindPair();
    const renewed = expectAck(await host.present(sid, Role.Host, lease(sid, "host", hostKey), hostKey));
    expect(renewed.peerBound).toBe(true);

    // The same device behind a new port (NAT rebinding): the bound lease itself does not move the role...
    const moved = await open();
    const bound = lease(sid, "host", hostKey, { jti: "bound-jti-1" });
    expectAck(await host.present(sid, Role.Host, bound, hostKey));
    const same = await moved.present(sid, Role.Host, bound, hostKey);
    expect(same).toMatchObject({ type: RelayFrameType.LeaseReject, reason: RejectReason.SessionFull });
    // ...a fresh one does, and the old address is no longer bound.
    expectAck(await moved.present(sid, Role.Host, lease(sid, "host", hostKey), hostKey));
    expectAck(await client.nextFrame()); // client is told its partner (re)appeared
    const datagram = encodeForward(sid, randomBytes(300));
    client.send(datagram);
    expect(new Uint8Array(await moved.next())).toEqual(datagram);
    expect(await host.silentFor(100)).toBe(true);
    host.send(datagram);
    expect(await host.nextFrame()).toMatchObject({
      type: RelayFrameType.LeaseReject,
      reason: RejectReason.UnknownSession,
    });
    expect(await client.silentFor(100)).toBe(true);
  });

  it("never logs keys, tokens or leases", () => {
    const text = relay.logs.join("");
    expect(text).not.toContain(ENROLLMENT_TOKEN);
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain("eyJ"); // any compact JWS (lease or certificate) starts with a base64url "{"
    for (const line of relay.logs) expect(JSON.parse(line)).toMatchObject({ component: "relay" });
  });

  it("drops an idle session, and unbinds a peer whose lease expired", async () => {
    const idle = await bindPair();
    const live = await bindPair();
    offsetMs += 61_000; // past WAVRY_RELAY_SESSION_IDLE_SECS (60) for both...
    // ...but keep `live` busy: its traffic refreshes it before the next sweep (every 100 ms in tests).
    const keepAlive = encodeForward(live.sid, randomBytes(10));
    live.host.send(keepAlive);
    await live.client.next();
    const idleBefore = relay.node.stats.unbinds.idle;
    await waitFor(() => relay.node.stats.unbinds.idle >= idleBefore + 2, "the idle sweep");
    idle.host.send(encodeForward(idle.sid, randomBytes(10)));
    expect(await idle.host.nextFrame()).toMatchObject({ reason: RejectReason.UnknownSession });
    expect(await idle.client.silentFor(100)).toBe(true);

    const expiredBefore = relay.node.stats.unbinds.expired;
    offsetMs += 240_000; // leases end at iat + 240 s (+30 s skew): now past that for `live`
    live.host.send(encodeForward(live.sid, randomBytes(10)));
    expect(await live.host.nextFrame()).toMatchObject({
      type: RelayFrameType.LeaseReject,
      reason: RejectReason.UnknownSession,
    });
    expect(await live.client.silentFor(100)).toBe(true);
    expect(relay.node.stats.unbinds.expired).toBeGreaterThan(expiredBefore);
  });
});
