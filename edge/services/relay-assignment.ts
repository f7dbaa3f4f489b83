import type { EdgeBindings, EdgeConfig } from "../env.ts";

/** One peer of a session that needs a relay. */
export interface RelayPeer {
  readonly deviceId: string;
  readonly role: "host" | "client";
  /** base64url Ed25519 public key: the lease's confirmation key. */
  readonly ed25519PublicKey: string;
}

/** A relay chosen for a session, with one signed lease per peer. */
export interface RelayAssignment {
  readonly relayId: string;
  /** host:port peers send UDP to. */
  readonly publicAddr: string;
  readonly leases: readonly {
    readonly deviceId: string;
    readonly role: "host" | "client";
    readonly lease: string;
  }[];
  /** Seconds since the epoch when the leases expire. */
  readonly expiresAt: number;
}

/**
 * Chooses a relay for a session (healthy, assignable, lightly loaded, in `region` when possible) and mints one
 * lease per peer. Returns null when no relay can be assigned. Placeholder until the registry lands (issue 4).
 */
export async function assignRelay(
  _env: EdgeBindings,
  _config: EdgeConfig,
  _request: {
    readonly sessionId: Uint8Array;
    readonly region: string | null;
    readonly peers: readonly RelayPeer[];
  },
  _now: number,
): Promise<RelayAssignment | null> {
  return null;
}
