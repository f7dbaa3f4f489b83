import { z } from "zod";
import { isDeviceId } from "../../protocol/identity/device-id.ts";
import {
  type ClientMessage,
  type ClientMessageType,
  parseClientMessage,
  SIGNAL_LIMITS,
  type SignalErrorCode,
  utf8Length,
} from "../../protocol/signaling/messages.ts";

/**
 * What a signaling room remembers about one socket, kept in the socket's hibernation attachment (so it survives
 * the room being evicted between messages) and read back through {@link readSocketState}, which checks it from
 * `unknown` before trusting it. Small on purpose: the runtime caps an attachment at 2 KiB.
 */

/** Random id of one socket (16 bytes, base64url). */
export const SOCKET_ID = /^[A-Za-z0-9_-]{22}$/;

const time = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const socketStateSchema = z.strictObject({
  socketId: z.string().regex(SOCKET_ID),
  deviceId: z.string().refine(isDeviceId),
  userId: z.string().min(1).max(64),
  /** The client address the socket counts against (its per-address slot). */
  address: z.string().min(1).max(64),
  auth: z.enum(["token", "ticket"]),
  connectedAt: time,
  /** Last frame received, valid or not. */
  lastSeenAt: time,
  /** Set by the first valid message; only active sockets count as online. */
  active: z.boolean(),
  /** Token bucket: tokens left at `bucketAt`. */
  tokens: z.number().min(0).max(SIGNAL_LIMITS.messageBurst),
  bucketAt: time,
  /** Refused frames in a row. */
  refusals: z.number().int().min(0).max(1_000_000),
});

/** Per-socket state (see the module comment). */
export type SocketState = z.infer<typeof socketStateSchema>;

/** The validated attachment of a socket, or null when it is missing or not ours. */
export function readSocketState(raw: unknown): SocketState | null {
  const parsed = socketStateSchema.safeParse(raw);
  return parsed.success ? parsed.data : null;
}

/** Fresh state for a socket accepted at `now`. */
export function newSocketState(
  identity: Pick<SocketState, "socketId" | "deviceId" | "userId" | "address" | "auth">,
  now: number,
): SocketState {
  return {
    ...identity,
    connectedAt: now,
    lastSeenAt: now,
    active: false,
    tokens: SIGNAL_LIMITS.messageBurst,
    bucketAt: now,
    refusals: 0,
  };
}

/**
 * Takes `cost` tokens from the socket's bucket (refilled at `messagesPerSecond` up to `messageBurst`). Returns
 * false, taking nothing, when there are not enough. A clock that went backwards refills nothing.
 */
export function takeTokens(state: SocketState, cost: number, now: number): boolean {
  const elapsed = Math.max(0, now - state.bucketAt);
  state.tokens = Math.min(
    SIGNAL_LIMITS.messageBurst,
    state.tokens + (elapsed * SIGNAL_LIMITS.messagesPerSecond) / 1000,
  );
  state.bucketAt = Math.max(state.bucketAt, now);
  if (state.tokens < cost) return false;
  state.tokens -= cost;
  return true;
}

/**
 * When the socket must next be looked at: the first-message deadline while it has sent nothing valid, then the
 * idle deadline after its last sign of life (`autoPongAt`: the last ping the runtime answered without waking us).
 */
export function socketDeadline(state: SocketState, autoPongAt: number | null): number {
  if (!state.active && autoPongAt === null) {
    return state.connectedAt + SIGNAL_LIMITS.firstMessageTimeoutSecs * 1000;
  }
  return Math.max(state.lastSeenAt, autoPongAt ?? 0) + SIGNAL_LIMITS.idleTimeoutSecs * 1000;
}

/** Bucket tokens a message costs: more for those that cost the edge D1 reads, RPCs or a relay lease. */
export const MESSAGE_COST: Readonly<Record<ClientMessageType, number>> = {
  "session.request": 4,
  "presence.query": 4,
  "relay.request": 8,
  "session.accept": 1,
  "session.reject": 1,
  "session.cancel": 1,
  candidates: 1,
  "session.report": 1,
  ping: 1,
};

/** What to do with one frame. */
export type Screened =
  | { readonly kind: "accept"; readonly message: ClientMessage }
  | { readonly kind: "refuse"; readonly code: SignalErrorCode; readonly text: string; readonly ref?: string }
  /** Too large to answer: the socket is closed (1009). */
  | { readonly kind: "close"; readonly code: "too_large" };

const slowDown = "slow down: too many messages";

/**
 * The per-socket gate every frame passes before any routing: size first (nothing is read from an oversized
 * frame), then one bucket token (so a flood is refused before it is even parsed), then the schema, then the rest of
 * the message's cost. Updates `state` (last seen, bucket, refusal run); the caller stores it.
 */
export function screenFrame(state: SocketState, frame: string | ArrayBuffer, now: number): Screened {
  state.lastSeenAt = now;
  if (typeof frame !== "string") {
    return { kind: "refuse", code: "binary_not_supported", text: "send JSON text frames" };
  }
  if (utf8Length(frame, SIGNAL_LIMITS.maxMessageBytes) > SIGNAL_LIMITS.maxMessageBytes) {
    return { kind: "close", code: "too_large" };
  }
  if (!takeTokens(state, 1, now)) return { kind: "refuse", code: "rate_limited", text: slowDown };
  const parsed = parseClientMessage(frame);
  if (!parsed.ok) {
    const text = parsed.code === "unknown_type" ? "unknown message type" : "invalid message";
    return {
      kind: "refuse",
      code: parsed.code,
      text,
      ...(parsed.ref === undefined ? {} : { ref: parsed.ref }),
    };
  }
  const { message } = parsed;
  if (!takeTokens(state, MESSAGE_COST[message.type] - 1, now)) {
    return {
      kind: "refuse",
      code: "rate_limited",
      text: slowDown,
      ...(message.id === undefined ? {} : { ref: message.id }),
    };
  }
  state.refusals = 0;
  state.active = true;
  return { kind: "accept", message };
}
