import { DurableObject } from "cloudflare:workers";
import { type EdgeBindings, loadConfig } from "../edge/env.ts";
import { errorBody } from "../edge/errors.ts";
import { type LogFields, logEvent, useLogHashKey } from "../edge/log.ts";
import { assignRelay } from "../edge/services/relay-assignment.ts";
import { isDeviceId } from "../protocol/identity/device-id.ts";
import {
  AUTO_PING_TEXT,
  AUTO_PONG_TEXT,
  HELLO_LIMITS,
  type ServerMessage,
  SIGNAL_CLOSE,
  SIGNAL_LIMITS,
  type SignalErrorCode,
} from "../protocol/signaling/messages.ts";
import { acquireAddressSlot } from "./signaling/address-slots.ts";
import { deviceStanding } from "./signaling/reachability.ts";
import { RoomStore, type StoredReport } from "./signaling/room-store.ts";
import {
  addressRoomName,
  type Clock,
  type DisconnectReason,
  deviceRoom,
  deviceRoomName,
  MAX_SOCKETS_PER_DEVICE,
  REVALIDATE_MS,
  ROOM_HEADERS,
  systemClock,
  TICKET_TTL_SECS,
} from "./signaling/rooms.ts";
import {
  abandonSessions,
  expireSessions,
  type OfferInput,
  type PeerEvent,
  type RoomPort,
  receiveOffer,
  receivePeerEvent,
  routeClientMessage,
} from "./signaling/session-router.ts";
import {
  newSocketState,
  readSocketState,
  SOCKET_ID,
  type SocketState,
  screenFrame,
  socketDeadline,
} from "./signaling/socket-state.ts";

/** Monitoring view of a room (the `stats` RPC). */
export interface RoomStats {
  readonly sockets: number;
  readonly activeSockets: number;
  readonly openSessions: number;
  /** Refused messages by reason (`refused.<code>`), closes (`closed.<why>`), session and report counts. */
  readonly counters: Readonly<Record<string, number>>;
  readonly reports: readonly StoredReport[];
}

const OPEN = 1;
const REVALIDATE_KEY = "revalidateAt";
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const json = (status: number, code: Parameters<typeof errorBody>[0], message: string) =>
  Response.json(errorBody(code, message), { status });

/**
 * A signaling room: one object per device (named `device:<id>`, see signaling/rooms.ts for why), holding that
 * device's WebSockets through the hibernation API. The class is a thin adapter over named hooks:
 *
 * - `fetch`: the upgrade the Worker forwards after authenticating the device (identity in {@link ROOM_HEADERS}).
 * - `webSocketMessage`: size, rate and validity limits, then {@link routeClientMessage}.
 * - `webSocketClose` / `webSocketError`: frees the address slot; the last socket going abandons unanswered sessions.
 * - `alarm`: the timers: first-message and idle deadlines per socket, session and ticket expiry, and a periodic
 *   re-check of the device's standing in D1. Limits hold even when a socket sends nothing more.
 * - RPC methods for the Worker (tickets, disconnect) and for other rooms (offer, peer events, presence).
 *
 * Objects named `address:<ip>` use only {@link acquireSlot} / {@link releaseSlot}: an exact count of the sockets one
 * address holds across devices, without a binding of its own.
 */
export class SignalingRoom extends DurableObject<EdgeBindings> {
  /** Where the room reads time. Tests move it (through runInDurableObject) to drive the timers. */
  clock: Clock = systemClock;
  /** The registry's relay assignment. Tests substitute it (through runInDurableObject) to see what rooms do with one. */
  relays: typeof assignRelay = assignRelay;
  readonly #store: RoomStore;

  constructor(ctx: DurableObjectState, env: EdgeBindings) {
    super(ctx, env);
    useLogHashKey(env);
    this.#store = new RoomStore(ctx.storage.sql);
    // Answered by the runtime without waking the room; the alarm reads the answer's time for the idle check.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(AUTO_PING_TEXT, AUTO_PONG_TEXT));
  }

  // ---- Upgrade ----------------------------------------------------------------------------------------------------

