import { z } from "zod";
import { isDeviceId } from "../identity/device-id.ts";
import { isRelayId } from "../identity/relay-id.ts";

/**
 * Signaling messages between an endpoint and the edge over one WebSocket (DESIGN.md: Signaling; issue 4). Pure:
 * shared by the edge's signaling rooms and the endpoint daemon. Every message is one UTF-8 JSON text frame, an
 * envelope `{ "v": 1, "type": "...", "id"?: "...", ...fields }` with the fields of its type next to the envelope
 * keys. Unknown types, unknown fields and any other version are refused: a new field or type means a new version.
 *
 * `id` is the sender's correlation id; the edge echoes it as `id` on the direct answer to a request and as `ref` on
 * an `error` about it.
 */

/** The envelope version this module speaks. */
export const SIGNAL_VERSION = 1;

/** Wire limits both sides enforce. The edge also announces the per-socket ones in `hello`. */
export const SIGNAL_LIMITS = {
  /** Largest accepted text frame in UTF-8 bytes; a larger one closes the socket (1009). */
  maxMessageBytes: 64 * 1024,
  /** Candidate addresses in one message. */
  maxCandidates: 16,
  /** Characters of one candidate (`[IPv6]:port` fits). */
  maxCandidateLength: 64,
  /** Device ids in one presence query. */
  maxPresenceDevices: 64,
  /** Characters of a correlation id. */
  maxIdLength: 64,
  /** Token bucket per socket: sustained messages per second … */
  messagesPerSecond: 10,
  /** … and the burst it allows. */
  messageBurst: 40,
  /** A new socket must send its first valid message (a `ping` is enough) within this many seconds. */
  firstMessageTimeoutSecs: 10,
  /** A socket silent for this long is closed by the edge (clients ping every `pingIntervalSecs`). */
  idleTimeoutSecs: 75,
  /** How often a client should send `ping`. */
  pingIntervalSecs: 25,
  /** Consecutive refused messages after which the edge closes the socket (1008). */
  maxConsecutiveRefusals: 10,
  /** Sessions one device may have open (requested or accepted) at once. */
  maxOpenSessions: 16,
  /** A session request the host has not answered in this many seconds fails with `timeout`. */
  offerTimeoutSecs: 30,
  /** An accepted session stays routable (candidates, relay, report) for this many seconds. */
  sessionTtlSecs: 600,
  /** Candidate updates per session and side. */
  maxCandidateUpdates: 32,
  /** Relay assignments per session. */
  maxRelayRequests: 4,
  /** Largest handshake time a report may carry. */
  maxHandshakeMs: 600_000,
} as const;

/**
 * The exact ping text the edge answers without waking its room (WebSocket auto-response, so an idle connection
 * costs no Durable Object time); the answer is {@link AUTO_PONG_TEXT}. Any other `ping` (e.g. with an `id`) is
 * answered by the room itself. Either kind keeps the socket from the idle timeout.
 */
export const AUTO_PING_TEXT = '{"v":1,"type":"ping"}';
/** The auto-response to {@link AUTO_PING_TEXT}. */
export const AUTO_PONG_TEXT = '{"v":1,"type":"pong"}';

/** WebSocket close codes the edge uses (RFC 6455 §7.4; 4000-4999 are ours). */
export const SIGNAL_CLOSE = {
  /** Too many refused messages in a row, or the rate limit kept being exceeded. */
  policy: 1008,
  /** A frame above {@link SIGNAL_LIMITS.maxMessageBytes}. */
  tooLarge: 1009,
  /** The edge failed; reconnect with backoff. */
  internal: 1011,
  /** No valid first message within {@link SIGNAL_LIMITS.firstMessageTimeoutSecs}. */
  firstMessageTimeout: 4001,
  /** Silent for {@link SIGNAL_LIMITS.idleTimeoutSecs}. */
  idleTimeout: 4002,
  /** The device was revoked, its owner suspended, or its tokens revoked: do not reconnect with the same token. */
  revoked: 4003,
} as const;

/** Codes of the `error` message, and the counter names of refused messages. */
export const SIGNAL_ERROR_CODES = [
  "too_large",
  "not_json",
  "unsupported_version",
  "unknown_type",
  "invalid_message",
  "binary_not_supported",
  "rate_limited",
  "unknown_session",
  "invalid_state",
  "too_many_sessions",
  "relay_unavailable",
  "limit_reached",
  "internal",
] as const;
export type SignalErrorCode = (typeof SIGNAL_ERROR_CODES)[number];

