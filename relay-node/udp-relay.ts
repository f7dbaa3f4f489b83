import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { AddressInfo } from "node:net";
import {
  decodeRelayFrame,
  encodeLeaseReject,
  MAX_RELAY_DATAGRAM,
  PING_LEN,
  REJECT_LEN,
  RELAY_HEADER_LEN,
  RejectReason,
  RelayFrameType,
} from "../protocol/wire/relay-frames.ts";
import { PROTOCOL_VERSION } from "../protocol/wire/version.ts";
import type { AddressBlocks } from "./address-blocks.ts";
import type { Clock } from "./clock.ts";
import type { RelayLimits } from "./config.ts";
import type { Handshakes } from "./handshakes.ts";
import type { IpEntry, IpTable } from "./ip-table.ts";
import type { Logger } from "./log.ts";
import { DROP, type RelayStats } from "./relay-stats.ts";
import type { PeerBinding, Session, SessionTable } from "./session-table.ts";
import { perSecond, type TokenBucket } from "./token-bucket.ts";

/**
 * The UDP loop (DESIGN.md: the relay is a blind forwarder). A FORWARD from a bound address goes, unchanged, to the
 * other bound peer of its session and nowhere else; the destination always comes from the table, never from the
 * packet, and the payload is never read. Everything else is dropped and counted by reason.
 *
 * The FORWARD path allocates nothing of its own: the received Buffer is sent as is (the header is the same both
 * ways), the session is found from the id words read in place, counters are plain numbers, the clock is read
 * once per datagram, and the send-queue check runs every 64 sends.
 */
export interface UdpRelayDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: RelayStats;
  readonly limits: RelayLimits;
  readonly sessions: SessionTable;
  readonly ips: IpTable;
  readonly blocks: AddressBlocks;
  readonly handshakes: Handshakes;
}

/** Why a binding was removed (a metric label). */
export type UnbindCause = "expired" | "idle" | "revoked" | "blocked";

const MALFORMED = DROP.malformed;
const TOO_LARGE = DROP.too_large;
const NOT_BOUND = DROP.not_bound;
const UNKNOWN_SESSION = DROP.unknown_session;
/** Datagrams libuv may hold for sending before FORWARDs are shed (a bounded queue). */
const MAX_SEND_QUEUE = 4096;
/** Unsolicited answers (LEASE_REJECT to unknown traffic): at most one a second per IP, this many a second overall. */
const REPLY_INTERVAL_MS = 1000;
const REPLIES_PER_SEC = 200;
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** The relay's UDP socket and everything done per datagram. */
export class UdpRelay {
  private socket: Socket | null = null;
  private readonly handshakeBudget: TokenBucket;
  private readonly replyBudget: TokenBucket;
  private sendCount = 0;
  private congested = false;
  /** Set by the load monitor: new handshakes are refused with OVERLOADED, existing sessions keep forwarding. */
  shedding = false;

  constructor(private readonly deps: UdpRelayDeps) {
    const now = deps.clock.nowMs();
    this.handshakeBudget = perSecond(deps.limits.handshakesPerSec, deps.limits.handshakesPerSec, now);
    this.replyBudget = perSecond(REPLIES_PER_SEC, REPLIES_PER_SEC, now);
  }