  /** Accepts the WebSocket the Worker forwards (see edge/routes/signal.ts). */
  override async fetch(request: Request): Promise<Response> {
    const identity = readIdentity(request.headers);
    if (identity === null || !this.#named(deviceRoomName(identity.deviceId))) {
      return json(400, "bad_request", "signaling rooms accept only upgrades forwarded by the edge");
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return json(426, "bad_request", "WebSocket upgrade required");
    }
    if (this.#open().length >= MAX_SOCKETS_PER_DEVICE) {
      this.#store.count("refused.device_socket_limit");
      return json(429, "rate_limited", `at most ${MAX_SOCKETS_PER_DEVICE} signaling sockets per device`);
    }
    const pair = new WebSocketPair();
    const now = this.clock.now();
    const state = newSocketState(identity, now);
    this.ctx.acceptWebSocket(pair[1], [identity.socketId]);
    pair[1].serializeAttachment(state);
    this.#send(pair[1], { v: 1, type: "hello", deviceId: identity.deviceId, limits: HELLO_LIMITS });
    this.#store.count("sockets.accepted");
    await this.#wake(socketDeadline(state, null));
    if (this.ctx.storage.kv.get(REVALIDATE_KEY) === undefined) {
      this.ctx.storage.kv.put(REVALIDATE_KEY, now + REVALIDATE_MS);
      await this.#wake(now + REVALIDATE_MS);
    }
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  // ---- Socket events ----------------------------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = readSocketState(ws.deserializeAttachment());
    if (state === null) {
      this.#close(ws, null, SIGNAL_CLOSE.internal, "internal error", "bad_state");
      return;
    }
    const screened = screenFrame(state, message, this.clock.now());
    if (screened.kind === "close") {
      this.#store.count("refused.too_large");
      this.#close(ws, state, SIGNAL_CLOSE.tooLarge, "message too large", "too_large");
      return;
    }
    if (screened.kind === "refuse")
      return this.#refuse(ws, state, screened.code, screened.text, screened.ref);
    ws.serializeAttachment(state);
    const ref = screened.message.id;
    try {
      await routeClientMessage(
        this.#port(state.deviceId),
        {
          send: (m) => this.#send(ws, m),
          refuse: (code, text) => this.#refuse(ws, this.#state(ws) ?? state, code, text, ref),
        },
        screened.message,
      );
    } catch (error) {
      log("message", "failed", {
        deviceId: state.deviceId,
        error: error instanceof Error ? error.name : "non-error",
      });
      this.#refuse(ws, this.#state(ws) ?? state, "internal", "the edge failed; try again", ref);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // Complete the closing handshake; 1005/1006 only describe what happened and cannot be sent.
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      // Already closed.
    }
    await this.#afterClose(ws, this.#state(ws));
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#store.count("closed.error");
    await this.#afterClose(ws, this.#state(ws));
  }

