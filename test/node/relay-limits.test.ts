import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeForward,
  encodeHello,
  RejectReason,
  RelayFrameType,
  Role,
} from "../../protocol/wire/relay-frames.ts";
import { DROP } from "../../relay-node/relay-stats.ts";
import { FakeEdge } from "../support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  newSessionId,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { ed25519Pair, LeaseAuthority } from "../support/relay-lease-kit.ts";
import { RelayPeer } from "../support/relay-peer.ts";

// Limits (DESIGN.md: per-IP, per-session and per-peer limits; bounded tables): a relay configured small, so each
// limit is reached with a handful of datagrams.

describe("relay node: limits", () => {
  const authority = new LeaseAuthority();
  let edge: FakeEdge;
  let relay: TestRelay;
  const peers: RelayPeer[] = [];
  const open = async () => {
    const peer = await RelayPeer.open(relay.node.udpAddress);
    peers.push(peer);
    return peer;
  };
  const drops = (index: number) => relay.node.stats.drops[index] ?? 0;

  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
    relay = await startTestRelay({
      edge,
      authority,
      env: {
        WAVRY_RELAY_MAX_SESSIONS: "1",
        WAVRY_RELAY_IP_HANDSHAKES_PER_SEC: "1",
        WAVRY_RELAY_IP_HANDSHAKE_BURST: "8",
        WAVRY_RELAY_IP_PACKETS_PER_SEC: "400",
        WAVRY_RELAY_IP_PACKET_BURST: "60",
      },
    });
    await waitFor(() => relay.node.ready(), "the first registration");
  });

  afterAll(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
    await relay?.dispose();
    await edge?.pause();
  });

  it("holds a peer to its lease's bandwidth, and refuses a session beyond WAVRY_RELAY_MAX_SESSIONS", async () => {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];
    // 64 kbit/s (8 bytes a ms) with a 2 KB burst: one 1220-byte datagram fits, the next ones in the same ms do not.
    const bw = { kbps: 64, burstKb: 2 };
    const lease = (role: "host" | "client", cnf = role === "host" ? hostKey : clientKey) =>
      authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role, cnf, bw });
    expect(await host.present(sid, Role.Host, lease("host"), hostKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    expect(await client.present(sid, Role.Client, lease("client"), clientKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    await host.nextFrame();

    const limited = drops(DROP.rate_limited_session);
    for (let i = 0; i < 5; i++) host.send(encodeForward(sid, randomBytes(1200)));
    await client.next();
    expect(await client.silentFor(150)).toBe(true);
    expect(drops(DROP.rate_limited_session)).toBe(limited + 4);

    const full = drops(DROP.session_table_full);
    const other = newSessionId();
    const key = ed25519Pair();
    const peer = await open();
    const answer = await peer.present(
      other,
      Role.Host,
      authority.lease({ kid: "lk1", aud: relay.node.relayId, sid: other, role: "host", cnf: key }),
      key,
    );
    expect(answer).toMatchObject({ type: RelayFrameType.LeaseReject, reason: RejectReason.SessionFull });
    expect(drops(DROP.session_table_full)).toBe(full + 1);
    expect(relay.node.sessionCount()).toBe(1);
  });

  it("rate-limits handshakes per source IP: RATE_LIMITED, answered at most once a second", async () => {
    const peer = await open();
    const limited = drops(DROP.rate_limited_ip);
    for (let i = 0; i < 12; i++) peer.send(encodeHello(newSessionId(), Role.Host, randomBytes(16)));
    const answers: number[] = [];
    for (;;) {
      try {
        const frame = await peer.nextFrame(200);
        answers.push(frame.type === RelayFrameType.LeaseReject ? frame.reason : frame.type);
      } catch {
        break;
      }
    }
    // The burst left after the first test's handshakes is small; every HELLO beyond it is dropped and counted,
    // and one of them (not each) is told why.
    const challenges = answers.filter((a) => a === RelayFrameType.Challenge).length;
    expect(answers.filter((a) => a === RejectReason.RateLimited)).toHaveLength(1);
    expect(challenges).toBeLessThan(12);
    expect(drops(DROP.rate_limited_ip) - limited).toBe(12 - challenges);
  });

  it("rate-limits all datagrams per source IP", async () => {
    const peer = await open();
    const limited = drops(DROP.rate_limited_ip);
    for (let i = 0; i < 200; i++) peer.send(encodeForward(newSessionId(), randomBytes(10)));
    await waitFor(() => drops(DROP.rate_limited_ip) - limited >= 100, "per-IP packet drops", 2000);
  });
});
