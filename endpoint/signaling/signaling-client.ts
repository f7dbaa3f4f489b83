import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import {
  AUTO_PING_TEXT,
  type ClientMessage,
  type ClientMessageOf,
  type ClientMessageType,
  clientMessageSchemas,
  type ParseFailure,
  parseServerMessage,
  type ServerMessage,
  type ServerMessageOf,
  type ServerMessageType,
  SIGNAL_CLOSE,
  SIGNAL_LIMITS,
  SIGNAL_VERSION,
} from "../../protocol/signaling/messages.ts";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
import { PinMismatchError, pinnedServerIdentity } from "./tls-pins.ts";
import {
  checkSignalingUrl,
  type Environment,
  readSignalingTransport,
  type SignalingTransport,
} from "./transport-policy.ts";

/**
 * The endpoint's signaling client (DESIGN.md: Signaling; PROTOCOL.md: Signaling; issue 5, "Signaling client"): one
 * WebSocket to the edge's `/v1/signal`, authenticated by a device access token in `Authorization` before the
 * upgrade. It reconnects with bounded exponential backoff and jitter, asks the token source again on every
 * (re)connect, pings at the interval `hello` announces, validates every incoming frame with the shared schemas
 * (invalid frames are counted by reason and dropped) and emits typed events.
 *
 * It never logs a token or a message payload: log events carry only names, codes and counts.
 */

/** Timers the client uses; injectable so tests can drive time. */
export interface SignalingClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The process clock. */
export const systemClock: SignalingClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Connection states: `waiting` is the backoff pause between attempts; `closed` is final. */
export type SignalingState = "idle" | "connecting" | "open" | "waiting" | "closed";

/** Why an attempt or a connection failed. */
export type ConnectionProblemCode =
  | "token_unavailable"
  | "unauthorized"
  | "rate_limited"
  | "http_status"
  | "pin_mismatch"
  | "tls"
  | "network"
  | "stale";

/** Events besides the server's messages. */
export interface ConnectionEvents {
  /** The socket is open (before `hello`); `attempt` counts failed attempts since the last good connection. */
  readonly open: { readonly attempt: number };
  /** The socket closed; `retryInMs` is null when the client was closed and will not reconnect. */
  readonly disconnected: { readonly code: number; readonly retryInMs: number | null };
  /** A connection attempt failed or a connection went bad; no token or payload in `message`. */
  readonly problem: { readonly code: ConnectionProblemCode; readonly message: string };
  /** A frame from the edge was refused and dropped. */
  readonly invalid: { readonly code: ParseFailure };
  readonly state: SignalingState;
}

/** Every event the client emits: each server message type, plus {@link ConnectionEvents}. */
export type SignalingEvents = { readonly [K in ServerMessageType]: ServerMessageOf<K> } & ConnectionEvents;

/** The fields of a client message, without the envelope's `v` and `type`. */
export type MessageFields<K extends ClientMessageType> = Omit<ClientMessageOf<K>, "v" | "type">;

/** Counters for monitoring (names double as metric labels). */
export interface SignalingStats {
  readonly connects: number;
  readonly disconnects: number;
  readonly invalid: Readonly<Record<ParseFailure, number>>;
  readonly problems: Readonly<Partial<Record<ConnectionProblemCode, number>>>;
}

/** Options of {@link SignalingClient}. */
export interface SignalingClientOptions {
  /** `wss://…/v1/signal` (as `GET /v1/signal/info` gives it); `ws://` only as the transport policy allows. */
  readonly url: string;
  /** The device access token; called on every (re)connect, so it can refresh an expired one. */
  readonly getToken: () => Promise<string>;
  /** Read for WAVRY_ENVIRONMENT, WAVRY_ALLOW_INSECURE_SIGNALING and WAVRY_SIGNALING_TLS_PINS_SHA256. */
  readonly env: Environment;
  /** Extra trusted roots (PEM) for `wss://`, e.g. a test CA; the system store otherwise. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  readonly backoff?: BackoffOptions;
  /** Abandon an attempt whose upgrade takes longer (default 10 s). */
  readonly connectTimeoutMs?: number;
  readonly clock?: SignalingClock;
  /** In [0, 1); jitter source. */
  readonly random?: () => number;
  /** Names, codes and counts only. */
  readonly log?: (event: string, fields: Readonly<Record<string, string | number>>) => void;
}

type Listener<T> = (event: T) => void;

