import type { EdgeBindings } from "../../edge/env.ts";
import { type LogFields, logEvent } from "../../edge/log.ts";
import { base64urlDecode, base64urlEncode } from "../../edge/security/tokens-util.ts";
import { reportEvents } from "../../edge/services/monitor.ts";
import type { RelayAssignment, RelayPeer } from "../../edge/services/relay-assignment.ts";
import {
  type ClientMessage,
  type ClientMessageOf,
  type ServerMessage,
  type SessionRejectReason,
  SIGNAL_CLOSE,
  SIGNAL_LIMITS,
  type SignalErrorCode,
} from "../../protocol/signaling/messages.ts";
import { type DeviceKeys, deviceStanding, reachableAmong, reachableHost } from "./reachability.ts";
import type { RoomStore, SessionRecord } from "./room-store.ts";

/**
 * What a device's room does with each message: session setup between two rooms, relay assignment, presence and
 * outcome reports. The room (signaling-room.ts) owns sockets, limits and timers and hands each validated message
 * here through a {@link RoomPort}.
 *
 * Session flow (both rooms keep their own side of the session, so each checks every later message against its own
 * record and nothing can be injected into a session by a device that is not part of it):
 *
 *   client ── session.request ──► client room: ACL (D1), new random id, record `requested`
 *                                   └─ offer (RPC) ──► host room: record `offered`, `session.offer` to the host
 *   client ◄─ session.pending ──── (the host is online and reachable)
 *   host ──── session.accept ────► host room: `accepted` ── accepted (RPC) ──► client room: `accepted`,
 *   client ◄─ session.accepted ──── with the host's key (from D1) and candidates
 *
 * Consent: the edge only offers sessions the ACL allows (same owner, or a grant from the host's owner), and consent
 * is automatic inside that set; the host's `session.accept` supplies its candidates, and a host may still refuse
 * (`session.reject`: busy, declined). Anything else is `session.failed {reason: "unreachable"}`, the same answer
 * whether the device does not exist, may not be reached or is offline.
 */

/** What the client room sends the host room to offer a session. */
export interface OfferInput {
  readonly sessionId: string;
  readonly client: DeviceKeys;
  /** The host's own Ed25519 key as D1 has it (for its relay lease's confirmation key). */
  readonly hostEd25519: string;
  readonly candidates: readonly string[];
  readonly wantRelay: boolean;
  readonly region: string | null;
}

/** What one room tells the room of the other side of a session. */
export type PeerEvent =
  | { readonly kind: "accepted"; readonly candidates: readonly string[] }
  | { readonly kind: "rejected"; readonly reason: SessionRejectReason }
  | { readonly kind: "cancelled" }
  | { readonly kind: "gone" }
  | { readonly kind: "candidates"; readonly candidates: readonly string[] }
  | {
      readonly kind: "relay";
      readonly relayId: string;
      readonly relayAddr: string;
      readonly lease: string;
      readonly expiresAt: number;
    }
  | { readonly kind: "relay_unavailable" };

/** The room as the router sees it. */
export interface RoomPort {
  readonly env: EdgeBindings;
  readonly store: RoomStore;
  /** The device this room serves. */
  readonly deviceId: string;
  now(): number;
  random(length: number): Uint8Array;
  /** Sends to every active socket of this device; returns how many got it. */
  broadcast(message: ServerMessage): number;
  /** Makes sure the room's alarm fires by `at`. */
  wake(at: number): Promise<void>;
  /** Closes every socket of this device, counting `closed.<counter>`. */
  closeAll(code: number, reason: string, counter: string): void;
  /** Offers a session to a host's room; false when the host is offline. */
  offer(hostId: string, offer: OfferInput): Promise<boolean>;
  /** Tells the other side's room; false when it has no such session (or cannot be reached). */
  tellPeer(peerId: string, sessionId: string, event: PeerEvent): Promise<boolean>;
  /** Whether a device's room has an active socket. */
  isOnline(deviceId: string): Promise<boolean>;
  /** The registry's relay choice and leases (edge/services/relay-assignment.ts); null when none is available. */
  assignRelay(request: {
    readonly sessionId: Uint8Array;
    readonly region: string | null;
    readonly peers: readonly RelayPeer[];
  }): Promise<RelayAssignment | null>;
}

/** Answers on the socket a message came from. */
export interface Reply {
  send(message: ServerMessage): void;
  /** Refuses the message with an `error` and counts it. */
  refuse(code: SignalErrorCode, text: string): void;
}

