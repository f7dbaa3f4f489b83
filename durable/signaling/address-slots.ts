import type { EdgeBindings } from "../../edge/env.ts";
import { SIGNAL_LIMITS } from "../../protocol/signaling/messages.ts";
import type { RoomStore } from "./room-store.ts";
import { deviceRoom } from "./rooms.ts";

/**
 * The per-address socket count, kept in the room named for the address: one slot per open socket, taken by the
 * Worker before it forwards an upgrade and freed by the device's room when the socket closes. Exact across devices
 * and isolates, because every decision for one address is made in its one room.
 *
 * At the limit, slots whose socket is gone (a device room that was reset never reported the close) are reclaimed
 * first, by asking each device room whether the socket is still open. A slot younger than the first-message timeout
 * is never reclaimed: its socket may still be on its way to its room.
 */
export async function acquireAddressSlot(
  store: RoomStore,
  env: Pick<EdgeBindings, "SIGNALING">,
  now: number,
  slot: { readonly socketId: string; readonly deviceId: string },
  limit: number,
): Promise<boolean> {
  if (store.slots().length >= limit) {
    const settled = now - SIGNAL_LIMITS.firstMessageTimeoutSecs * 1000;
    const old = store.slots().filter((s) => s.createdAt <= settled);
    const alive = await Promise.all(
      old.map((s) =>
        deviceRoom(env, s.deviceId)
          .hasSocket(s.deviceId, s.socketId)
          // A room that cannot answer keeps its slot: failing closed on the limit.
          .catch(() => true),
      ),
    );
    old.forEach((s, i) => {
      if (alive[i] === false) store.deleteSlot(s.socketId);
    });
    // Re-read: other acquisitions ran while we waited.
    if (store.slots().length >= limit) return false;
  }
  store.putSlot(slot.socketId, slot.deviceId, now);
  return true;
}
