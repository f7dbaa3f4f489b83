import { Channel, decodeChannelPayload } from "../../protocol/channels/channel.ts";
import type { CryptoBackend, KeyPair, RandomSource } from "../../protocol/crypto/backend.ts";
import {
  type HandshakeFailure,
  InitiatorHandshake,
  type PeerHandshakeOptions,
  ResponderHandshake,
} from "../../protocol/transport/peer-handshake.ts";
import {
  DEFAULT_REKEY_LIMITS,
  type RekeyLimits,
  TransportError,
  type TransportSession,
} from "../../protocol/transport/transport-session.ts";
import { type DataFrame, decodePeerFrame, PeerFrameType } from "../../protocol/wire/peer-frames.ts";
import { directPath, type PeerPath, pathIs, RELAY_PATH } from "./paths.ts";
import { ResponderTable } from "./responder-table.ts";

/**
 * The peer link's handshake and session logic without sockets or timers (STYLE.md: thin adapters over pure state).
 * The adapter feeds it peer datagrams with where they came from, calls `tick(now)` often, and carries out `send`.
 *
 * - Client (Noise initiator): INIT to every path, retransmitted with doubling backoff until a RESP authenticates;
 *   FINAL retransmitted until the host's first DATA confirms it (the host sends a keepalive at once), and only then
 *   is the link established, so `send` never feeds a session the host does not have yet.
 * - Host (responder): one ResponderHandshake per distinct sender index, bounded in all and per source address
 *   (responder-table.ts); a spoofed INIT gets its own slot and never replaces the genuine one.
 * - Every protocol call is transactional: a forged or corrupt datagram is counted and dropped, state untouched.
 * - Rekey (client-driven, by age or by either direction's count): a new handshake while the old session still
 *   carries data; the host switches on FINAL, the client on the first DATA of the new session, and each keeps the
 *   previous session for receiving a while, so nothing in flight is lost.
 * - The active path is the one the last authenticated datagram arrived on (roaming, relay fallback).
 */
export interface LinkTiming {
  /** First handshake retransmission; doubles up to {@link handshakeMaxRetryMs}. */
  readonly handshakeRetryMs: number;
  readonly handshakeMaxRetryMs: number;
  /** A handshake not done in this time fails (initial) or starts over (rekey, recovery). */
  readonly handshakeTimeoutMs: number;
  /** With direct candidates, how long INITs go only to them before the relay is tried too. */
  readonly relayAfterMs: number;
  /** An empty control DATA after this much idle sending. */
  readonly keepaliveMs: number;
  /** Client: nothing authenticated for this long -> handshake again on every path. */
  readonly deadAfterMs: number;
  /** Host: at most this many handshakes in progress per session... */
  readonly maxResponders: number;
  /** ...and at most this many from one source address (see responder-table.ts). */
  readonly maxRespondersPerSource: number;
  /** How long a replaced session still opens datagrams in flight. */
  readonly previousGraceMs: number;
}

export const DEFAULT_LINK_TIMING: LinkTiming = Object.freeze({
  handshakeRetryMs: 100,
  handshakeMaxRetryMs: 1000,
  handshakeTimeoutMs: 10_000,
  relayAfterMs: 250,
  keepaliveMs: 1000,
  deadAfterMs: 5000,
  maxResponders: 8,
  maxRespondersPerSource: 2,
  previousGraceMs: 5000,
});

/** Why a link gave up; reported to the edge as the session's failure reason. */
export type LinkFailure = "timeout" | "remote-static-rejected" | "expired";

/** What an established link reports. */
export interface EstablishedInfo {
  readonly path: PeerPath;
  readonly handshakeMs: number;
  readonly remoteStaticKey: Uint8Array;
  readonly handshakeHash: Uint8Array;
}

export interface LinkCoreEvents {
  established(info: EstablishedInfo): void;
  data(channel: Channel, body: Uint8Array): void;
  pathChanged(path: PeerPath): void;
  failed(reason: LinkFailure): void;
}

export interface LinkCoreOptions {
  readonly role: "client" | "host";
  readonly backend: CryptoBackend;
  readonly random: RandomSource;
  readonly staticKeyPair: KeyPair;
  readonly sessionId: Uint8Array;
  readonly verifyRemoteStatic: (remoteStaticKey: Uint8Array) => boolean;
  readonly payload?: Uint8Array;
  readonly limits?: RekeyLimits;
  readonly timing?: LinkTiming;
  /** Sends a peer datagram on a path (the adapter wraps relay ones in FORWARD). */
  readonly send: (datagram: Uint8Array, path: PeerPath) => void;
  /** Client: the paths an INIT goes to on a fresh start (direct candidates, plus the relay once forwarding). */
  readonly initPaths: () => readonly PeerPath[];
  readonly events: LinkCoreEvents;
}