/** A signaling client; see the module comment. Call {@link SignalingClient.start}, then {@link SignalingClient.close}. */
export class SignalingClient {
  readonly #url: URL;
  readonly #transport: SignalingTransport;
  readonly #getToken: () => Promise<string>;
  readonly #ca: string | Buffer | (string | Buffer)[] | undefined;
  readonly #backoff: BackoffOptions;
  readonly #connectTimeoutMs: number;
  readonly #clock: SignalingClock;
  readonly #random: () => number;
  readonly #log: (event: string, fields: Readonly<Record<string, string | number>>) => void;
  readonly #listeners = new Map<keyof SignalingEvents, Set<Listener<never>>>();

  #state: SignalingState = "idle";
  #socket: WebSocket | null = null;
  /** Failed attempts since the last `hello`. */
  #attempt = 0;
  #retryTimer: unknown = null;
  #pingTimer: unknown = null;
  #pingIntervalMs: number = SIGNAL_LIMITS.pingIntervalSecs * 1000;
  #lastReceivedAt = 0;
  #lastPingAt = 0;
  /** Consecutive pings with nothing received after them. */
  #unanswered = 0;
  #connects = 0;
  #disconnects = 0;
  readonly #invalid: Record<ParseFailure, number> = {
    too_large: 0,
    not_json: 0,
    unsupported_version: 0,
    unknown_type: 0,
    invalid_message: 0,
  };
  readonly #problems: Partial<Record<ConnectionProblemCode, number>> = {};

  /** Checks the configuration (throws {@link SignalingConfigError}); connects only on {@link start}. */
  constructor(options: SignalingClientOptions) {
    this.#transport = readSignalingTransport(options.env);
    this.#url = checkSignalingUrl(options.url, this.#transport);
    this.#getToken = options.getToken;
    this.#ca =
      options.ca === undefined || typeof options.ca === "string" || Buffer.isBuffer(options.ca)
        ? options.ca
        : [...options.ca];
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#log = options.log ?? (() => {});
  }

  /** The current connection state. */
  get state(): SignalingState {
    return this.#state;
  }

  /** Counters since construction. */
  stats(): SignalingStats {
    return {
      connects: this.#connects,
      disconnects: this.#disconnects,
      invalid: { ...this.#invalid },
      problems: { ...this.#problems },
    };
  }

  /** Starts connecting (once); later failures reconnect by themselves until {@link close}. */
  start(): void {
    if (this.#state !== "idle") return;
    void this.#connect();
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof SignalingEvents>(type: K, listener: Listener<SignalingEvents[K]>): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** The next event of `type` (matching `accept`, if given); rejects after `timeoutMs` or when the client closes. */
  next<K extends keyof SignalingEvents>(
    type: K,
    timeoutMs: number,
    accept: (event: SignalingEvents[K]) => boolean = () => true,
  ): Promise<SignalingEvents[K]> {
    return new Promise((resolve, reject) => {
      const done = () => {
        off();
        offClosed();
        this.#clock.clearTimeout(timer);
      };
      const off = this.on(type, (event) => {
        if (!accept(event)) return;
        done();
        resolve(event);
      });
      const offClosed = this.on("state", (state) => {
        if (state !== "closed") return;
        done();
        reject(new Error(`the signaling client closed while waiting for ${type}`));
      });
      const timer = this.#clock.setTimeout(() => {
        done();
        reject(new Error(`no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  /**
   * Sends one message if the socket is open; returns false otherwise (nothing is queued: signaling answers are
   * time-bound, so the caller decides whether to retry). Throws on a message the edge would refuse.
   */
  send(message: ClientMessage): boolean {
    if (!clientMessageSchemas[message.type].safeParse(message).success) {
      throw new TypeError(`refusing to send an invalid ${message.type} message`);
    }
    const socket = this.#socket;
    if (this.#state !== "open" || socket === null || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** Client: asks for a session with host `to`. */
  requestSession(fields: MessageFields<"session.request">): boolean {
    return this.#sendTyped("session.request", fields);
  }

  /** Host: accepts an offered session. */
  acceptSession(fields: MessageFields<"session.accept">): boolean {
    return this.#sendTyped("session.accept", fields);
  }

  /** Host: refuses an offered session. */
  rejectSession(fields: MessageFields<"session.reject">): boolean {
    return this.#sendTyped("session.reject", fields);
  }

  /** Either side: abandons a session. */
  cancelSession(fields: MessageFields<"session.cancel">): boolean {
    return this.#sendTyped("session.cancel", fields);
  }

  /** Either side: more candidate addresses (trickle). */
  sendCandidates(fields: MessageFields<"candidates">): boolean {
    return this.#sendTyped("candidates", fields);
  }

  /** Either side: asks for a relay for an accepted session. */
  requestRelay(fields: MessageFields<"relay.request">): boolean {
    return this.#sendTyped("relay.request", fields);
  }

  /** Either side: reports how the session went. */
  reportSession(fields: MessageFields<"session.report">): boolean {
    return this.#sendTyped("session.report", fields);
  }

  /** Which of these devices are online. */
  queryPresence(fields: MessageFields<"presence.query">): boolean {
    return this.#sendTyped("presence.query", fields);
  }

  /** A keep-alive with an id, answered by the room itself with `pong` carrying that id. */
  ping(fields: MessageFields<"ping"> = {}): boolean {
    return this.#sendTyped("ping", fields);
  }

  /** Closes the socket and stops reconnecting; resolves when the socket is gone. Final. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const socket = this.#socket;
    this.#setState("closed");
    this.#clearTimers();
    if (socket === null || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      if (socket.readyState === WebSocket.OPEN) {
        socket.close(1000, "closing");
        // A peer that never answers the closing handshake must not hold the caller.
        const timer = this.#clock.setTimeout(() => socket.terminate(), 2000);
        socket.once("close", () => this.#clock.clearTimeout(timer));
      } else {
        socket.terminate();
      }
    });
  }

  // ---- Internals --------------------------------------------------------------------------------------------------

  #sendTyped<K extends ClientMessageType>(type: K, fields: MessageFields<K>): boolean {
    // The spread of a generic cannot be narrowed by the compiler; send() validates it against the schema instead.
    return this.send({ v: SIGNAL_VERSION, type, ...fields } as unknown as ClientMessage);
  }

  #emit<K extends keyof SignalingEvents>(type: K, event: SignalingEvents[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<SignalingEvents[K]>)(event);
      } catch (error) {
        // One faulty listener must not break the connection or the other listeners.
        this.#log("listener_error", {
          event: type,
          error: error instanceof Error ? error.name : "non-error",
        });
      }
    }
  }

  #setState(state: SignalingState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit("state", state);
  }

  #problem(code: ConnectionProblemCode, message: string): void {
    this.#problems[code] = (this.#problems[code] ?? 0) + 1;
    this.#log("signaling_problem", { code });
    this.#emit("problem", { code, message });
  }

  #clearTimers(): void {
    if (this.#retryTimer !== null) this.#clock.clearTimeout(this.#retryTimer);
    if (this.#pingTimer !== null) this.#clock.clearTimeout(this.#pingTimer);
    this.#retryTimer = null;
    this.#pingTimer = null;
  }

  async #connect(): Promise<void> {
    this.#setState("connecting");
    let token: string;
    try {
      token = await this.#getToken();
    } catch {
      this.#problem("token_unavailable", "the token source failed");
      this.#scheduleRetry(1006);
      return;
    }
    if (this.#state !== "connecting") return;
    const secure = this.#url.protocol === "wss:";
    const socket = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${token}` },
      handshakeTimeout: this.#connectTimeoutMs,
      maxPayload: SIGNAL_LIMITS.maxMessageBytes,
      perMessageDeflate: false,
      followRedirects: false,
      // Pins are checked inside the TLS handshake, before ws writes the upgrade request carrying the token.
      ...(secure && { checkServerIdentity: pinnedServerIdentity(this.#transport.pins) }),
      ...(secure && this.#ca !== undefined && { ca: this.#ca }),
    });
    this.#socket = socket;
    // One problem per attempt: aborting a refused upgrade makes ws report a second, generic error.
    let reported = false;
    const report = (code: ConnectionProblemCode, message: string) => {
      if (reported) return;
      reported = true;
      this.#problem(code, message);
    };
    socket.on("unexpected-response", (request, response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      response.resume();
      if (status === 401 || status === 403) {
        report("unauthorized", `the edge refused the device token (HTTP ${status})`);
      } else if (status === 429) {
        report("rate_limited", "the edge has too many sockets for this device or address (HTTP 429)");
      } else {
        report("http_status", `the edge answered the upgrade with HTTP ${status}`);
      }
      request.destroy();
      socket.terminate();
    });
    socket.on("error", (error: Error & { code?: string }) => {
      if (error instanceof PinMismatchError) report("pin_mismatch", error.message);
      else if (isTlsError(error)) report("tls", `TLS failed: ${error.code ?? error.name}`);
      else report("network", `signaling socket error: ${error.code ?? error.name}`);
    });
    socket.on("open", () => this.#opened(socket));
    socket.on("message", (data, isBinary) => this.#received(socket, data, isBinary));
    socket.on("close", (code) => this.#closed(socket, code));
  }

  #opened(socket: WebSocket): void {
    if (socket !== this.#socket) return;
    this.#connects++;
    this.#lastReceivedAt = this.#clock.now();
    this.#unanswered = 0;
    this.#setState("open");
    this.#log("signaling_open", { attempt: this.#attempt });
    this.#emit("open", { attempt: this.#attempt });
    // The edge closes a socket with no valid first message within 10 s: the auto-answered ping counts and is free.
    this.#sendPing(socket);
    this.#schedulePing(socket);
  }

  #schedulePing(socket: WebSocket): void {
    if (this.#pingTimer !== null) this.#clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = this.#clock.setTimeout(() => {
      this.#pingTimer = null;
      if (socket !== this.#socket || socket.readyState !== WebSocket.OPEN) return;
      // Every ping is answered at once, so two pings in a row with nothing received after them mean a dead path
      // (e.g. a NAT dropped the mapping) that TCP may not notice for minutes.
      this.#unanswered = this.#lastReceivedAt < this.#lastPingAt ? this.#unanswered + 1 : 0;
      if (this.#unanswered >= 2) {
        this.#problem("stale", "the edge answered none of the last two pings");
        socket.terminate();
        return;
      }
      this.#sendPing(socket);
      this.#schedulePing(socket);
    }, this.#pingIntervalMs);
  }

  #sendPing(socket: WebSocket): void {
    this.#lastPingAt = this.#clock.now();
    socket.send(AUTO_PING_TEXT);
  }

  #received(socket: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    if (socket !== this.#socket) return;
    this.#lastReceivedAt = this.#clock.now();
    const parsed: ReturnType<typeof parseServerMessage> = isBinary
      ? { ok: false, code: "invalid_message" }
      : parseServerMessage(rawText(data));
    if (!parsed.ok) {
      this.#invalid[parsed.code]++;
      this.#log("signaling_invalid", { code: parsed.code });
      this.#emit("invalid", { code: parsed.code });
      return;
    }
    const message = parsed.message;
    if (message.type === "hello") {
      this.#attempt = 0;
      const interval = message.limits.pingIntervalSecs * 1000;
      // Bounded: a bad hello must neither flood the edge nor let the socket idle past the edge's timeout.
      this.#pingIntervalMs = Math.min(Math.max(interval, 1000), (message.limits.idleTimeoutSecs * 1000) / 2);
      this.#schedulePing(socket);
    }
    this.#dispatch(message);
  }

  #dispatch(message: ServerMessage): void {
    // The union is keyed by `type`, so each message reaches the listeners of its own type.
    this.#emit(message.type, message as never);
  }

  #closed(socket: WebSocket, code: number): void {
    if (socket !== this.#socket) return;
    this.#socket = null;
    if (this.#pingTimer !== null) this.#clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = null;
    this.#disconnects++;
    if (this.#state === "closed") {
      this.#emit("disconnected", { code, retryInMs: null });
      return;
    }
    if (code === SIGNAL_CLOSE.revoked) {
      // The token was revoked: the next attempt asks the token source again, which must mint a new one.
      this.#problem("unauthorized", "the edge revoked this socket's credentials");
    }
    this.#scheduleRetry(code);
  }

  #scheduleRetry(code: number): void {
    if (this.#state === "closed") return;
    const delay = backoffDelay(this.#attempt, this.#backoff, this.#random);
    this.#attempt++;
    this.#setState("waiting");
    this.#log("signaling_retry", { code, delayMs: delay });
    this.#emit("disconnected", { code, retryInMs: delay });
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state === "waiting") void this.#connect();
    }, delay);
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

function isTlsError(error: Error & { code?: string }): boolean {
  const code = error.code ?? "";
  return (
    code.startsWith("ERR_TLS") ||
    code.startsWith("ERR_SSL") ||
    code.includes("CERT") ||
    code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE" ||
    code === "DEPTH_ZERO_SELF_SIGNED_CERT" ||
    code === "SELF_SIGNED_CERT_IN_CHAIN"
  );
}
