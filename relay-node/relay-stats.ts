import { RELAY_DROP_REASONS, type RelayDropReason } from "../protocol/relay/registry-messages.ts";
import { RejectReason } from "../protocol/wire/relay-frames.ts";

/**
 * The relay's counters as plain numbers: the forwarding path bumps them with no allocation and no label lookup, and
 * the Prometheus registry and the heartbeat read them (after tailscale derp: every drop has a named reason that
 * doubles as the metric label; the names are RELAY_DROP_REASONS, shared with the edge).
 */

/** Index of each drop reason in {@link RelayStats.drops}. */
export const DROP: { readonly [R in RelayDropReason]: number } = Object.freeze(
  Object.fromEntries(RELAY_DROP_REASONS.map((reason, index) => [reason, index])) as {
    [R in RelayDropReason]: number;
  },
);

/** Metric label of each LEASE_REJECT reason (snake case of the RejectReason key). */
export const REJECT_LABELS: ReadonlyMap<RejectReason, string> = new Map(
  Object.entries(RejectReason).map(([name, code]) => [
    code,
    name.replace(/[A-Z]/g, (c, at: number) => `${at > 0 ? "_" : ""}${c.toLowerCase()}`),
  ]),
);

/** The drop counted when a LEASE_PRESENT is refused for `reason`. */
export function dropForReject(reason: RejectReason): number {
  switch (reason) {
    case RejectReason.BadCookie:
      return DROP.bad_cookie;
    case RejectReason.SessionFull:
      return DROP.session_table_full;
    case RejectReason.Overloaded:
      return DROP.overloaded;
    case RejectReason.AddressBlocked:
      return DROP.address_blocked;
    case RejectReason.RateLimited:
      return DROP.rate_limited_ip;
    case RejectReason.UnknownSession:
      return DROP.unknown_session;
    case RejectReason.UnsupportedVersion:
      return DROP.unsupported_version;
    default:
      return DROP.invalid_lease;
  }
}

/** Counters since the process started. */
export class RelayStats {
  forwardedPackets = 0;
  forwardedBytes = 0;
  /** Indexed by {@link DROP}. */
  readonly drops = new Float64Array(RELAY_DROP_REASONS.length);
  /** LEASE_REJECTs sent, indexed by RejectReason code. */
  readonly rejects = new Float64Array(Math.max(...Object.values(RejectReason)) + 1);
  leasesAccepted = 0;
  /** Bindings removed, by cause (a small fixed set, so a record is fine off the hot path). */
  readonly unbinds: Record<"expired" | "idle" | "revoked" | "blocked" | "replaced", number> = {
    expired: 0,
    idle: 0,
    revoked: 0,
    blocked: 0,
    replaced: 0,
  };
  readonly startedAtMs: number;

  constructor(nowMs: number) {
    this.startedAtMs = nowMs;
  }

  /** Counts one drop (`index` from {@link DROP}). */
  drop(index: number): void {
    this.drops[index] = (this.drops[index] ?? 0) + 1;
  }

  /** Counts one LEASE_REJECT sent. */
  reject(reason: RejectReason): void {
    this.rejects[reason] = (this.rejects[reason] ?? 0) + 1;
  }

  /** Drops as the heartbeat reports them: every reason, by name. */
  dropsByReason(): Record<RelayDropReason, number> {
    const out = {} as Record<RelayDropReason, number>;
    for (const [index, reason] of RELAY_DROP_REASONS.entries()) out[reason] = this.drops[index] ?? 0;
    return out;
  }
}