const msg = <M extends ServerMessage>(m: M): M => m;
/** `id` echoed only when the request had one (exactOptionalPropertyTypes: never `id: undefined`). */
const echo = (id: string | null | undefined) => (id === undefined || id === null ? {} : { id });

function log(event: string, outcome: string, fields: LogFields): void {
  // Ids, codes and counts only: never a key, ticket, candidate, lease or other payload.
  logEvent(outcome === "failed" ? "warn" : "info", "signaling", event, outcome, fields);
}

/** Handles one validated message from a socket of this room's device. */
export async function routeClientMessage(
  port: RoomPort,
  reply: Reply,
  message: ClientMessage,
): Promise<void> {
  switch (message.type) {
    case "ping":
      reply.send(msg({ v: 1, type: "pong", ...echo(message.id) }));
      return;
    case "session.request":
      return requestSession(port, reply, message);
    case "session.accept":
      return acceptSession(port, reply, message);
    case "session.reject":
      return rejectSession(port, reply, message);
    case "session.cancel":
      return cancelSession(port, reply, message);
    case "candidates":
      return addCandidates(port, reply, message);
    case "relay.request":
      return requestRelay(port, reply, message);
    case "session.report":
      return report(port, reply, message);
    case "presence.query":
      return presence(port, reply, message);
    default:
      return assertNever(message);
  }
}

function assertNever(value: never): never {
  throw new TypeError(`unhandled message ${String((value as { type?: unknown }).type)}`);
}

/** Checks the asking device is still in good standing; closes its sockets when it is not. */
async function standingOrClose(port: RoomPort) {
  const standing = await deviceStanding(port.env.DB, port.deviceId);
  if (standing === null || !standing.active) {
    port.closeAll(SIGNAL_CLOSE.revoked, "device revoked", "revoked");
    return null;
  }
  return standing;
}

async function requestSession(
  port: RoomPort,
  reply: Reply,
  m: ClientMessageOf<"session.request">,
): Promise<void> {
  const unreachable = () => {
    port.store.count("session.unreachable");
    reply.send(msg({ v: 1, type: "session.failed", ...echo(m.id), reason: "unreachable" }));
  };
  if (port.store.openSessions() >= SIGNAL_LIMITS.maxOpenSessions) {
    reply.refuse("too_many_sessions", `at most ${SIGNAL_LIMITS.maxOpenSessions} open sessions; cancel one`);
    return;
  }
  const standing = await standingOrClose(port);
  if (standing === null) return;
  // A session with oneself is nobody's business; it gets the same answer as any other unreachable device.
  const host = m.to === port.deviceId ? null : await reachableHost(port.env.DB, port.deviceId, m.to);
  if (host === null) return unreachable();

  const sessionId = base64urlEncode(port.random(16));
  const now = port.now();
  const record: SessionRecord = {
    sessionId,
    role: "client",
    state: "requested",
    peerId: host.deviceId,
    peerX25519: host.x25519PublicKey,
    peerEd25519: host.ed25519PublicKey,
    selfEd25519: standing.keys.ed25519PublicKey,
    requestRef: m.id ?? null,
    wantRelay: m.wantRelay === true,
    region: m.region ?? null,
    relayRequests: 0,
    candidateUpdates: 0,
    reported: false,
    createdAt: now,
    expiresAt: now + SIGNAL_LIMITS.offerTimeoutSecs * 1000,
  };
  // Recorded before the offer: the host may accept before the offer call even returns.
  port.store.putSession(record);
  await port.wake(record.expiresAt);
  const delivered = await port.offer(host.deviceId, {
    sessionId,
    client: standing.keys,
    hostEd25519: host.ed25519PublicKey,
    candidates: m.candidates,
    wantRelay: record.wantRelay,
    region: record.region,
  });
  if (!delivered) {
    // Offline looks exactly like unreachable: no session id, same reason.
    if (port.store.deleteSession(sessionId)) unreachable();
    return;
  }
  port.store.count("session.offered");
  if (port.store.session(sessionId)?.state === "requested") {
    reply.send(msg({ v: 1, type: "session.pending", ...echo(m.id), sessionId, host: host.deviceId }));
  }
}