/** Why a session failed, as `session.failed` says it. */
export const SESSION_FAILURE_REASONS = [
  /** The device does not exist, may not be reached by the sender, or is offline: deliberately one answer. */
  "unreachable",
  /** The host did not answer in time. */
  "timeout",
  /** The other side cancelled. */
  "cancelled",
  /** The other side disconnected before the session was set up, or was revoked. */
  "peer_gone",
] as const;
export type SessionFailureReason = (typeof SESSION_FAILURE_REASONS)[number];

/** Why a host rejects a session. */
export const SESSION_REJECT_REASONS = ["declined", "busy", "unsupported"] as const;
export type SessionRejectReason = (typeof SESSION_REJECT_REASONS)[number];

/** Why an endpoint reports a session as failed (also the monitoring labels). */
export const SESSION_REPORT_FAILURES = [
  "handshake_timeout",
  "handshake_failed",
  "key_mismatch",
  "no_path",
  "relay_refused",
  "cancelled",
  "other",
] as const;
export type SessionReportFailure = (typeof SESSION_REPORT_FAILURES)[number];

// ---- Field schemas ----------------------------------------------------------------------------------------------

const deviceId = z.string().refine(isDeviceId, "not a device id");
const relayId = z.string().refine(isRelayId, "not a relay id");
/** 16 random bytes as canonical unpadded base64url (22 characters; the last carries 2 bits). */
const sessionId = z.string().regex(/^[A-Za-z0-9_-]{21}[AQgw]$/);
/** A 32-byte key as canonical unpadded base64url (43 characters; the last carries 4 bits). */
const key32 = z.string().regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/);
const correlationId = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/);
const region = z.string().regex(/^[a-z0-9-]{1,32}$/);
const compactJws = z
  .string()
  .max(4096)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_CHARS = /^[0-9a-fA-F:.]{2,45}$/;

/**
 * True for a candidate address: `a.b.c.d:port` or `[ipv6]:port`, port 1-65535 without leading zeros. Literal
 * addresses only: a peer never resolves a name the other side chose.
 */
export function isCandidate(text: unknown): text is string {
  if (typeof text !== "string" || text.length > SIGNAL_LIMITS.maxCandidateLength) return false;
  const colon = text.lastIndexOf(":");
  if (colon <= 0) return false;
  const port = text.slice(colon + 1);
  if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65_535) return false;
  const host = text.slice(0, colon);
  if (host.startsWith("[")) {
    return host.endsWith("]") && IPV6_CHARS.test(host.slice(1, -1)) && host.slice(1, -1).includes(":");
  }
  return IPV4.test(host);
}

const candidate = z.string().refine(isCandidate, "not a candidate address");
const candidates = z.array(candidate).max(SIGNAL_LIMITS.maxCandidates);
const someCandidates = candidates.min(1);

/** The envelope keys every message may carry; `type` is added per schema. */
const envelope = { v: z.literal(SIGNAL_VERSION), id: correlationId.optional() };

function message<T extends string, S extends z.ZodRawShape>(type: T, shape: S) {
  return z.strictObject({ ...envelope, type: z.literal(type), ...shape });
}

// ---- Client -> edge ---------------------------------------------------------------------------------------------

/** A session outcome an endpoint reports. */
export const sessionOutcome = z.discriminatedUnion("result", [
  z.strictObject({
    result: z.literal("established"),
    path: z.enum(["direct", "relay"]),
    handshakeMs: z.number().int().min(0).max(SIGNAL_LIMITS.maxHandshakeMs),
  }),
  z.strictObject({ result: z.literal("failed"), reason: z.enum(SESSION_REPORT_FAILURES) }),
]);

