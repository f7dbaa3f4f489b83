import { RejectReason } from "../protocol/wire/relay-frames.ts";
import type { AcceptedLease } from "./lease-verifier.ts";
import type { PeerBinding } from "./session-table.ts";

/**
 * What a verified lease does to a role of a session (DESIGN.md: "Renewal needs a fresh lease"). The rules:
 *
 * - role free, or its binding expired -> bind this address;
 * - same address, same lease (jti) -> nothing changes, ACK again (the first ACK may have been lost);
 * - same address, a newer lease of the same device -> renew (new expiry and bandwidth);
 * - same address, an older lease of the same device -> keep the newer binding, ACK again;
 * - another address, the same device, a FRESH lease (another jti, issued no earlier than the bound one) -> the
 *   binding moves to the new address (NAT rebinding, network change): the proof over this address's cookie shows
 *   the device's confirmation key is there now;
 * - another address with the bound lease itself, or an older one -> SESSION_FULL: the role is held; a device that
 *   moved fetches a fresh lease;
 * - another device (different `sub`) while the role is bound -> SESSION_FULL: a third peer never displaces one.
 */
export type BindingDecision =
  | { readonly kind: "bind" }
  | { readonly kind: "keep" }
  | { readonly kind: "renew" }
  | { readonly kind: "move" }
  | { readonly kind: "reject"; readonly reason: RejectReason };

const BIND: BindingDecision = { kind: "bind" };
const KEEP: BindingDecision = { kind: "keep" };
const RENEW: BindingDecision = { kind: "renew" };
const MOVE: BindingDecision = { kind: "move" };
const HELD: BindingDecision = { kind: "reject", reason: RejectReason.SessionFull };

/** Applies the rules above to the role's current binding and a verified lease from `address`:`port`. */
export function decideBinding(
  current: PeerBinding | null,
  lease: AcceptedLease,
  address: string,
  port: number,
  nowMs: number,
): BindingDecision {
  if (current === null || nowMs >= current.expiresAtMs) return BIND;
  if (current.lease.sub !== lease.sub) return HELD;
  const fresh = lease.jti !== current.lease.jti && lease.iatSecs >= current.lease.iatSecs;
  if (current.is(address, port)) return fresh ? RENEW : KEEP;
  return fresh ? MOVE : HELD;
}
