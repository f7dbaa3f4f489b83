import type { EdgeBindings } from "../../edge/env.ts";

/**
 * Naming and addressing of signaling rooms, shared by the Worker routes and the rooms themselves.
 *
 * One room per device (`device:<deviceId>`): a device is the unit everything is addressed by (peers, presence,
 * revocation, the per-device socket limit), so routing a message to a device is one lookup by name, every decision
 * about a device is made in one place one event at a time, and load spreads over as many objects as there are
 * devices instead of funnelling through a room per user or a global one. A grant crosses users, so a room per user
 * would not even hold both ends of every session.
 *
 * The same class also serves per-address socket counters under `address:<ip>`, so the per-address limit is exact
 * across devices without a new binding (see signaling-room.ts).
 */

/** The room name of a device. */
export function deviceRoomName(deviceId: string): string {
  return `device:${deviceId}`;
}

/** The room name of a client address's socket counter. */
export function addressRoomName(address: string): string {
  return `address:${address}`;
}

/** The stub of a device's room. */
export function deviceRoom(env: Pick<EdgeBindings, "SIGNALING">, deviceId: string) {
  return env.SIGNALING.get(env.SIGNALING.idFromName(deviceRoomName(deviceId)));
}

/** The stub of an address's socket counter. */
export function addressRoom(env: Pick<EdgeBindings, "SIGNALING">, address: string) {
  return env.SIGNALING.get(env.SIGNALING.idFromName(addressRoomName(address)));
}

/**
 * Headers the Worker sets on the upgrade it forwards to a room: the identity it authenticated. A room is reachable
 * only through its binding, and the Worker builds the forwarded request from scratch (nothing of the client's
 * headers is copied), so a client can never supply these.
 */
export const ROOM_HEADERS = {
  deviceId: "x-wavry-room-device",
  userId: "x-wavry-room-user",
  socketId: "x-wavry-room-socket",
  address: "x-wavry-room-address",
  auth: "x-wavry-room-auth",
} as const;

/** Sockets one device may hold open at once (a reconnect overlaps the old socket briefly). */
export const MAX_SOCKETS_PER_DEVICE = 4;
/** Sockets one client address may hold open at once, across devices (NAT puts households behind one address). */
export const MAX_SOCKETS_PER_ADDRESS = 32;
/** How long a browser ticket lives (DESIGN.md: at most 60 s). */
export const TICKET_TTL_SECS = 30;
/** How often a room re-reads its device's standing in D1 while sockets are open (a missed disconnect heals). */
export const REVALIDATE_MS = 5 * 60_000;

/** Why a device's sockets are closed from outside. */
export type DisconnectReason = "device_revoked" | "user_suspended" | "tokens_revoked";

/** A time source; rooms read time only through one, so tests can move it. */
export interface Clock {
  now(): number;
}

/** Wall-clock time. */
export const systemClock: Clock = { now: () => Date.now() };