/** The empty control message: a keepalive (hoisted; sealing never writes to it). */
const KEEPALIVE = Uint8Array.of(Channel.Control);

interface Attempt {
  readonly handshake: InitiatorHandshake;
  readonly startedAt: number;
  /** Send INIT everywhere (start, recovery) or only on the active path (rekey). */
  readonly everywhere: boolean;
  nextAt: number;
  retryMs: number;
  /** Set once the RESP authenticated: the session waits for the host's first DATA. */
  pending: { readonly session: TransportSession; readonly final: Uint8Array; readonly path: PeerPath } | null;
}

/** See the module comment. */
export class LinkCore {
  readonly #o: LinkCoreOptions;
  readonly #t: LinkTiming;
  readonly #limits: RekeyLimits;
  #status: "handshaking" | "established" | "failed" | "closed" = "handshaking";
  #startedAt = 0;
  #current: TransportSession | null = null;
  #previous: TransportSession | null = null;
  #previousUntil = 0;
  #attempt: Attempt | null = null;
  readonly #responders: ResponderTable;
  #rejectedStatic = false;
  #active: PeerPath | null = null;
  #lastSentAt = 0;
  #lastReceivedAt = 0;
  #receivedOnCurrent = 0;
  /** Completed rekeys (session switches after the first). */
  rekeys = 0;
  readonly #drops = new Map<string, number>();

  constructor(options: LinkCoreOptions) {
    this.#o = options;
    this.#t = options.timing ?? DEFAULT_LINK_TIMING;
    this.#limits = options.limits ?? DEFAULT_REKEY_LIMITS;
    this.#responders = new ResponderTable(
      this.#t.maxResponders,
      this.#t.maxRespondersPerSource,
      () => new ResponderHandshake(this.#handshakeOptions()),
    );
  }

  get status(): "handshaking" | "established" | "failed" | "closed" {
    return this.#status;
  }

  get activePath(): PeerPath | null {
    return this.#active;
  }

  /** Dropped datagrams by reason (a metric label each); never holds payload or key material. */
  get drops(): ReadonlyMap<string, number> {
    return this.#drops;
  }

  /** Host handshakes given up to make room for newer INITs. */
  get responderEvictions(): number {
    return this.#responders.evictions;
  }

