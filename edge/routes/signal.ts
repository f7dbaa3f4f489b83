import { type Context, Hono } from "hono";
import { deviceStanding } from "../../durable/signaling/reachability.ts";
import {
  addressRoom,
  deviceRoom,
  MAX_SOCKETS_PER_ADDRESS,
  ROOM_HEADERS,
} from "../../durable/signaling/rooms.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError, errorBody } from "../errors.ts";
import { requireDevice } from "../middleware/auth.ts";
import { base64urlEncode, sha256Hex } from "../security/tokens-util.ts";
import { newTicket, signalUrl, ticketDevice } from "../services/signaling.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** Who an upgrade was authenticated as. */
interface SocketIdentity {
  readonly deviceId: string;
  readonly userId: string;
  readonly auth: "token" | "ticket";
}

const badTicket = () =>
  new ApiError(
    401,
    "invalid_token",
    "invalid, used or expired ticket; get a new one from POST /v1/signal/tickets",
  );

function deviceOf(c: Context<AppEnv>): { deviceId: string; userId: string } {
  const principal = c.get("principal");
  if (principal.kind !== "device") throw new ApiError(403, "forbidden", "a device token is required");
  return principal;
}

/**
 * Authenticates an upgrade before anything else happens: a device access token in `Authorization` (endpoints), or
 * a single-use `?ticket=` (browsers, which cannot set headers on a WebSocket). Not both.
 */
async function authenticate(c: Context<AppEnv>): Promise<SocketIdentity> {
  const ticket = c.req.query("ticket");
  if (ticket === undefined) {
    await requireDevice()(c, async () => {});
    return { ...deviceOf(c), auth: "token" };
  }
  if (c.req.header("authorization") !== undefined) {
    throw new ApiError(400, "bad_request", "send either a token or a ticket, not both");
  }
  const deviceId = ticketDevice(ticket);
  if (deviceId === null) throw badTicket();
  const issuedAt = await deviceRoom(c.env, deviceId).redeemTicket(deviceId, await sha256Hex(ticket));
  if (issuedAt === null) throw badTicket();
  // The ticket is spent either way; the device must still be in good standing now, and the ticket newer than
  // any "revoke all tokens".
  const standing = await deviceStanding(c.env.DB, deviceId);
  if (standing === null || !standing.active || issuedAt < standing.tokensValidAfter) throw badTicket();
  return { deviceId, userId: standing.userId, auth: "ticket" };
}

/**
 * Signaling routes under /v1/signal (DESIGN.md: Signaling):
 *
 * - `GET /` upgrades to the signaling WebSocket. Order: not an upgrade → 426; authentication (token or ticket) →
 *   401; a browser Origin that is not allowed → 403; the per-address socket limit → 429; then the upgrade goes to
 *   the device's room, which applies the per-device limit (429) and accepts the socket.
 * - `POST /tickets` (device token): a single-use ticket for a browser, valid `TICKET_TTL_SECS` (30 s).
 * - `GET /info`: the URL to connect to (wss:// in production).
 */
export function signalRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/info", (c) => {
    try {
      return c.json({ url: signalUrl(c.get("config")) });
    } catch {
      throw new ApiError(
        503,
        "configuration_error",
        "signaling needs an https issuer in production (WAVRY_ISSUER)",
      );
    }
  });

  app.post("/tickets", requireDevice(), async (c) => {
    const { deviceId } = deviceOf(c);
    const ticket = newTicket(deviceId, random);
    const issued = await deviceRoom(c.env, deviceId).issueTicket(deviceId, await sha256Hex(ticket));
    if (!issued.ok)
      throw new ApiError(429, "rate_limited", "too many unused tickets; use one or wait a minute");
    return c.json({ ticket, expiresIn: issued.expiresIn });
  });

  app.get("/", async (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json(errorBody("upgrade_required", "this endpoint speaks WebSocket: send an upgrade"), 426, {
        Upgrade: "websocket",
      });
    }
    const who = await authenticate(c);
    // Tokens, not cookies, authenticate here, so a foreign page gains nothing by itself; refusing origins we did not
    // allow still keeps a leaked ticket from being used by another site.
    const origin = c.req.header("origin");
    if (origin !== undefined && !c.get("config").allowedOrigins.includes(origin)) {
      throw new ApiError(
        403,
        "forbidden",
        "this origin may not open signaling sockets (WAVRY_ALLOWED_ORIGINS)",
      );
    }

    const address = c.get("clientAddress") ?? "unknown";
    const socketId = base64urlEncode(random(16));
    const slots = addressRoom(c.env, address);
    let slot: boolean;
    try {
      slot = await slots.acquireSlot(address, socketId, who.deviceId, MAX_SOCKETS_PER_ADDRESS);
    } catch {
      throw new ApiError(503, "unavailable", "signaling is unavailable; try again shortly");
    }
    if (!slot) {
      throw new ApiError(
        429,
        "rate_limited",
        `at most ${MAX_SOCKETS_PER_ADDRESS} signaling sockets per address`,
      );
    }

    // A new request, not the client's: nothing the client sent reaches the room, so identity headers it might have
    // added are dropped, and only the Worker's own reach it.
    const forwarded = new Headers({
      Upgrade: "websocket",
      [ROOM_HEADERS.deviceId]: who.deviceId,
      [ROOM_HEADERS.userId]: who.userId,
      [ROOM_HEADERS.socketId]: socketId,
      [ROOM_HEADERS.address]: address,
      [ROOM_HEADERS.auth]: who.auth,
    });
    let response: Response;
    try {
      response = await deviceRoom(c.env, who.deviceId).fetch("https://signaling-room.internal/connect", {
        headers: forwarded,
      });
    } catch {
      await slots.releaseSlot(address, socketId).catch(() => undefined);
      throw new ApiError(503, "unavailable", "signaling is unavailable; try again shortly");
    }
    if (response.status !== 101 || response.webSocket === null) {
      await slots.releaseSlot(address, socketId).catch(() => undefined);
      // Re-created so the app's middleware can add its headers (a fetched response's headers are immutable).
      return new Response(response.body, { status: response.status, headers: response.headers });
    }
    return new Response(null, { status: 101, webSocket: response.webSocket });
  });

  return app;
}
