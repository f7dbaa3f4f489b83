import { type DisconnectReason, deviceRoom } from "../../durable/signaling/rooms.ts";
import { isDeviceId } from "../../protocol/identity/device-id.ts";
import type { EdgeBindings, EdgeConfig } from "../env.ts";
import { type LogFields, logEvent } from "../log.ts";
import { randomToken } from "../security/tokens-util.ts";

/**
 * The edge's side of signaling outside the rooms: browser tickets, the URL clients are given, and disconnecting a
 * device's sockets when it loses its standing (DESIGN.md: Signaling; "a revoked device or suspended user is
 * disconnected at once").
 */

export type { DisconnectReason };

/** The path of the signaling WebSocket. */
export const SIGNAL_PATH = "/v1/signal";

const TICKET_PREFIX = "st1.";
const TICKET = /^st1\.(d_[a-z2-7]{26})\.[A-Za-z0-9_-]{43}$/;

/**
 * A new browser ticket for `deviceId`: `st1.<deviceId>.<32 random bytes, base64url>`. The device id in the clear
 * tells the Worker which room holds the ticket's hash; the random part is the secret. Only its SHA-256 is stored.
 */
export function newTicket(deviceId: string, random: (n: number) => Uint8Array): string {
  return `${TICKET_PREFIX}${deviceId}.${randomToken(random, 32)}`;
}

/** The device a ticket names, or null when it is not a well-formed ticket. */
export function ticketDevice(ticket: string): string | null {
  const match = TICKET.exec(ticket);
  const deviceId = match?.[1];
  return deviceId !== undefined && isDeviceId(deviceId) ? deviceId : null;
}

/**
 * The signaling URL handed to clients, built from the issuer: https becomes wss. A plain http issuer gives ws://
 * only in development; production never hands out (or builds) a ws:// URL.
 */
export function signalUrl(config: Pick<EdgeConfig, "issuer" | "environment">): string {
  const url = new URL(config.issuer);
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:" && config.environment !== "production") url.protocol = "ws:";
  else throw new Error("signaling needs an https issuer in production (WAVRY_ISSUER)");
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${SIGNAL_PATH}`;
  url.search = "";
  url.hash = "";
  return url.toString();
}

function logFailure(fields: LogFields): void {
  logEvent("warn", "signaling", "disconnect", "failed", fields);
}

/**
 * Closes every signaling socket of `deviceId` at once (close code 4003), voids its tickets and ends its sessions.
 * Never throws: revocation is already committed in D1 when this runs, and a room that cannot be reached now still
 * closes the sockets itself at its next standing check. Returns the sockets closed, or null when the room failed.
 */
export async function disconnectDevice(
  env: Pick<EdgeBindings, "SIGNALING">,
  deviceId: string,
  reason: DisconnectReason,
): Promise<number | null> {
  if (!isDeviceId(deviceId)) return 0;
  try {
    return await deviceRoom(env, deviceId).disconnect(deviceId, reason);
  } catch (error) {
    logFailure({ reason, deviceId, error: error instanceof Error ? error.name : "non-error" });
    return null;
  }
}

/**
 * Disconnects every device of `userId` (revoked ones included: a socket opened before the revocation may still be
 * up if an earlier disconnect failed). Never throws. Returns the sockets closed, or null when a lookup or room failed.
 */
export async function disconnectUser(
  env: Pick<EdgeBindings, "SIGNALING" | "DB">,
  userId: string,
  reason: DisconnectReason,
): Promise<number | null> {
  try {
    const { results } = await env.DB.prepare("SELECT id FROM devices WHERE user_id = ?1")
      .bind(userId)
      .all<{ id: string }>();
    const closed = await Promise.all(results.map((row) => disconnectDevice(env, row.id, reason)));
    return closed.some((n) => n === null) ? null : closed.reduce<number>((sum, n) => sum + (n ?? 0), 0);
  } catch (error) {
    logFailure({ reason, userId, error: error instanceof Error ? error.name : "non-error" });
    return null;
  }
}