  // ---- Timers -----------------------------------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    const now = this.clock.now();
    let deviceId: string | null = null;
    for (const ws of this.#open()) {
      const state = this.#state(ws);
      if (state === null) {
        this.#close(ws, null, SIGNAL_CLOSE.internal, "internal error", "bad_state");
        continue;
      }
      deviceId = state.deviceId;
      const autoPong = this.#autoPongAt(ws);
      if (now < socketDeadline(state, autoPong)) continue;
      if (!state.active && autoPong === null) {
        this.#close(
          ws,
          state,
          SIGNAL_CLOSE.firstMessageTimeout,
          "no message in time",
          "first_message_timeout",
        );
      } else {
        this.#close(ws, state, SIGNAL_CLOSE.idleTimeout, "idle", "idle_timeout");
      }
    }
    this.#store.pruneTickets(now);
    expireSessions({ store: this.#store, now: () => now, broadcast: (m) => this.#broadcast(m) });
    if (deviceId !== null) {
      const due = this.ctx.storage.kv.get<number>(REVALIDATE_KEY);
      if (typeof due !== "number" || now >= due) await this.#revalidate(deviceId, now);
    }
    if (this.#open().length === 0) this.ctx.storage.kv.delete(REVALIDATE_KEY);
    await this.#reschedule();
  }

  /** Closes sockets of a device that lost its standing, or that predate a "revoke all tokens". */
  async #revalidate(deviceId: string, now: number): Promise<void> {
    this.ctx.storage.kv.put(REVALIDATE_KEY, now + REVALIDATE_MS);
    let standing: Awaited<ReturnType<typeof deviceStanding>>;
    try {
      standing = await deviceStanding(this.env.DB, deviceId);
    } catch (error) {
      // D1 unreachable: try again next round. Revocation itself disconnects at once; this check is the backstop.
      log("revalidate", "failed", { deviceId, error: error instanceof Error ? error.name : "non-error" });
      return;
    }
    for (const ws of this.#open()) {
      const state = this.#state(ws);
      if (
        standing === null ||
        !standing.active ||
        (state !== null && state.connectedAt < standing.tokensValidAfter)
      ) {
        this.#close(ws, state, SIGNAL_CLOSE.revoked, "credentials revoked", "revoked");
      }
    }
  }

  async #reschedule(): Promise<void> {
    const times: number[] = [];
    const sockets = this.#open();
    for (const ws of sockets) {
      const state = this.#state(ws);
      if (state !== null) times.push(socketDeadline(state, this.#autoPongAt(ws)));
    }
    const expiry = this.#store.nextExpiry();
    if (expiry !== null) times.push(expiry);
    const revalidate = this.ctx.storage.kv.get<number>(REVALIDATE_KEY);
    if (sockets.length > 0 && typeof revalidate === "number") times.push(revalidate);
    if (times.length === 0) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.min(...times));
  }

  /** Makes sure the alarm fires by `at` (an earlier alarm that finds nothing due simply reschedules). */
  async #wake(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  // ---- RPC: Worker --------------------------------------------------------------------------------------------------

  /** Stores a browser ticket's SHA-256 (hex). False when the device holds too many unexpired tickets. */
  issueTicket(deviceId: string, ticketHash: string): { ok: boolean; expiresIn: number } {
    this.#assertNamed(deviceRoomName(deviceId));
    if (!/^[0-9a-f]{64}$/.test(ticketHash)) throw new TypeError("ticket hash must be SHA-256 hex");
    const now = this.clock.now();
    const ok = this.#store.putTicket(ticketHash, now, now + TICKET_TTL_SECS * 1000);
    return { ok, expiresIn: TICKET_TTL_SECS };
  }

  /** Consumes a ticket: its issue time (epoch ms) when it was valid, else null. A ticket works once. */
  redeemTicket(deviceId: string, ticketHash: string): number | null {
    this.#assertNamed(deviceRoomName(deviceId));
    return this.#store.takeTicket(ticketHash, this.clock.now());
  }

  /** Closes every socket of the device at once, voids its tickets and ends its sessions. Returns sockets closed. */
  async disconnect(deviceId: string, reason: DisconnectReason): Promise<number> {
    this.#assertNamed(deviceRoomName(deviceId));
    const sockets = this.#open();
    for (const ws of sockets)
      this.#close(ws, this.#state(ws), SIGNAL_CLOSE.revoked, reason.replace("_", " "), reason);
    this.#store.clearTickets();
    this.ctx.storage.kv.delete(REVALIDATE_KEY);
    await abandonSessions(this.#port(deviceId), "all");
    log("disconnect", "ok", { deviceId, reason, sockets: sockets.length });
    return sockets.length;
  }

  // ---- RPC: other rooms ---------------------------------------------------------------------------------------------

  /** True when the device has an active socket (one that has sent a valid message). */
  isOnline(deviceId: string): boolean {
    this.#assertNamed(deviceRoomName(deviceId));
    return this.#active().length > 0;
  }

  /** True while the socket is open (address rooms ask this before reclaiming a slot). */
  hasSocket(deviceId: string, socketId: string): boolean {
    this.#assertNamed(deviceRoomName(deviceId));
    return this.ctx.getWebSockets(socketId).some((ws) => ws.readyState === OPEN);
  }

  /** A client's room offers a session to this (host) device. False when the host is offline. */
  async offer(hostId: string, offer: OfferInput): Promise<boolean> {
    this.#assertNamed(deviceRoomName(hostId));
    return receiveOffer(this.#port(hostId), offer);
  }

  /** The other side of a session tells this device something. */
  peerEvent(deviceId: string, from: string, sessionId: string, event: PeerEvent): boolean {
    this.#assertNamed(deviceRoomName(deviceId));
    return receivePeerEvent(this.#port(deviceId), from, sessionId, event);
  }

  /** Counters and recent reports, for monitoring and tests. */
  stats(): RoomStats {
    return {
      sockets: this.#open().length,
      activeSockets: this.#active().length,
      openSessions: this.#store.openSessions(),
      counters: this.#store.counters(),
      reports: this.#store.reports(),
    };
  }

  // ---- RPC: address rooms -------------------------------------------------------------------------------------------

  /** Takes one of `limit` socket slots of `address` (see {@link acquireAddressSlot}). */
  async acquireSlot(address: string, socketId: string, deviceId: string, limit: number): Promise<boolean> {
    this.#assertNamed(addressRoomName(address));
    return acquireAddressSlot(this.#store, this.env, this.clock.now(), { socketId, deviceId }, limit);
  }

  /** Frees a slot (idempotent). */
  releaseSlot(address: string, socketId: string): void {
    this.#assertNamed(addressRoomName(address));
    this.#store.deleteSlot(socketId);
  }

  // ---- Internals ----------------------------------------------------------------------------------------------------

  #named(name: string): boolean {
    return this.ctx.id.equals(this.env.SIGNALING.idFromName(name));
  }

  #assertNamed(name: string): void {
    if (!this.#named(name))
      throw new Error("wrong signaling room for this call: address rooms by their name");
  }

  #open(): WebSocket[] {
    return this.ctx.getWebSockets().filter((ws) => ws.readyState === OPEN);
  }

  #active(): WebSocket[] {
    return this.#open().filter((ws) => this.#state(ws)?.active === true || this.#autoPongAt(ws) !== null);
  }

  #state(ws: WebSocket): SocketState | null {
    return readSocketState(ws.deserializeAttachment());
  }

  #autoPongAt(ws: WebSocket): number | null {
    return this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? null;
  }

  #send(ws: WebSocket, message: ServerMessage): void {
    try {
      ws.send(JSON.stringify(message));
    } catch {
      // The socket closed meanwhile; its close event cleans up.
    }
  }

  #broadcast(message: ServerMessage): number {
    const sockets = this.#active();
    for (const ws of sockets) this.#send(ws, message);
    return sockets.length;
  }

  /** Answers a refused message with `error`, counts it, and closes the socket after too many in a row. */
  #refuse(ws: WebSocket, state: SocketState, code: SignalErrorCode, text: string, ref?: string): void {
    this.#store.count(`refused.${code}`);
    state.refusals++;
    if (state.refusals >= SIGNAL_LIMITS.maxConsecutiveRefusals) {
      this.#close(ws, state, SIGNAL_CLOSE.policy, "too many refused messages", "policy");
      return;
    }
    ws.serializeAttachment(state);
    this.#send(ws, { v: 1, type: "error", code, message: text, ...(ref === undefined ? {} : { ref }) });
  }

  /** Closes a socket from our side, counts why, and frees its address slot. */
  #close(ws: WebSocket, state: SocketState | null, code: number, reason: string, counter: string): void {
    this.#store.count(`closed.${counter}`);
    if (counter !== "idle_timeout" && counter !== "first_message_timeout")
      log("socket", "closed", { deviceId: state?.deviceId ?? null, why: counter });
    try {
      ws.close(code, reason);
    } catch {
      // Already closing.
    }
    if (state !== null) this.ctx.waitUntil(this.#release(state));
  }

  async #release(state: SocketState): Promise<void> {
    try {
      await this.env.SIGNALING.get(this.env.SIGNALING.idFromName(addressRoomName(state.address))).releaseSlot(
        state.address,
        state.socketId,
      );
    } catch {
      // The address room reclaims slots of closed sockets by itself (acquireSlot).
    }
  }

  async #afterClose(ws: WebSocket, state: SocketState | null): Promise<void> {
    if (state !== null) await this.#release(state);
    const others = this.#open().filter((other) => other !== ws);
    if (state !== null && others.length === 0) {
      // The device went offline: a client waiting for it should not wait for the timeout.
      await abandonSessions(this.#port(state.deviceId), "unaccepted");
      this.ctx.storage.kv.delete(REVALIDATE_KEY);
    }
  }

  #port(deviceId: string): RoomPort {
    return {
      env: this.env,
      store: this.#store,
      deviceId,
      now: () => this.clock.now(),
      random,
      broadcast: (message) => this.#broadcast(message),
      wake: (at) => this.#wake(at),
      closeAll: (code, reason, counter) => {
        for (const ws of this.#open()) this.#close(ws, this.#state(ws), code, reason, counter);
      },
      offer: (hostId, offer) =>
        deviceRoom(this.env, hostId)
          .offer(hostId, offer)
          .catch(() => false),
      tellPeer: (peerId, sessionId, event) =>
        deviceRoom(this.env, peerId)
          .peerEvent(peerId, deviceId, sessionId, event)
          .catch(() => false),
      assignRelay: async (request) => {
        const config = loadConfig(this.env);
        if (!config.ok) return null;
        return this.relays(this.env, config.config, request, this.clock.now());
      },
      isOnline: (id) =>
        deviceRoom(this.env, id)
          .isOnline(id)
          .catch(() => false),
    };
  }
}

/** The identity the Worker put on a forwarded upgrade, checked from unknown input. */
function readIdentity(
  headers: Headers,
): Pick<SocketState, "socketId" | "deviceId" | "userId" | "address" | "auth"> | null {
  const deviceId = headers.get(ROOM_HEADERS.deviceId);
  const userId = headers.get(ROOM_HEADERS.userId);
  const socketId = headers.get(ROOM_HEADERS.socketId);
  const address = headers.get(ROOM_HEADERS.address);
  const auth = headers.get(ROOM_HEADERS.auth);
  if (!isDeviceId(deviceId) || userId === null || userId.length === 0 || userId.length > 64) return null;
  if (socketId === null || !SOCKET_ID.test(socketId)) return null;
  if (address === null || address.length === 0 || address.length > 64) return null;
  if (auth !== "token" && auth !== "ticket") return null;
  return { deviceId, userId, socketId, address, auth };
}

function log(event: string, outcome: string, fields: LogFields): void {
  logEvent(outcome === "failed" ? "warn" : "info", "signaling-room", event, outcome, fields);
}
