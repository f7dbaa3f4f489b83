import { SESSION_ID_LEN } from "../protocol/wire/version.ts";
import type { AcceptedLease } from "./lease-verifier.ts";
import type { TokenBucket } from "./token-bucket.ts";

/**
 * The routing table: session id -> the two bound peer addresses. Built for the forwarding path: a session id is
 * looked up by its four little-endian 32-bit words read straight from the datagram (no string, no copy), the first
 * word keys a Map and the other three are compared; session ids are random (the edge picks them, and a session
 * exists only after a lease for it verified), so chains stay one long.
 */

/** One peer bound to a role of a session: where it is, the lease that put it there, and its bandwidth budget. */
export class PeerBinding {
  constructor(
    /** Source address exactly as the socket reports it (compared per packet, never parsed). */
    readonly address: string,
    readonly port: number,
    /** "IPv4" | "IPv6", as the socket reports it. */
    readonly family: string,
    public lease: AcceptedLease,
    /** Wall-clock ms after which the binding is gone (lease `exp` plus the allowed skew). */
    public expiresAtMs: number,
    /** Bytes this peer may send: the lease's `bw`, capped by the relay's per-session ceiling. */
    readonly bandwidth: TokenBucket,
  ) {}

  /** True when a datagram from `address`:`port` comes from this peer. */
  is(address: string, port: number): boolean {
    return this.port === port && this.address === address;
  }
}

/** One session: its id (also as four words for lookups) and the bound peer of each role. */
export class Session {
  /** Copy of the 16-byte session id (never a view into a datagram buffer). */
  readonly id: Uint8Array;
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  host: PeerBinding | null = null;
  client: PeerBinding | null = null;
  lastActivityMs: number;
  /** Next session whose first id word is the same (collision chain). */
  next: Session | null = null;

  constructor(sessionId: Uint8Array, nowMs: number) {
    this.id = Uint8Array.from(sessionId);
    const view = new DataView(this.id.buffer);
    this.w0 = view.getInt32(0, true);
    this.w1 = view.getInt32(4, true);
    this.w2 = view.getInt32(8, true);
    this.w3 = view.getInt32(12, true);
    this.lastActivityMs = nowMs;
  }
}

/** Where the session id starts in a relay datagram. */
const ID_AT = 4;

/** Sessions by id, bounded by `maxSessions`. */
export class SessionTable {
  private readonly buckets = new Map<number, Session>();
  private count = 0;

  constructor(readonly maxSessions: number) {}

  get size(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.maxSessions;
  }

  /** The session a datagram names (hot path: reads the id words in place). */
  find(datagram: Buffer): Session | undefined {
    let session: Session | null | undefined = this.buckets.get(datagram.readInt32LE(ID_AT));
    if (session === undefined) return undefined;
    const w1 = datagram.readInt32LE(ID_AT + 4);
    const w2 = datagram.readInt32LE(ID_AT + 8);
    const w3 = datagram.readInt32LE(ID_AT + 12);
    while (session !== null) {
      if (session.w1 === w1 && session.w2 === w2 && session.w3 === w3) return session;
      session = session.next;
    }
    return undefined;
  }

  /** The session for a decoded session id, if any. */
  findId(sessionId: Uint8Array): Session | undefined {
    if (sessionId.length !== SESSION_ID_LEN) return undefined;
    const view = new DataView(sessionId.buffer, sessionId.byteOffset, SESSION_ID_LEN);
    let session: Session | null | undefined = this.buckets.get(view.getInt32(0, true));
    while (session !== null && session !== undefined) {
      if (
        session.w1 === view.getInt32(4, true) &&
        session.w2 === view.getInt32(8, true) &&
        session.w3 === view.getInt32(12, true)
      )
        return session;
      session = session.next;
    }
    return undefined;
  }

  /** Adds a session for an id not in the table. The caller checks {@link full} first. */
  create(sessionId: Uint8Array, nowMs: number): Session {
    const session = new Session(sessionId, nowMs);
    session.next = this.buckets.get(session.w0) ?? null;
    this.buckets.set(session.w0, session);
    this.count++;
    return session;
  }

  delete(session: Session): void {
    const head = this.buckets.get(session.w0);
    if (head === undefined) return;
    if (head === session) {
      if (session.next === null) this.buckets.delete(session.w0);
      else this.buckets.set(session.w0, session.next);
      this.count--;
      return;
    }
    for (let at = head; at.next !== null; at = at.next) {
      if (at.next === session) {
        at.next = session.next;
        this.count--;
        return;
      }
    }
  }

  /** Every session; safe against {@link delete} of the current one while iterating. */
  *[Symbol.iterator](): IterableIterator<Session> {
    for (const head of [...this.buckets.values()]) {
      for (let session: Session | null = head; session !== null; ) {
        const next: Session | null = session.next;
        yield session;
        session = next;
      }
    }
  }
}