  /** Starts the clock; the client sends its first INIT. */
  start(now: number): void {
    this.#startedAt = now;
    if (this.#o.role === "client") this.#begin(now, true);
  }

  /** The relay started forwarding: a waiting client tries it at once instead of at the next retransmission. */
  relayReady(now: number): void {
    const attempt = this.#attempt;
    if (attempt === null || attempt.pending !== null || !attempt.everywhere) return;
    if (this.#relayHeldBack(attempt, this.#o.initPaths(), now)) return;
    this.#o.send(attempt.handshake.start(), RELAY_PATH);
  }

  close(): void {
    if (this.#status !== "failed") this.#status = "closed";
    this.#attempt = null;
    this.#responders.clear();
    this.#current = null;
    this.#previous = null;
  }

  /** Seals one plaintext (channel byte first) on the active path; false when not established or out of keys. */
  send(plaintext: Uint8Array, now: number): boolean {
    const session = this.#current;
    const path = this.#active;
    if (this.#status !== "established" || session === null || path === null) return false;
    let datagram: Uint8Array;
    try {
      datagram = session.seal(plaintext, now);
    } catch (error) {
      // Expired or out of counters: the next tick rekeys or reports the failure.
      if (error instanceof TransportError && error.code !== "too-large") return false;
      throw error;
    }
    this.#o.send(datagram, path);
    this.#lastSentAt = now;
    return true;
  }

  /**
   * Takes one peer datagram. `address` is null for one that came through the relay; the buffer may be reused by
   * the caller afterwards (nothing keeps a view of it past this call except copies the handshake makes).
   */
  receive(datagram: Uint8Array, address: string | null, port: number, now: number): void {
    if (this.#status === "failed" || this.#status === "closed") return;
    const decoded = decodePeerFrame(datagram);
    if (!decoded.ok) {
      this.#drop(decoded.error);
      return;
    }
    const frame = decoded.value;
    switch (frame.type) {
      case PeerFrameType.Data: {
        this.#data(frame, address, port, now);
        return;
      }
      case PeerFrameType.HandshakeInit: {
        if (this.#o.role !== "host") {
          this.#drop("unexpected");
          return;
        }
        const reply = this.#responders.handleInit(
          frame,
          address === null ? "relay" : `${address}:${port}`,
          now,
        );
        if (typeof reply === "string") {
          this.#handshakeDrop(reply);
          return;
        }
        // Unauthenticated: answered where it came from, but it never moves the active path.
        this.#o.send(reply, address === null ? RELAY_PATH : directPath(address, port));
        return;
      }
      case PeerFrameType.HandshakeResponse: {
        const attempt = this.#attempt;
        if (this.#o.role !== "client" || attempt === null) {
          this.#drop("unexpected");
          return;
        }
        const result = attempt.handshake.handleResponse(frame, now);
        if (typeof result === "string") {
          this.#handshakeDrop(result);
          return;
        }
        const path = this.#pathFor(address, port);
        this.#o.send(result.final, path);
        if (result.session !== undefined && attempt.pending === null) {
          attempt.pending = { session: result.session, final: result.final, path };
          attempt.retryMs = this.#t.handshakeRetryMs;
          attempt.nextAt = now + attempt.retryMs;
        }
        return;
      }
      case PeerFrameType.HandshakeFinal: {
        if (this.#o.role !== "host") {
          this.#drop("unexpected");
          return;
        }
        const slot = this.#responders.get(frame.senderIndex);
        if (slot === undefined) {
          this.#drop("unexpected");
          return;
        }
        const result = slot.handshake.handleFinal(frame, now);
        if (typeof result === "string") {
          this.#handshakeDrop(result);
          return;
        }
        this.#responders.clear();
        this.#setActive(address, port);
        this.#install(result.session, now - slot.createdAt, now);
        this.#keepalive(now);
        return;
      }
      default:
        assertNever(frame);
    }
  }

  /** Retransmissions, keepalives, rekey and recovery; call every few tens of milliseconds. */
  tick(now: number): void {
    if (this.#status === "failed" || this.#status === "closed") return;
    const attempt = this.#attempt;
    if (attempt !== null && now - attempt.startedAt >= this.#t.handshakeTimeoutMs) {
      // A rekey or recovery that timed out starts over while the old session lasts; a first one fails.
      if (this.#current === null) {
        this.#fail(this.#rejectedStatic ? "remote-static-rejected" : "timeout");
        return;
      }
      this.#begin(now, true);
    } else if (attempt !== null && now >= attempt.nextAt) {
      attempt.retryMs = Math.min(attempt.retryMs * 2, this.#t.handshakeMaxRetryMs);
      attempt.nextAt = now + attempt.retryMs;
      if (attempt.pending !== null) this.#o.send(attempt.pending.final, attempt.pending.path);
      else this.#sendInit(attempt, now);
    }
    if (
      this.#o.role === "host" &&
      this.#current === null &&
      now - this.#startedAt >= this.#t.handshakeTimeoutMs
    ) {
      this.#fail(this.#rejectedStatic ? "remote-static-rejected" : "timeout");
      return;
    }
    const session = this.#current;
    if (session === null) return;
    if (session.isExpired(now)) {
      this.#fail("expired");
      return;
    }
    if (this.#previous !== null && now >= this.#previousUntil) this.#previous = null;
    if (this.#o.role === "client" && this.#attempt === null) {
      if (now - this.#lastReceivedAt >= this.#t.deadAfterMs) this.#begin(now, true);
      else if (session.needsRekey(now) || this.#receivedOnCurrent >= this.#limits.rekeyAfterMessages)
        this.#begin(now, false);
    }
    if (now - this.#lastSentAt >= this.#t.keepaliveMs) this.#keepalive(now);
  }

  #handshakeOptions(): PeerHandshakeOptions {
    const o = this.#o;
    return {
      backend: o.backend,
      random: o.random,
      staticKeyPair: o.staticKeyPair,
      sessionId: o.sessionId,
      localIndex: this.#newIndex(),
      verifyRemoteStatic: o.verifyRemoteStatic,
      limits: this.#limits,
      ...(o.payload !== undefined && { payload: o.payload }),
    };
  }

  #newIndex(): number {
    for (;;) {
      const bytes = this.#o.random(4);
      const index =
        ((bytes[0] ?? 0) | ((bytes[1] ?? 0) << 8) | ((bytes[2] ?? 0) << 16) | ((bytes[3] ?? 0) << 24)) >>> 0;
      if (index !== this.#current?.localIndex && index !== this.#previous?.localIndex) return index;
    }
  }

  #begin(now: number, everywhere: boolean): void {
    const attempt: Attempt = {
      handshake: new InitiatorHandshake(this.#handshakeOptions()),
      startedAt: now,
      everywhere: everywhere || this.#active === null,
      nextAt: now + this.#t.handshakeRetryMs,
      retryMs: this.#t.handshakeRetryMs,
      pending: null,
    };
    this.#attempt = attempt;
    this.#sendInit(attempt, now);
  }

  #sendInit(attempt: Attempt, now: number): void {
    const init = attempt.handshake.start();
    if (!attempt.everywhere && this.#active !== null) {
      this.#o.send(init, this.#active);
      return;
    }
    const paths = this.#o.initPaths();
    const holdRelay = this.#relayHeldBack(attempt, paths, now);
    for (const path of paths) if (!(holdRelay && path.kind === "relay")) this.#o.send(init, path);
  }

  /** Direct first (DESIGN.md): with direct candidates, the relay gets INITs only after `relayAfterMs`. */
  #relayHeldBack(attempt: Attempt, paths: readonly PeerPath[], now: number): boolean {
    return now - attempt.startedAt < this.#t.relayAfterMs && paths.some((path) => path.kind === "direct");
  }

  #data(frame: DataFrame, address: string | null, port: number, now: number): void {
    const pending = this.#attempt?.pending ?? null;
    const index = frame.receiverIndex;
    const session =
      this.#current?.localIndex === index
        ? this.#current
        : pending?.session.localIndex === index
          ? pending.session
          : this.#previous?.localIndex === index
            ? this.#previous
            : null;
    if (session === null) {
      this.#drop("wrong-index");
      return;
    }
    const plaintext = session.open(frame, now);
    if (typeof plaintext === "string") {
      this.#drop(plaintext);
      return;
    }
    this.#setActive(address, port);
    if (pending !== null && session === pending.session) {
      // The host's first DATA under the new keys confirms it has them: switch sending over (client side).
      const attempt = this.#attempt;
      this.#attempt = null;
      this.#install(session, attempt === null ? 0 : now - attempt.startedAt, now);
    }
    this.#lastReceivedAt = now;
    if (session === this.#current) this.#receivedOnCurrent++;
    const decoded = decodeChannelPayload(plaintext);
    if (!decoded.ok) {
      this.#drop(`channel-${decoded.error}`);
      return;
    }
    const { channel, body } = decoded.value;
    if (channel === Channel.Control && body.length === 0) return; // keepalive
    this.#o.events.data(channel, body);
  }

  #install(session: TransportSession, handshakeMs: number, now: number): void {
    const first = this.#current === null;
    if (!first) {
      this.#previous = this.#current;
      this.#previousUntil = now + this.#t.previousGraceMs;
      this.rekeys++;
    }
    this.#current = session;
    this.#receivedOnCurrent = 0;
    this.#lastReceivedAt = now;
    if (!first) return;
    this.#status = "established";
    // Both callers set the active path first: where the confirming DATA (client) or the FINAL (host) came from.
    const path = this.#active ?? RELAY_PATH;
    this.#o.events.established({
      path,
      handshakeMs,
      remoteStaticKey: session.remoteStaticKey,
      handshakeHash: session.handshakeHash,
    });
  }

  #pathFor(address: string | null, port: number): PeerPath {
    if (pathIs(this.#active, address, port) && this.#active !== null) return this.#active;
    return address === null ? RELAY_PATH : directPath(address, port);
  }

  #setActive(address: string | null, port: number): void {
    if (pathIs(this.#active, address, port)) return;
    const first = this.#active === null;
    this.#active = address === null ? RELAY_PATH : directPath(address, port);
    if (!first && this.#status === "established") this.#o.events.pathChanged(this.#active);
  }

  #keepalive(now: number): void {
    const session = this.#current;
    const path = this.#active;
    if (session === null || path === null || session.isExpired(now)) return;
    try {
      this.#o.send(session.seal(KEEPALIVE, now), path);
      this.#lastSentAt = now;
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
    }
  }

  #handshakeDrop(reason: HandshakeFailure): void {
    if (reason === "remote-static-rejected") this.#rejectedStatic = true;
    this.#drop(reason);
  }

  #drop(reason: string): void {
    this.countDrop(reason);
  }

  /** Counts a datagram dropped by the adapter (before it reached the core) under `reason`. */
  countDrop(reason: string): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }

  #fail(reason: LinkFailure): void {
    this.close();
    this.#status = "failed";
    this.#o.events.failed(reason);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected frame ${JSON.stringify(value)}`);
}
