import { LEASE_CLOCK_SKEW_SECS } from "../protocol/relay/lease.ts";
import {
  encodeChallenge,
  encodeLeaseAck,
  encodeLeaseReject,
  type HelloFrame,
  type LeasePresentFrame,
  MAX_RELAY_DATAGRAM,
  type ObservedAddress,
  RejectReason as Reject,
  type RejectReason,
  Role,
} from "../protocol/wire/relay-frames.ts";
import { observedAddress } from "./address.ts";
import type { RelayLimits } from "./config.ts";
import type { CookieJar } from "./cookie.ts";
import { decideBinding } from "./lease-binding.ts";
import type { AcceptedLease, LeaseVerifier } from "./lease-verifier.ts";
import type { Logger } from "./log.ts";
import { dropForReject, type RelayStats } from "./relay-stats.ts";
import { PeerBinding, type Session, type SessionTable } from "./session-table.ts";
import { TokenBucket } from "./token-bucket.ts";

/**
 * HELLO -> CHALLENGE and LEASE_PRESENT -> LEASE_ACK | LEASE_REJECT (PROTOCOL.md 0x10-0x14). Pure of sockets: each
 * call returns the datagrams to send, and the UDP loop sends them to the source that asked (which the cookie
 * proved can receive) or, for `notify`, to the other bound peer. Every reply is no larger than its request.
 */
export interface HandshakeDeps {
  readonly cookies: CookieJar;
  readonly verifier: LeaseVerifier;
  readonly sessions: SessionTable;
  readonly stats: RelayStats;
  readonly limits: RelayLimits;
  readonly log: Logger;
  /** False while the edge says this relay is not active, or while it sheds load: no new sessions then. */
  readonly acceptingNewSessions: () => boolean;
}

/** What to send after a LEASE_PRESENT. */
export interface PresentResult {
  readonly reply: Uint8Array;
  /** An updated LEASE_ACK (peer_bound = 1) for the other peer, when this binding completed the pair. */
  readonly notify: { readonly frame: Uint8Array; readonly address: string; readonly port: number } | null;
}

const UNKNOWN_ADDRESS: ObservedAddress = { family: 4, address: new Uint8Array(4), port: 0 };

/** The handshake half of the relay: cookies, lease verification, binding. */
export class Handshakes {
  constructor(private readonly deps: HandshakeDeps) {}

  /** A CHALLENGE carrying a cookie for this source (68 bytes, for a 96-byte HELLO). */
  hello(frame: HelloFrame, address: string, port: number, nowMs: number): Uint8Array {
    const cookie = this.deps.cookies.mint(address, port, frame.sessionId, nowMs);
    return encodeChallenge(frame.sessionId, frame.clientNonce, cookie);
  }

  /** A LEASE_REJECT, counted under the reject reason and the matching drop reason. */
  reject(sessionId: Uint8Array, reason: RejectReason): Uint8Array {
    const stats = this.deps.stats;
    stats.reject(reason);
    stats.drop(dropForReject(reason));
    return encodeLeaseReject(sessionId, reason);
  }