/** Schemas of the messages an endpoint sends, by type. */
export const clientMessageSchemas = {
  /** Client asks the edge to set up a session with host `to`, giving its own candidate addresses. */
  "session.request": message("session.request", {
    to: deviceId,
    candidates,
    wantRelay: z.boolean().optional(),
    region: region.optional(),
  }),
  /** Host accepts an offered session with its candidate addresses. */
  "session.accept": message("session.accept", { sessionId, candidates }),
  /** Host refuses an offered session. */
  "session.reject": message("session.reject", { sessionId, reason: z.enum(SESSION_REJECT_REASONS) }),
  /** Either side abandons a session. */
  "session.cancel": message("session.cancel", { sessionId }),
  /** Either side adds candidate addresses to a session (trickle). */
  candidates: message("candidates", { sessionId, candidates: someCandidates }),
  /** Either side asks for a relay for an accepted session. */
  "relay.request": message("relay.request", { sessionId }),
  /** Either side reports how the session went (once per side). */
  "session.report": message("session.report", { sessionId, outcome: sessionOutcome }),
  /** Which of these devices are online? Devices the sender may not reach are never listed. */
  "presence.query": message("presence.query", {
    devices: z.array(deviceId).min(1).max(SIGNAL_LIMITS.maxPresenceDevices),
  }),
  /** Keep-alive; answered with `pong`. */
  ping: message("ping", {}),
} as const;

/** Message types an endpoint may send. */
export type ClientMessageType = keyof typeof clientMessageSchemas;
/** A validated message from an endpoint. */
export type ClientMessage = {
  [K in ClientMessageType]: z.infer<(typeof clientMessageSchemas)[K]>;
}[ClientMessageType];
/** The validated message of one type. */
export type ClientMessageOf<K extends ClientMessageType> = z.infer<(typeof clientMessageSchemas)[K]>;

// ---- Edge -> client ---------------------------------------------------------------------------------------------

/** Schemas of the messages the edge sends, by type (the endpoint daemon parses with these). */
export const serverMessageSchemas = {
  /** First message on every socket: who the socket is authenticated as, and its limits. */
  hello: message("hello", {
    deviceId,
    limits: z.strictObject({
      maxMessageBytes: z.number().int().positive(),
      messagesPerSecond: z.number().int().positive(),
      messageBurst: z.number().int().positive(),
      firstMessageTimeoutSecs: z.number().int().positive(),
      idleTimeoutSecs: z.number().int().positive(),
      pingIntervalSecs: z.number().int().positive(),
    }),
  }),
  /** To the host: a client wants a session; its key pins the Noise handshake. */
  "session.offer": message("session.offer", {
    sessionId,
    from: deviceId,
    fromX25519PublicKey: key32,
    candidates,
    wantRelay: z.boolean(),
  }),
  /** To the client: the offer reached the host; its answer follows as `session.accepted` or `session.rejected`. */
  "session.pending": message("session.pending", { sessionId, host: deviceId }),
  /** To the client: the host accepted; its key pins the Noise handshake. */
  "session.accepted": message("session.accepted", {
    sessionId,
    host: deviceId,
    hostX25519PublicKey: key32,
    candidates,
  }),
  /** To the client: the host refused. */
  "session.rejected": message("session.rejected", { sessionId, reason: z.enum(SESSION_REJECT_REASONS) }),
  /** The session could not be set up or ended; no `sessionId` when none was created. */
  "session.failed": message("session.failed", {
    sessionId: sessionId.optional(),
    reason: z.enum(SESSION_FAILURE_REASONS),
  }),
  /** The other side's additional candidates. */
  candidates: message("candidates", { sessionId, from: deviceId, candidates: someCandidates }),
  /** A relay for the session, with this peer's own lease (never the other peer's). */
  "relay.assigned": message("relay.assigned", {
    sessionId,
    relayId,
    relayAddr: z
      .string()
      .max(64)
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/),
    lease: compactJws,
    /** Seconds since the epoch when the lease expires. */
    expiresAt: z.number().int().positive(),
  }),
  /** The answer to `presence.query`: the asked devices that are reachable and online, in the order asked. */
  presence: message("presence", { online: z.array(deviceId).max(SIGNAL_LIMITS.maxPresenceDevices) }),
  /** A refused message; `ref` is the refused message's `id` when it had a valid one. */
  error: message("error", {
    code: z.enum(SIGNAL_ERROR_CODES),
    message: z.string().max(200),
    ref: correlationId.optional(),
  }),
  pong: message("pong", {}),
} as const;