/** Host side of an offer (called through the host room's RPC). False when the host cannot take it. */
export async function receiveOffer(port: RoomPort, offer: OfferInput): Promise<boolean> {
  if (port.store.session(offer.sessionId) !== null) return false;
  if (port.store.openSessions() >= SIGNAL_LIMITS.maxOpenSessions) return false;
  const now = port.now();
  const record: SessionRecord = {
    sessionId: offer.sessionId,
    role: "host",
    state: "offered",
    peerId: offer.client.deviceId,
    peerX25519: offer.client.x25519PublicKey,
    peerEd25519: offer.client.ed25519PublicKey,
    selfEd25519: offer.hostEd25519,
    requestRef: null,
    wantRelay: offer.wantRelay,
    region: offer.region,
    relayRequests: 0,
    candidateUpdates: 0,
    reported: false,
    createdAt: now,
    expiresAt: now + SIGNAL_LIMITS.offerTimeoutSecs * 1000,
  };
  port.store.putSession(record);
  const sent = port.broadcast(
    msg({
      v: 1,
      type: "session.offer",
      sessionId: offer.sessionId,
      from: offer.client.deviceId,
      fromX25519PublicKey: offer.client.x25519PublicKey,
      candidates: [...offer.candidates],
      wantRelay: offer.wantRelay,
    }),
  );
  if (sent === 0) {
    port.store.deleteSession(offer.sessionId);
    return false;
  }
  await port.wake(record.expiresAt);
  return true;
}

/** This device's record of `sessionId` in role `role` (any role when omitted), or a refusal. */
function own(port: RoomPort, reply: Reply, sessionId: string, role?: SessionRecord["role"]) {
  const record = port.store.session(sessionId);
  if (record === null || (role !== undefined && record.role !== role)) {
    reply.refuse("unknown_session", "no such session on this device");
    return null;
  }
  return record;
}

async function acceptSession(
  port: RoomPort,
  reply: Reply,
  m: ClientMessageOf<"session.accept">,
): Promise<void> {
  const record = own(port, reply, m.sessionId, "host");
  if (record === null) return;
  if (!port.store.acceptSession(m.sessionId, "offered", port.now() + SIGNAL_LIMITS.sessionTtlSecs * 1000)) {
    reply.refuse("invalid_state", "the session was already answered");
    return;
  }
  const told = await port.tellPeer(record.peerId, m.sessionId, {
    kind: "accepted",
    candidates: m.candidates,
  });
  if (!told) {
    // The client cancelled or timed out meanwhile.
    port.store.deleteSession(m.sessionId);
    reply.send(
      msg({ v: 1, type: "session.failed", ...echo(m.id), sessionId: m.sessionId, reason: "peer_gone" }),
    );
    return;
  }
  port.store.count("session.accepted");
  // The host room assigns the relay a client asked for in its request: it holds both peers' keys, and doing it
  // here rather than inside the client room's RPC handler keeps every cross-room call one level deep.
  if (record.wantRelay) await assignAndDeliver(port, record, null);
}

async function rejectSession(
  port: RoomPort,
  reply: Reply,
  m: ClientMessageOf<"session.reject">,
): Promise<void> {
  const record = own(port, reply, m.sessionId, "host");
  if (record === null) return;
  if (record.state !== "offered") {
    reply.refuse("invalid_state", "only an offered session can be rejected; cancel an accepted one");
    return;
  }
  port.store.deleteSession(m.sessionId);
  port.store.count(`session.rejected.${m.reason}`);
  await port.tellPeer(record.peerId, m.sessionId, { kind: "rejected", reason: m.reason });
}

async function cancelSession(
  port: RoomPort,
  reply: Reply,
  m: ClientMessageOf<"session.cancel">,
): Promise<void> {
  const record = own(port, reply, m.sessionId);
  if (record === null) return;
  port.store.deleteSession(m.sessionId);
  port.store.count("session.cancelled");
  await port.tellPeer(record.peerId, m.sessionId, { kind: "cancelled" });
}

async function addCandidates(port: RoomPort, reply: Reply, m: ClientMessageOf<"candidates">): Promise<void> {
  const record = own(port, reply, m.sessionId);
  if (record === null) return;
  if (!port.store.bumpSession(m.sessionId, "candidate_updates", SIGNAL_LIMITS.maxCandidateUpdates)) {
    reply.refuse(
      "limit_reached",
      `at most ${SIGNAL_LIMITS.maxCandidateUpdates} candidate updates per session`,
    );
    return;
  }
  await port.tellPeer(record.peerId, m.sessionId, { kind: "candidates", candidates: m.candidates });
}

