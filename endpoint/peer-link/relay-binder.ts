import { constantTimeEqual } from "../../protocol/bytes.ts";
import {
  CLIENT_NONCE_LEN,
  encodeHello,
  encodeLeasePresent,
  encodePing,
  leaseProofMessage,
  type ObservedAddress,
  RejectReason,
  type RelayFrame,
  RelayFrameType,
  type Role,
} from "../../protocol/wire/relay-frames.ts";

/**
 * The endpoint side of the relay handshake (PROTOCOL.md "Relay semantics") as a pure state machine: no socket, no
 * timers, no clock of its own. The adapter feeds it decoded relay frames and `tick(now)`, and it emits datagrams
 * through `send`. HELLO -> CHALLENGE -> LEASE_PRESENT -> LEASE_ACK, then PING while bound.
 *
 * Recovery without user action: an UNKNOWN_SESSION reject (the relay restarted, or forgot us) or PONGs that stop
 * coming start the exchange again from HELLO, because a restarted relay has a new cookie secret.
 */
export type RelayBinderState =
  | { readonly kind: "hello"; readonly nonce: Uint8Array }
  | { readonly kind: "present"; readonly frame: Uint8Array }
  | { readonly kind: "bound"; readonly peerBound: boolean }
  | { readonly kind: "failed"; readonly reason: RelayFailure };

/** Why the relay refused us for good (until a new assignment): reject reasons the endpoint cannot fix by retrying. */
export type RelayFailure =
  | "invalid-lease"
  | "expired"
  | "wrong-relay"
  | "wrong-session"
  | "revoked-key"
  | "session-full"
  | "address-blocked"
  | "bad-proof"
  | "unsupported-version"
  | "role-mismatch";

const FATAL: ReadonlyMap<number, RelayFailure> = new Map<number, RelayFailure>([
  [RejectReason.InvalidLease, "invalid-lease"],
  [RejectReason.Expired, "expired"],
  [RejectReason.WrongRelay, "wrong-relay"],
  [RejectReason.WrongSession, "wrong-session"],
  [RejectReason.RevokedKey, "revoked-key"],
  [RejectReason.SessionFull, "session-full"],
  [RejectReason.AddressBlocked, "address-blocked"],
  [RejectReason.BadProof, "bad-proof"],
  [RejectReason.UnsupportedVersion, "unsupported-version"],
  [RejectReason.RoleMismatch, "role-mismatch"],
]);

/** Timing of the relay exchange, in milliseconds of the caller's clock. */
export interface RelayTiming {
  /** First retransmission of HELLO / LEASE_PRESENT; doubles up to {@link maxRetryMs}. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
  /** PING interval while bound (keeps NAT bindings open). */
  readonly pingMs: number;
  /** No PONG for this long while bound: present the lease again. */
  readonly pongTimeoutMs: number;
}

export const DEFAULT_RELAY_TIMING: RelayTiming = Object.freeze({
  retryMs: 200,
  maxRetryMs: 2000,
  pingMs: 1000,
  pongTimeoutMs: 3500,
});

export interface RelayBinderOptions {
  readonly sessionId: Uint8Array;
  readonly role: Role;
  /** The lease from signaling (a compact JWS, ASCII). */
  readonly lease: string;
  /** Signs the proof message with the device's Ed25519 key (the lease's `cnf`). */
  readonly sign: (message: Uint8Array) => Uint8Array;
  readonly random: (length: number) => Uint8Array;
  /** Sends one datagram to the relay. */
  readonly send: (datagram: Uint8Array) => void;
  readonly onBound?: (peerBound: boolean, observed: ObservedAddress) => void;
  readonly onFailed?: (reason: RelayFailure) => void;
  readonly timing?: RelayTiming;
}

/** See {@link RelayBinderState}. */
export class RelayBinder {
  readonly #options: RelayBinderOptions;
  readonly #timing: RelayTiming;
  readonly #lease: Uint8Array;
  #state: RelayBinderState;
  #retryMs: number;
  #nextAt = 0;
  #lastPongAt = 0;
  /** Times the binder went back to HELLO after having been bound (relay restarts, lost bindings). */
  rebinds = 0;