/** Message types the edge sends. */
export type ServerMessageType = keyof typeof serverMessageSchemas;
/** A message from the edge. */
export type ServerMessage = {
  [K in ServerMessageType]: z.infer<(typeof serverMessageSchemas)[K]>;
}[ServerMessageType];
/** The message of one type, as the edge builds it. */
export type ServerMessageOf<K extends ServerMessageType> = z.infer<(typeof serverMessageSchemas)[K]>;

// ---- Parsing ----------------------------------------------------------------------------------------------------

/** Why a text frame was refused (a subset of {@link SignalErrorCode}). */
export type ParseFailure =
  | "too_large"
  | "not_json"
  | "unsupported_version"
  | "unknown_type"
  | "invalid_message";

/** The result of parsing one frame: never an exception. */
export type ParseResult<M> =
  | { readonly ok: true; readonly message: M }
  | { readonly ok: false; readonly code: ParseFailure; readonly ref?: string };

/**
 * UTF-8 length of `text`, counted without allocating; stops counting past `limit`. Lone surrogates count as the 3
 * bytes of U+FFFD, which is what an encoder sends for them.
 */
export function utf8Length(text: string, limit = Number.POSITIVE_INFINITY): number {
  // Every UTF-16 unit encodes to at least one byte and at most three (a surrogate pair: four for two units).
  if (text.length > limit) return text.length;
  if (text.length * 3 <= limit) {
    let ascii = true;
    for (let i = 0; i < text.length && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
    if (ascii) return text.length;
  }
  let bytes = 0;
  for (let i = 0; i < text.length && bytes <= limit; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseWith<M>(
  text: unknown,
  schemas: Readonly<Record<string, z.ZodType<M>>>,
  maxBytes: number,
): ParseResult<M> {
  try {
    // Size first: nothing else is read from an oversized frame.
    if (typeof text !== "string") return { ok: false, code: "invalid_message" };
    if (utf8Length(text, maxBytes) > maxBytes) return { ok: false, code: "too_large" };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ok: false, code: "not_json" };
    }
    if (!isRecord(value)) return { ok: false, code: "invalid_message" };
    const ref = correlationId.safeParse(value.id);
    const fail = (code: ParseFailure): ParseResult<M> =>
      ref.success ? { ok: false, code, ref: ref.data } : { ok: false, code };
    if (value.v !== SIGNAL_VERSION) return fail("unsupported_version");
    const type = value.type;
    // Own keys only: "__proto__" or "toString" are not message types.
    if (typeof type !== "string" || !Object.hasOwn(schemas, type)) return fail("unknown_type");
    const schema = schemas[type];
    if (schema === undefined) return fail("unknown_type");
    const parsed = schema.safeParse(value);
    return parsed.success ? { ok: true, message: parsed.data } : fail("invalid_message");
  } catch {
    // Defensive: a schema never throws on JSON values, but this function promises a result whatever happens.
    return { ok: false, code: "invalid_message" };
  }
}

/** Parses and validates one text frame from an endpoint. Never throws. */
export function parseClientMessage(text: unknown): ParseResult<ClientMessage> {
  return parseWith(
    text,
    clientMessageSchemas as unknown as Record<string, z.ZodType<ClientMessage>>,
    SIGNAL_LIMITS.maxMessageBytes,
  );
}

/** Parses and validates one text frame from the edge (for endpoints). Never throws. */
export function parseServerMessage(text: unknown): ParseResult<ServerMessage> {
  return parseWith(
    text,
    serverMessageSchemas as unknown as Record<string, z.ZodType<ServerMessage>>,
    SIGNAL_LIMITS.maxMessageBytes,
  );
}

/** The text frame of a message (either direction). */
export function encodeMessage(message: ClientMessage | ServerMessage): string {
  return JSON.stringify(message);
}

/** The limits a socket announces in `hello`. */
export const HELLO_LIMITS: ServerMessageOf<"hello">["limits"] = {
  maxMessageBytes: SIGNAL_LIMITS.maxMessageBytes,
  messagesPerSecond: SIGNAL_LIMITS.messagesPerSecond,
  messageBurst: SIGNAL_LIMITS.messageBurst,
  firstMessageTimeoutSecs: SIGNAL_LIMITS.firstMessageTimeoutSecs,
  idleTimeoutSecs: SIGNAL_LIMITS.idleTimeoutSecs,
  pingIntervalSecs: SIGNAL_LIMITS.pingIntervalSecs,
};
