/**
 * Who may reach whom (DESIGN.md: Signaling), read from D1. A device may reach a host device when both are active
 * (not revoked, owner not suspended) and either they have the same owner or the host's owner granted the device
 * access (an active grant). Consent is automatic inside that set; outside it the edge forwards nothing.
 *
 * The queries never touch a host the asker may not reach beyond this one lookup, so the time and the answer for a
 * device that does not exist, one the asker may not reach and one that is offline stay the same to the asker.
 */

/** A device's public keys as enrolled (base64url). */
export interface DeviceKeys {
  readonly deviceId: string;
  readonly x25519PublicKey: string;
  readonly ed25519PublicKey: string;
}

/** The asking device's own standing. */
export interface Standing {
  readonly userId: string;
  /** Not revoked and owner active. */
  readonly active: boolean;
  /** Access tokens and tickets issued before this instant are void (epoch ms). */
  readonly tokensValidAfter: number;
  readonly keys: DeviceKeys;
}

const REACHABLE = `
  h.revoked_at IS NULL AND hu.status = 'active'
  AND (h.user_id = c.user_id OR EXISTS (
    SELECT 1 FROM grants g WHERE g.host_device_id = h.id AND g.grantee_device_id = c.id AND g.revoked_at IS NULL))`;

/** The standing of `deviceId`, or null when it does not exist. */
export async function deviceStanding(db: D1Database, deviceId: string): Promise<Standing | null> {
  const row = await db
    .prepare(
      `SELECT d.user_id, d.revoked_at, d.x25519_public_key, d.ed25519_public_key, u.status, u.tokens_valid_after
         FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?1`,
    )
    .bind(deviceId)
    .first<{
      user_id: string;
      revoked_at: number | null;
      x25519_public_key: string;
      ed25519_public_key: string;
      status: string;
      tokens_valid_after: number;
    }>();
  if (row === null) return null;
  return {
    userId: row.user_id,
    active: row.revoked_at === null && row.status === "active",
    tokensValidAfter: row.tokens_valid_after,
    keys: { deviceId, x25519PublicKey: row.x25519_public_key, ed25519PublicKey: row.ed25519_public_key },
  };
}

/** The host's keys when `clientId` may reach `hostId` (both active), else null. */
export async function reachableHost(
  db: D1Database,
  clientId: string,
  hostId: string,
): Promise<DeviceKeys | null> {
  const row = await db
    .prepare(
      `SELECT h.id, h.x25519_public_key, h.ed25519_public_key
         FROM devices c JOIN users cu ON cu.id = c.user_id
         JOIN devices h ON h.id = ?2 JOIN users hu ON hu.id = h.user_id
        WHERE c.id = ?1 AND c.revoked_at IS NULL AND cu.status = 'active' AND ${REACHABLE}`,
    )
    .bind(clientId, hostId)
    .first<{ id: string; x25519_public_key: string; ed25519_public_key: string }>();
  return row === null
    ? null
    : { deviceId: row.id, x25519PublicKey: row.x25519_public_key, ed25519PublicKey: row.ed25519_public_key };
}

/** The subset of `deviceIds` that `clientId` may reach (order not kept). */
export async function reachableAmong(
  db: D1Database,
  clientId: string,
  deviceIds: readonly string[],
): Promise<Set<string>> {
  if (deviceIds.length === 0) return new Set();
  const { results } = await db
    .prepare(
      `SELECT h.id FROM devices c JOIN users cu ON cu.id = c.user_id
         JOIN devices h ON h.id IN (SELECT value FROM json_each(?2)) JOIN users hu ON hu.id = h.user_id
        WHERE c.id = ?1 AND c.revoked_at IS NULL AND cu.status = 'active' AND ${REACHABLE}`,
    )
    .bind(clientId, JSON.stringify(deviceIds))
    .all<{ id: string }>();
  return new Set(results.map((r) => r.id));
}