  constructor(options: RelayBinderOptions, now: number) {
    this.#options = options;
    this.#timing = options.timing ?? DEFAULT_RELAY_TIMING;
    this.#lease = new TextEncoder().encode(options.lease);
    this.#retryMs = this.#timing.retryMs;
    this.#state = this.#hello(now);
  }

  get state(): RelayBinderState {
    return this.#state;
  }

  /** True when FORWARD frames from us reach the peer (both sides are bound). */
  get forwarding(): boolean {
    return this.#state.kind === "bound" && this.#state.peerBound;
  }

  #hello(now: number): RelayBinderState {
    const nonce = this.#options.random(CLIENT_NONCE_LEN);
    this.#options.send(encodeHello(this.#options.sessionId, this.#options.role, nonce));
    this.#nextAt = now + this.#retryMs;
    return { kind: "hello", nonce };
  }

  #restart(now: number): void {
    if (this.#state.kind === "bound") this.rebinds++;
    this.#retryMs = this.#timing.retryMs;
    this.#state = this.#hello(now);
  }

  /** Takes a relay frame that arrived from the relay's address (the session id is checked here). */
  handle(frame: RelayFrame, now: number): void {
    const state = this.#state;
    if (state.kind === "failed" || !constantTimeEqual(frame.sessionId, this.#options.sessionId)) return;
    switch (frame.type) {
      case RelayFrameType.Challenge: {
        if (state.kind !== "hello" || !constantTimeEqual(frame.clientNonce, state.nonce)) return;
        const { sessionId, role } = this.#options;
        const cookie = frame.cookie.slice();
        const proof = this.#options.sign(leaseProofMessage(sessionId, role, cookie, this.#lease));
        const present = encodeLeasePresent(sessionId, role, cookie, proof, this.#lease);
        this.#retryMs = this.#timing.retryMs;
        this.#nextAt = now + this.#retryMs;
        this.#state = { kind: "present", frame: present };
        this.#options.send(present);
        return;
      }
      case RelayFrameType.LeaseAck: {
        // An unasked ACK with peer_bound = 1 may come at any time once we are bound (PROTOCOL.md).
        if (frame.role !== this.#options.role || (state.kind !== "present" && state.kind !== "bound")) return;
        const wasForwarding = this.forwarding;
        this.#state = { kind: "bound", peerBound: frame.peerBound };
        if (state.kind === "present") {
          this.#lastPongAt = now;
          this.#nextAt = now + this.#timing.pingMs;
        }
        if (state.kind === "present" || wasForwarding !== frame.peerBound)
          this.#options.onBound?.(frame.peerBound, frame.observed);
        return;
      }
      case RelayFrameType.LeaseReject: {
        const fatal = FATAL.get(frame.reason);
        if (fatal !== undefined && state.kind !== "bound") {
          this.#state = { kind: "failed", reason: fatal };
          this.#options.onFailed?.(fatal);
        } else if (frame.reason === RejectReason.UnknownSession || frame.reason === RejectReason.BadCookie) {
          // The relay lost our binding (restart) or the cookie aged out: start over, the lease is still valid.
          this.#restart(now);
        }
        // rate-limited / overloaded: the ordinary retransmission timer paces the retry.
        return;
      }
      case RelayFrameType.Pong:
        if (state.kind === "bound") this.#lastPongAt = now;
        return;
      default:
        return;
    }
  }

  /** Retransmits and pings when due. */
  tick(now: number): void {
    const state = this.#state;
    if (state.kind === "failed" || now < this.#nextAt) return;
    switch (state.kind) {
      case "hello":
      case "present":
        this.#retryMs = Math.min(this.#retryMs * 2, this.#timing.maxRetryMs);
        this.#nextAt = now + this.#retryMs;
        if (state.kind === "hello")
          this.#options.send(encodeHello(this.#options.sessionId, this.#options.role, state.nonce));
        else this.#options.send(state.frame);
        return;
      case "bound":
        if (now - this.#lastPongAt >= this.#timing.pongTimeoutMs) {
          this.#restart(now);
          return;
        }
        this.#nextAt = now + this.#timing.pingMs;
        this.#options.send(encodePing(RelayFrameType.Ping, this.#options.sessionId, this.#options.random(8)));
        return;
      default:
        assertNever(state);
    }
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected state ${JSON.stringify(value)}`);
}