async function requestRelay(
  port: RoomPort,
  reply: Reply,
  m: ClientMessageOf<"relay.request">,
): Promise<void> {
  const record = own(port, reply, m.sessionId);
  if (record === null) return;
  if (record.state !== "accepted") {
    reply.refuse("invalid_state", "a relay is assigned once the host has accepted");
    return;
  }
  await assignAndDeliver(port, record, m.id ?? null, reply);
}

/**
 * Asks the registry for a relay and gives each peer its own lease: this side directly, the other through its room.
 * The ACL is checked again first, since leases outlive the request that created the session.
 */
async function assignAndDeliver(
  port: RoomPort,
  record: SessionRecord,
  ref: string | null,
  reply?: Reply,
): Promise<void> {
  const unavailable = () => {
    port.store.count("relay.unavailable");
    const text = "no relay is available right now; keep trying the direct path and ask again later";
    if (reply !== undefined) reply.refuse("relay_unavailable", text);
    else if (record.role === "client") {
      port.broadcast(msg({ v: 1, type: "error", code: "relay_unavailable", message: text }));
    } else void port.tellPeer(record.peerId, record.sessionId, { kind: "relay_unavailable" });
  };
  if (!port.store.bumpSession(record.sessionId, "relay_requests", SIGNAL_LIMITS.maxRelayRequests)) {
    if (reply !== undefined)
      reply.refuse("limit_reached", `at most ${SIGNAL_LIMITS.maxRelayRequests} relays per session`);
    return;
  }
  const host = record.role === "host" ? port.deviceId : record.peerId;
  const client = record.role === "client" ? port.deviceId : record.peerId;
  const sessionBytes = base64urlDecode(record.sessionId);
  if (sessionBytes === null) return unavailable();
  if ((await reachableHost(port.env.DB, client, host)) === null) {
    port.store.deleteSession(record.sessionId);
    port.broadcast(msg({ v: 1, type: "session.failed", sessionId: record.sessionId, reason: "peer_gone" }));
    await port.tellPeer(record.peerId, record.sessionId, { kind: "gone" });
    return;
  }
  const peers: RelayPeer[] = [
    { deviceId: port.deviceId, role: record.role, ed25519PublicKey: record.selfEd25519 },
    {
      deviceId: record.peerId,
      role: record.role === "host" ? "client" : "host",
      ed25519PublicKey: record.peerEd25519,
    },
  ];
  let assignment: RelayAssignment | null;
  try {
    assignment = await port.assignRelay({ sessionId: sessionBytes, region: record.region, peers });
  } catch (error) {
    log("relay_assignment", "failed", {
      sessionId: record.sessionId,
      deviceId: port.deviceId,
      error: error instanceof Error ? error.name : "non-error",
    });
    assignment = null;
  }
  const mine = assignment?.leases.find((l) => l.deviceId === port.deviceId && l.role === record.role);
  const theirs = assignment?.leases.find((l) => l.deviceId === record.peerId && l.role !== record.role);
  if (assignment === null || assignment === undefined || mine === undefined || theirs === undefined) {
    return unavailable();
  }
  port.store.count("relay.assigned");
  const relay = {
    relayId: assignment.relayId,
    relayAddr: assignment.publicAddr,
    expiresAt: assignment.expiresAt,
  };
  const ownMessage = msg({
    v: 1,
    type: "relay.assigned",
    sessionId: record.sessionId,
    ...relay,
    lease: mine.lease,
  });
  if (reply !== undefined) reply.send({ ...ownMessage, ...echo(ref) });
  else port.broadcast(ownMessage);
  await port.tellPeer(record.peerId, record.sessionId, { kind: "relay", ...relay, lease: theirs.lease });
}

async function report(port: RoomPort, reply: Reply, m: ClientMessageOf<"session.report">): Promise<void> {
  const record = own(port, reply, m.sessionId);
  if (record === null) return;
  if (!port.store.markReported(m.sessionId)) {
    reply.refuse("invalid_state", "this session was already reported");
    return;
  }
  const outcome = m.outcome;
  const detail = outcome.result === "established" ? outcome.path : outcome.reason;
  const handshakeMs = outcome.result === "established" ? outcome.handshakeMs : null;
  port.store.count(`report.${outcome.result}.${detail}`);
  port.store.addReport({
    at: port.now(),
    sessionId: m.sessionId,
    role: record.role,
    result: outcome.result,
    detail,
    handshakeMs,
  });
  // Feeds the "handshake failure surge" rule; fire and forget, so the room never waits on the monitor.
  void reportEvents(port.env, [
    { kind: "session_report", at: port.now(), failed: outcome.result === "failed" },
  ]);
  // One line per report feeds the "handshake failure surge" alert (DESIGN.md: Monitoring).
  log("session_report", outcome.result, {
    sessionId: m.sessionId,
    deviceId: port.deviceId,
    role: record.role,
    result: outcome.result,
    detail,
    ...(handshakeMs === null ? {} : { handshakeMs }),
  });
}

