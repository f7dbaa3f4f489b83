import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LEASE_TYP } from "../../protocol/relay/lease.ts";
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
  metricValue,
  newSessionId,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority, nowSecs } from "../support/relay-lease-kit.ts";
import { RelayPeer } from "../support/relay-peer.ts";

// Every LEASE_REJECT reason the relay can give a lease, each with its own test (issue 4, Tests), plus the drops that
// get no answer at all. Each test also checks the counters an operator would look at.

describe("relay node: every refusal, on loopback", () => {
  const authority = new LeaseAuthority();
  const impostor = new LeaseAuthority(); // a master key the relay does not pin
  let edge: FakeEdge;
  let relay: TestRelay;
  const peers: RelayPeer[] = [];

  const open = async () => {
    const peer = await RelayPeer.open(relay.node.udpAddress);
    peers.push(peer);
    return peer;
  };
  const rejects = (reason: RejectReason) => relay.node.stats.rejects[reason] ?? 0;
  const drops = (index: number) => relay.node.stats.drops[index] ?? 0;

  /** Presents `lease` from a fresh peer and expects LEASE_REJECT `reason`, counted once. */
  async function expectRefused(
    reason: RejectReason,
    build: (sid: Uint8Array, cnf: Ed25519Pair) => string,
    role: Role = Role.Host,
  ): Promise<void> {
    const sid = newSessionId();
    const cnf = ed25519Pair();
    const peer = await open();
    const before = rejects(reason);
    const sessions = relay.node.sessionCount();
    const answer = await peer.present(sid, role, build(sid, cnf), cnf);
    expect(answer).toEqual({ type: RelayFrameType.LeaseReject, sessionId: expect.anything(), reason });
    expect(rejects(reason)).toBe(before + 1);
    expect(relay.node.sessionCount()).toBe(sessions);
  }

  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: {
        leaseKeys: [
          authority.certificate("lk1"),
          authority.certificate("lk-revoke"),
          // Present on the list, but certified by a master key this relay does not pin.
          impostor.certificate("lk-impostor"),
          // Certified for another kid (sub != kid).
          authority.certificate("lk-mislabelled", { sub: "lk1" }),
          // Certificate already expired.
          authority.certificate("lk-stale", { iat: nowSecs() - 7200, exp: nowSecs() - 3600 }),
        ],
      },
    });
    relay = await startTestRelay({ edge, authority });
    await waitFor(() => relay.node.ready(), "the first registration");
  });

  afterAll(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
    await relay?.dispose();
    await edge?.pause();
  });

  const good = (sid: Uint8Array, cnf: Ed25519Pair, role: "host" | "client" = "host") =>
    authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role, cnf });

  it("accepts only the correctly certified lease keys", async () => {
    const metrics = await relay.http("/metrics");
    expect(metricValue(metrics.text, "wavry_relay_trusted_lease_keys")).toBe(2); // lk1, lk-revoke
    expect(relay.logs.some((line) => line.includes("certificate_refused"))).toBe(true);
  });

  it("refuses a forged lease (right kid, signed by another key): INVALID_LEASE", async () => {
    await expectRefused(RejectReason.InvalidLease, (sid, cnf) =>
      authority.lease({
        kid: "lk1",
        aud: relay.node.relayId,
        sid,
        role: "host",
        cnf,
        signer: ed25519Pair().privateKey,
      }),
    );
  });

  it("refuses a lease signed by an uncertified key: INVALID_LEASE", async () => {
    await expectRefused(RejectReason.InvalidLease, (sid, cnf) =>
      authority.lease({ kid: "lk-never-certified", aud: relay.node.relayId, sid, role: "host", cnf }),
    );
    for (const kid of ["lk-impostor", "lk-mislabelled", "lk-stale"]) {
      await expectRefused(RejectReason.InvalidLease, (sid, cnf) =>
        authority.lease({ kid, aud: relay.node.relayId, sid, role: "host", cnf }),
      );
    }
  });

  it("refuses a lease whose header is not exactly EdDSA + kid + typ: INVALID_LEASE", async () => {
    for (const header of [
      { alg: "none", kid: "lk1", typ: LEASE_TYP },
      { alg: "EdDSA", kid: "lk1", typ: "JWT" },
      { alg: "EdDSA", kid: "lk1", typ: LEASE_TYP, crit: ["b64"] },
      { alg: "EdDSA", typ: LEASE_TYP },
    ]) {
      await expectRefused(RejectReason.InvalidLease, (sid, cnf) =>
        authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role: "host", cnf, header }),
      );
    }
    await expectRefused(RejectReason.InvalidLease, () => "not.a-lease");
  });

  it("refuses a lease for another relay: WRONG_RELAY", async () => {
    await expectRefused(RejectReason.WrongRelay, (sid, cnf) =>
      authority.lease({ kid: "lk1", aud: "r_aaaaaaaaaaaaaaaaaaaaaaaaaa", sid, role: "host", cnf }),
    );
  });

  it("refuses an expired lease (beyond the 30 s skew): EXPIRED", async () => {
    await expectRefused(RejectReason.Expired, (sid, cnf) =>
      authority.lease({
        kid: "lk1",
        aud: relay.node.relayId,
        sid,
        role: "host",
        cnf,
        iat: nowSecs() - 300,
        exp: nowSecs() - 31,
      }),
    );
    await expectRefused(RejectReason.Expired, (sid, cnf) =>
      authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role: "host", cnf, iat: nowSecs() + 120 }),
    );
  });

  it("refuses a lease for the other role: ROLE_MISMATCH", async () => {
    await expectRefused(RejectReason.RoleMismatch, (sid, cnf) => good(sid, cnf, "client"), Role.Host);
  });

  it("refuses a lease for another session: WRONG_SESSION", async () => {
    await expectRefused(RejectReason.WrongSession, (_sid, cnf) => good(newSessionId(), cnf));
  });

  it("refuses a lease replayed from another address: BAD_COOKIE as captured, BAD_PROOF re-signed", async () => {
    const sid = newSessionId();
    const victimKey = ed25519Pair();
    const victim = await open();
    const attacker = await open();
    const lease = good(sid, victimKey);
    const cookie = await victim.hello(sid, Role.Host);
    const captured = victim.presentFrame(sid, Role.Host, lease, victimKey, cookie);

    // The whole datagram replayed from the attacker's address: the cookie was minted for the victim's.
    const badCookie = rejects(RejectReason.BadCookie);
    attacker.send(captured);
    expect(await attacker.nextFrame()).toMatchObject({ reason: RejectReason.BadCookie });
    expect(rejects(RejectReason.BadCookie)).toBe(badCookie + 1);

    // With its own cookie but without the lease's confirmation key, the proof does not verify.
    const attackerKey = ed25519Pair();
    const answer = await attacker.present(sid, Role.Host, lease, attackerKey);
    expect(answer).toMatchObject({ type: RelayFrameType.LeaseReject, reason: RejectReason.BadProof });

    // The victim itself still binds with that lease.
    victim.send(captured);
    expect(await victim.nextFrame()).toMatchObject({ type: RelayFrameType.LeaseAck });
  });

  it("refuses a third peer for a session whose roles are taken: SESSION_FULL", async () => {
    const sid = newSessionId();
    const [host, client, third] = [await open(), await open(), await open()];
    const [hostKey, clientKey, thirdKey] = [ed25519Pair(), ed25519Pair(), ed25519Pair()];
    const lease = (role: "host" | "client", cnf: Ed25519Pair, sub: string) =>
      authority.lease({ kid: "lk1", aud: relay.node.relayId, sid, role, cnf, sub });
    expect(await host.present(sid, Role.Host, lease("host", hostKey, "d_host"), hostKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    expect(
      await client.present(sid, Role.Client, lease("client", clientKey, "d_client"), clientKey),
    ).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    await host.nextFrame();
    for (const role of ["host", "client"] as const) {
      const answer = await third.present(
        sid,
        role === "host" ? Role.Host : Role.Client,
        lease(role, thirdKey, "d_intruder"),
        thirdKey,
      );
      expect(answer).toMatchObject({ type: RelayFrameType.LeaseReject, reason: RejectReason.SessionFull });
    }
    // The third peer's FORWARDs go nowhere; the two bound peers still talk.
    third.send(encodeForward(sid, randomBytes(50)));
    expect(await third.nextFrame()).toMatchObject({ reason: RejectReason.UnknownSession });
    expect(await host.silentFor(100)).toBe(true);
    expect(await client.silentFor(10)).toBe(true);
    const datagram = encodeForward(sid, randomBytes(50));
    host.send(datagram);
    expect(new Uint8Array(await client.next())).toEqual(datagram);
  });

  it("drops a garbage datagram silently and counts it", async () => {
    const peer = await open();
    const before = drops(DROP.malformed);
    const tooLarge = drops(DROP.too_large);
    peer.send(Uint8Array.of(1, 0x33, 0, 0, ...randomBytes(100)));
    peer.send(Uint8Array.of(1, 0x10, 0, 0, ...randomBytes(30))); // a HELLO of the wrong length
    peer.send(randomBytes(2000)); // larger than any relay datagram
    expect(await peer.silentFor(200)).toBe(true);
    expect(drops(DROP.malformed)).toBe(before + 2);
    expect(drops(DROP.too_large)).toBe(tooLarge + 1);
  });

  it("refuses leases by a key revoked through a heartbeat, and unbinds the sessions it leased: REVOKED_KEY", async () => {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];
    const lease = (role: "host" | "client", cnf: Ed25519Pair) =>
      authority.lease({ kid: "lk-revoke", aud: relay.node.relayId, sid, role, cnf });
    expect(await host.present(sid, Role.Host, lease("host", hostKey), hostKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    expect(await client.present(sid, Role.Client, lease("client", clientKey), clientKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    await host.nextFrame();
    const datagram = encodeForward(sid, randomBytes(64));
    host.send(datagram);
    expect(new Uint8Array(await client.next())).toEqual(datagram);

    edge.control = { ...edge.control, revokedLeaseKeyIds: ["lk-revoke"] };
    await waitFor(
      () => relay.node.stats.unbinds.revoked === 2,
      "the heartbeat carrying the revocation",
      4000,
    );
    const unknown = drops(DROP.unknown_session);
    host.send(datagram);
    expect(await client.silentFor(150)).toBe(true);
    expect(drops(DROP.unknown_session)).toBe(unknown + 1);
    await expectRefused(RejectReason.RevokedKey, (s, cnf) =>
      authority.lease({ kid: "lk-revoke", aud: relay.node.relayId, sid: s, role: "host", cnf }),
    );
  });

  it("refuses new sessions while the edge says draining, and keeps existing ones: OVERLOADED", async () => {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];
    expect(await host.present(sid, Role.Host, good(sid, hostKey), hostKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    edge.control = { ...edge.control, state: "draining" };
    const heartbeats = edge.counts.heartbeat;
    await waitFor(() => edge.counts.heartbeat > heartbeats, "a heartbeat saying draining", 4000);
    // The second peer of an existing session may still join; a new session may not.
    expect(await client.present(sid, Role.Client, good(sid, clientKey, "client"), clientKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    await host.nextFrame();
    const sessions = relay.node.sessionCount();
    await expectRefusedWithSessions(RejectReason.Overloaded, sessions);
    edge.control = { ...edge.control, state: "active" };
    const again = edge.counts.heartbeat;
    await waitFor(() => edge.counts.heartbeat > again, "a heartbeat saying active", 4000);
  });

  async function expectRefusedWithSessions(reason: RejectReason, sessions: number): Promise<void> {
    const sid = newSessionId();
    const cnf = ed25519Pair();
    const peer = await open();
    expect(await peer.present(sid, Role.Host, good(sid, cnf), cnf)).toMatchObject({ reason });
    expect(relay.node.sessionCount()).toBe(sessions);
  }

  it("drops traffic from blocked ranges pushed by the edge, and unbinds peers inside them: ADDRESS_BLOCKED", async () => {
    const sid = newSessionId();
    const [host, client] = [await open(), await open()];
    const [hostKey, clientKey] = [ed25519Pair(), ed25519Pair()];
    expect(await host.present(sid, Role.Host, good(sid, hostKey), hostKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    expect(await client.present(sid, Role.Client, good(sid, clientKey, "client"), clientKey)).toMatchObject({
      type: RelayFrameType.LeaseAck,
    });
    await host.nextFrame();
    edge.control = { ...edge.control, blockedCidrs: ["127.0.0.0/8", "not-a-cidr"] };
    await waitFor(() => relay.node.sessionCount() === 0, "the heartbeat carrying the block", 4000);
    const blocked = drops(DROP.address_blocked);
    host.send(encodeForward(sid, randomBytes(64)));
    expect(await client.silentFor(150)).toBe(true);
    host.send(encodeHello(sid, Role.Host, randomBytes(16)));
    expect(await host.nextFrame()).toMatchObject({ reason: RejectReason.AddressBlocked });
    expect(drops(DROP.address_blocked)).toBe(blocked + 2);
    edge.control = { ...edge.control, blockedCidrs: [] };
  });
});