  /** Binds the socket. Resolves with the bound address (port 0 picks one). */
  listen(host: string, port: number): Promise<AddressInfo> {
    const socket = createSocket({
      type: host.includes(":") ? "udp6" : "udp4",
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
    });
    this.socket = socket;
    socket.on("message", this.onMessage);
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        // A send error (an ICMP-refused destination, a full buffer) is the network's business, not a crash.
        socket.on("error", (error: NodeJS.ErrnoException) =>
          this.deps.log.log("warn", "udp_socket", "error", { code: error.code ?? "unknown" }),
        );
        resolve(socket.address());
      });
    });
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    if (socket === null) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  private readonly onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const stats = this.deps.stats;
    const length = msg.length;
    if (length > MAX_RELAY_DATAGRAM) {
      stats.drop(TOO_LARGE);
      return;
    }
    const now = this.deps.clock.nowMs();
    const ip = this.deps.ips.get(rinfo.address, now);
    const blocks = this.deps.blocks;
    if (ip.blockGeneration !== blocks.generation) {
      ip.blocked = blocks.has(rinfo.address, rinfo.family);
      ip.blockGeneration = blocks.generation;
    }
    if (ip.blocked) {
      stats.drop(DROP.address_blocked);
      if (msg[1] === RelayFrameType.Hello) this.notice(msg, rinfo, ip, now, RejectReason.AddressBlocked);
      return;
    }
    if (!ip.packets.take(1, now)) {
      stats.drop(DROP.rate_limited_ip);
      return;
    }
    if (length < RELAY_HEADER_LEN || msg[2] !== 0 || msg[3] !== 0) {
      stats.drop(MALFORMED);
      return;
    }
    const type = msg[1];
    if (msg[0] !== PROTOCOL_VERSION) {
      stats.drop(DROP.unsupported_version);
      if (type === RelayFrameType.Hello) this.notice(msg, rinfo, ip, now, RejectReason.UnsupportedVersion);
      return;
    }
    if (type === RelayFrameType.Forward) this.forward(msg, rinfo, ip, now);
    else if (type === RelayFrameType.Ping) this.ping(msg, rinfo, ip, now);
    else if (type === RelayFrameType.Hello || type === RelayFrameType.LeasePresent)
      this.control(msg, rinfo, ip, now);
    else stats.drop(MALFORMED);
  };

  private forward(msg: Buffer, rinfo: RemoteInfo, ip: IpEntry, now: number): void {
    const stats = this.deps.stats;
    if (msg.length === RELAY_HEADER_LEN) {
      stats.drop(MALFORMED);
      return;
    }
    const session = this.deps.sessions.find(msg);
    if (session === undefined) {
      stats.drop(UNKNOWN_SESSION);
      this.notice(msg, rinfo, ip, now, RejectReason.UnknownSession);
      return;
    }
    const host = session.host;
    const client = session.client;
    let to: PeerBinding | null;
    let from: PeerBinding;
    if (host?.is(rinfo.address, rinfo.port)) {
      from = host;
      to = client;
    } else if (client?.is(rinfo.address, rinfo.port)) {
      from = client;
      to = host;
    } else {
      stats.drop(NOT_BOUND);
      this.notice(msg, rinfo, ip, now, RejectReason.UnknownSession);
      return;
    }
    if (now >= from.expiresAtMs) {
      this.unbind(session, from, "expired");
      stats.drop(NOT_BOUND);
      this.notice(msg, rinfo, ip, now, RejectReason.UnknownSession);
      return;
    }
    if (to === null || now >= to.expiresAtMs) {
      stats.drop(NOT_BOUND);
      return;
    }
    if (this.congested) {
      stats.drop(DROP.overloaded);
      return;
    }
    if (!from.bandwidth.take(msg.length, now)) {
      stats.drop(DROP.rate_limited_session);
      return;
    }
    session.lastActivityMs = now;
    const socket = this.socket;
    if (socket === null) return;
    socket.send(msg, to.port, to.address);
    stats.forwardedPackets++;
    stats.forwardedBytes += msg.length;
    if ((++this.sendCount & 63) === 0) this.congested = socket.getSendQueueCount() > MAX_SEND_QUEUE;
  }

  /** PING from a bound peer -> PONG: the same datagram with its type byte changed, back to the same address. */
  private ping(msg: Buffer, rinfo: RemoteInfo, ip: IpEntry, now: number): void {
    const stats = this.deps.stats;
    if (msg.length !== PING_LEN) {
      stats.drop(MALFORMED);
      return;
    }
    const session = this.deps.sessions.find(msg);
    const binding =
      session === undefined
        ? null
        : session.host?.is(rinfo.address, rinfo.port) === true
          ? session.host
          : session.client?.is(rinfo.address, rinfo.port) === true
            ? session.client
            : null;
    if (session === undefined || binding === null || now >= binding.expiresAtMs) {
      stats.drop(session === undefined ? UNKNOWN_SESSION : NOT_BOUND);
      this.notice(msg, rinfo, ip, now, RejectReason.UnknownSession);
      return;
    }
    session.lastActivityMs = now;
    msg[1] = RelayFrameType.Pong;
    this.socket?.send(msg, rinfo.port, rinfo.address);
  }

  /** HELLO and LEASE_PRESENT: the costly frames, behind a per-IP and a global budget. */
  private control(msg: Buffer, rinfo: RemoteInfo, ip: IpEntry, now: number): void {
    const stats = this.deps.stats;
    if (!ip.handshakes.take(1, now)) {
      stats.drop(DROP.rate_limited_ip);
      this.notice(msg, rinfo, ip, now, RejectReason.RateLimited);
      return;
    }
    if (this.shedding || !this.handshakeBudget.take(1, now)) {
      stats.drop(DROP.overloaded);
      this.notice(msg, rinfo, ip, now, RejectReason.Overloaded);
      return;
    }
    const decoded = decodeRelayFrame(msg);
    if (!decoded.ok) {
      stats.drop(MALFORMED);
      return;
    }
    const frame = decoded.value;
    if (frame.type === RelayFrameType.Hello) {
      this.send(this.deps.handshakes.hello(frame, rinfo.address, rinfo.port, now), rinfo.port, rinfo.address);
    } else if (frame.type === RelayFrameType.LeasePresent) {
      const result = this.deps.handshakes.present(frame, rinfo.address, rinfo.port, rinfo.family, now);
      this.send(result.reply, rinfo.port, rinfo.address);
      if (result.notify !== null) this.send(result.notify.frame, result.notify.port, result.notify.address);
    }
  }

  /**
   * An unasked LEASE_REJECT (unknown session, rate limited, overloaded…): only when it is no larger than what came
   * in (no amplification), at most once a second per IP and {@link REPLIES_PER_SEC} overall.
   */
  private notice(msg: Buffer, rinfo: RemoteInfo, ip: IpEntry, now: number, reason: RejectReason): void {
    if (msg.length < REJECT_LEN || now - ip.lastReplyMs < REPLY_INTERVAL_MS) return;
    if (!this.replyBudget.take(1, now)) return;
    ip.lastReplyMs = now;
    const stats = this.deps.stats;
    stats.reject(reason);
    this.send(encodeLeaseReject(msg.subarray(4, RELAY_HEADER_LEN), reason), rinfo.port, rinfo.address);
  }

  private send(frame: Uint8Array, port: number, address: string): void {
    this.socket?.send(frame, port, address);
  }

  private unbind(session: Session, binding: PeerBinding, cause: UnbindCause | "idle"): void {
    if (session.host === binding) session.host = null;
    if (session.client === binding) session.client = null;
    this.deps.stats.unbinds[cause]++;
    if (session.host === null && session.client === null) this.deps.sessions.delete(session);
  }

  /** Removes every binding `doomed` selects (revoked lease keys, newly blocked ranges); returns how many. */
  unbindWhere(doomed: (binding: PeerBinding) => boolean, cause: UnbindCause): number {
    let removed = 0;
    for (const session of this.deps.sessions) {
      for (const binding of [session.host, session.client]) {
        if (binding !== null && doomed(binding)) {
          this.unbind(session, binding, cause);
          removed++;
        }
      }
    }
    return removed;
  }

  /** Periodic upkeep: expired leases unbind, idle sessions go, idle IP entries go. */
  sweep(now: number): void {
    const idleMs = this.deps.limits.sessionIdleSecs * 1000;
    this.unbindWhere((binding) => now >= binding.expiresAtMs, "expired");
    for (const session of this.deps.sessions) {
      if (now - session.lastActivityMs <= idleMs) continue;
      for (const binding of [session.host, session.client])
        if (binding !== null) this.unbind(session, binding, "idle");
      this.deps.sessions.delete(session);
    }
    this.deps.ips.sweep(now);
  }
}