async function presence(port: RoomPort, reply: Reply, m: ClientMessageOf<"presence.query">): Promise<void> {
  const standing = await standingOrClose(port);
  if (standing === null) return;
  const asked = [...new Set(m.devices)];
  // Devices the asker may not reach are never looked up, so their rooms are not even woken.
  const reachable = await reachableAmong(port.env.DB, port.deviceId, asked);
  const candidates = asked.filter((id) => reachable.has(id));
  const online = await Promise.all(candidates.map((id) => port.isOnline(id)));
  reply.send(
    msg({ v: 1, type: "presence", ...echo(m.id), online: candidates.filter((_, i) => online[i] === true) }),
  );
}

/** Delivers an event from the other side of a session. False when this device has no such session with `from`. */
export function receivePeerEvent(port: RoomPort, from: string, sessionId: string, event: PeerEvent): boolean {
  const record = port.store.session(sessionId);
  if (record === null || record.peerId !== from) return false;
  const ref = echo(record.requestRef);
  switch (event.kind) {
    case "accepted": {
      if (record.role !== "client") return false;
      if (
        !port.store.acceptSession(sessionId, "requested", port.now() + SIGNAL_LIMITS.sessionTtlSecs * 1000)
      ) {
        return false;
      }
      port.broadcast(
        msg({
          v: 1,
          type: "session.accepted",
          ...ref,
          sessionId,
          host: record.peerId,
          hostX25519PublicKey: record.peerX25519,
          candidates: [...event.candidates],
        }),
      );
      return true;
    }
    case "rejected":
      if (record.role !== "client" || record.state !== "requested") return false;
      port.store.deleteSession(sessionId);
      port.broadcast(msg({ v: 1, type: "session.rejected", ...ref, sessionId, reason: event.reason }));
      return true;
    case "cancelled":
    case "gone":
      port.store.deleteSession(sessionId);
      port.broadcast(
        msg({
          v: 1,
          type: "session.failed",
          ...ref,
          sessionId,
          reason: event.kind === "cancelled" ? "cancelled" : "peer_gone",
        }),
      );
      return true;
    case "candidates":
      port.broadcast(msg({ v: 1, type: "candidates", sessionId, from, candidates: [...event.candidates] }));
      return true;
    case "relay": {
      const { kind: _kind, ...relay } = event;
      port.broadcast(msg({ v: 1, type: "relay.assigned", sessionId, ...relay }));
      return true;
    }
    case "relay_unavailable":
      port.broadcast(
        msg({
          v: 1,
          type: "error",
          code: "relay_unavailable",
          message: "no relay is available right now; keep trying the direct path and ask again later",
          ...(record.requestRef === null ? {} : { ref: record.requestRef }),
        }),
      );
      return true;
    default:
      return assertNever(event);
  }
}

/**
 * Ends sessions that timed out: an unanswered request or offer fails with `timeout`; accepted ones just end. Runs
 * whether or not the device has sockets, so expired records never keep the room's alarm firing.
 */
export function expireSessions(port: Pick<RoomPort, "store" | "now" | "broadcast">): void {
  for (const record of port.store.takeExpiredSessions(port.now())) {
    if (record.state === "accepted") continue;
    port.store.count("session.timeout");
    port.broadcast(
      msg({
        v: 1,
        type: "session.failed",
        ...echo(record.requestRef),
        sessionId: record.sessionId,
        reason: "timeout",
      }),
    );
  }
}

/**
 * Drops this device's sessions (all, or only those not yet accepted) and tells each peer the device is gone:
 * used when its last socket closes and when it is disconnected from outside.
 */
export async function abandonSessions(port: RoomPort, which: "all" | "unaccepted"): Promise<void> {
  const dropped = port.store.sessions().filter((s) => which === "all" || s.state !== "accepted");
  for (const record of dropped) port.store.deleteSession(record.sessionId);
  await Promise.all(dropped.map((r) => port.tellPeer(r.peerId, r.sessionId, { kind: "gone" })));
}