  present(
    frame: LeasePresentFrame,
    address: string,
    port: number,
    family: string,
    nowMs: number,
  ): PresentResult {
    const { cookies, sessions, verifier } = this.deps;
    const sid = frame.sessionId;
    if (!cookies.verify(frame.cookie, address, port, sid, nowMs)) return this.refuse(sid, Reject.BadCookie);
    const existing = sessions.findId(sid);
    // Capacity before signatures: a full or draining relay spends nothing on leases it cannot honour.
    if (existing === undefined) {
      if (!this.deps.acceptingNewSessions()) return this.refuse(sid, Reject.Overloaded);
      if (sessions.full) return this.refuse(sid, Reject.SessionFull);
    }
    const verdict = verifier.verify(frame, Math.floor(nowMs / 1000));
    if (!verdict.ok) return this.refuse(sid, verdict.reason);
    const session = existing ?? sessions.create(sid, nowMs);
    const host = frame.role === Role.Host;
    const current = host ? session.host : session.client;
    const other = host ? session.client : session.host;
    const otherLive = other !== null && nowMs < other.expiresAtMs;
    // One address never holds both roles: its FORWARDs would have no single destination.
    if (otherLive && other.is(address, port)) return this.refuse(sid, Reject.RoleMismatch);

    const decision = decideBinding(current, verdict.lease, address, port, nowMs);
    let binding: PeerBinding;
    switch (decision.kind) {
      case "reject":
        return this.refuse(sid, decision.reason);
      case "keep":
        if (current === null) return this.refuse(sid, Reject.InvalidLease);
        binding = current;
        break;
      case "renew":
        if (current === null) return this.refuse(sid, Reject.InvalidLease);
        this.renew(current, verdict.lease);
        binding = current;
        break;
      case "move":
      case "bind":
        if (decision.kind === "move") this.deps.stats.unbinds.replaced++;
        binding = this.newBinding(address, port, family, verdict.lease, nowMs);
        if (host) session.host = binding;
        else session.client = binding;
        break;
      default:
        return assertNever(decision);
    }
    session.lastActivityMs = nowMs;
    this.deps.stats.leasesAccepted++;
    this.deps.log.log("info", "lease_present", "accepted", {
      // The signaling session id (base64url of the same 16 bytes), so the line joins the edge's session lines.
      sessionId: Buffer.from(sid).toString("base64url"),
      peerAddr: address,
      action: decision.kind,
      role: host ? "host" : "client",
      peerBound: otherLive,
      sessions: sessions.size,
    });
    const reply = this.ack(session, frame.role, binding, otherLive, nowMs);
    const completes = otherLive && (decision.kind === "bind" || decision.kind === "move");
    const notify =
      completes && other !== null
        ? {
            frame: this.ack(session, host ? Role.Client : Role.Host, other, true, nowMs),
            address: other.address,
            port: other.port,
          }
        : null;
    return { reply, notify };
  }

  private refuse(sessionId: Uint8Array, reason: RejectReason): PresentResult {
    return { reply: this.reject(sessionId, reason), notify: null };
  }

  private ack(
    session: Session,
    role: Role,
    binding: PeerBinding,
    peerBound: boolean,
    nowMs: number,
  ): Uint8Array {
    const expiresIn = Math.max(0, Math.floor((binding.expiresAtMs - nowMs) / 1000));
    const observed = observedAddress(binding.address, binding.port) ?? UNKNOWN_ADDRESS;
    return encodeLeaseAck(session.id, role, peerBound, expiresIn, observed);
  }

  private bandwidth(lease: AcceptedLease): { ratePerMs: number; burst: number } {
    const { sessionMaxKbps, sessionMaxBurstKb } = this.deps.limits;
    // kbps -> bytes per ms is kbps * 1000 / 8 / 1000. The burst always fits one full datagram.
    const ratePerMs = Math.min(lease.kbps, sessionMaxKbps) / 8;
    const burst = Math.max(MAX_RELAY_DATAGRAM, Math.min(lease.burstKb, sessionMaxBurstKb) * 1000);
    return { ratePerMs, burst };
  }

  private newBinding(
    address: string,
    port: number,
    family: string,
    lease: AcceptedLease,
    nowMs: number,
  ): PeerBinding {
    const { ratePerMs, burst } = this.bandwidth(lease);
    const bucket = new TokenBucket(ratePerMs, burst, nowMs);
    return new PeerBinding(address, port, family, lease, expiryMs(lease), bucket);
  }

  private renew(binding: PeerBinding, lease: AcceptedLease): void {
    const { ratePerMs, burst } = this.bandwidth(lease);
    binding.lease = lease;
    binding.expiresAtMs = expiryMs(lease);
    binding.bandwidth.reset(ratePerMs, burst);
  }
}

/** A binding lasts as long as the relay would still accept its lease: `exp` plus the skew leaseTimeValid allows. */
function expiryMs(lease: AcceptedLease): number {
  return (lease.expSecs + LEASE_CLOCK_SKEW_SECS) * 1000;
}

function assertNever(value: never): never {
  throw new Error(`unexpected binding decision ${JSON.stringify(value)}`);
}
