import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { RandomSource } from "../../protocol/crypto/backend.ts";
import { randomBytes } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { deviceFingerprint } from "../../protocol/identity/device-id.ts";
import { ENROLLMENT_CODE_CHARS, formatEnrollmentCode } from "../../protocol/identity/device-proofs.ts";
import * as schema from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { base64urlDecode, base64urlEncode, randomToken, sha256Hex } from "../security/tokens-util.ts";

/**
 * Device records: enrollment, enrollment codes, token challenges, revocation and grants (DESIGN.md: Identity).
 * The routes in routes/devices.ts validate input and check proofs; this module owns every query, and makes each
 * single-use step (an enrollment code, a challenge) one conditional write whose change count decides.
 */

/** Active (not revoked) devices one account may hold. */
export const MAX_DEVICES_PER_USER = 50;
/** Active grants one host device may hand out. */
export const MAX_GRANTS_PER_HOST = 100;
/** Unused, unexpired enrollment codes one account may hold at once. */
export const MAX_OPEN_ENROLLMENT_CODES = 10;
/** An enrollment code is typed on a headless host soon after it is created. */
export const ENROLLMENT_CODE_TTL_MS = 10 * 60_000;
/** A device answers a challenge at once; a minute covers a slow network. */
export const CHALLENGE_TTL_MS = 60_000;
/** Random bytes a device signs per challenge. */
export const CHALLENGE_BYTES = 32;

/** A device row as the routes use it (keys base64url, times epoch ms). */
export type DeviceRecord = typeof schema.devices.$inferSelect;

/** The device fields stored at enrollment. */
export interface NewDevice {
  readonly id: string;
  readonly name: string;
  readonly x25519PublicKey: string;
  readonly ed25519PublicKey: string;
}

/** A drizzle handle over the edge's D1 schema. */
export function orm(db: D1Database) {
  return drizzle(db, { schema });
}

/** The device with this id, revoked or not, or null. */
export async function findDevice(db: D1Database, deviceId: string): Promise<DeviceRecord | null> {
  const row = await orm(db).select().from(schema.devices).where(eq(schema.devices.id, deviceId)).get();
  return row ?? null;
}

/**
 * Revokes a device: its tokens stop working (requireDevice reads revoked_at), it can no longer get a challenge or
 * redeem an outstanding one, and every grant from or to it ends. Returns false when it was already revoked or does
 * not exist. One batch, so a revoked device never keeps a live grant.
 */
export async function revokeDevice(db: D1Database, deviceId: string, now: number): Promise<boolean> {
  const d = orm(db);
  const [device] = await d.batch([
    d
      .update(schema.devices)
      .set({ revokedAt: now })
      .where(and(eq(schema.devices.id, deviceId), isNull(schema.devices.revokedAt))),
    d
      .update(schema.grants)
      .set({ revokedAt: now })
      .where(
        and(
          isNull(schema.grants.revokedAt),
          sql`(${schema.grants.hostDeviceId} = ${deviceId} OR ${schema.grants.granteeDeviceId} = ${deviceId})`,
        ),
      ),
    d
      .update(schema.deviceChallenges)
      .set({ usedAt: now })
      .where(and(eq(schema.deviceChallenges.deviceId, deviceId), isNull(schema.deviceChallenges.usedAt))),
  ]);
  return device.meta.changes > 0;
}

/** The public view of a device for its owner. */
export function deviceView(device: DeviceRecord) {
  return {
    deviceId: device.id,
    name: device.name,
    fingerprint: fingerprintOf(device),
    x25519PublicKey: device.x25519PublicKey,
    ed25519PublicKey: device.ed25519PublicKey,
    createdAt: device.createdAt,
    lastSeenAt: device.lastSeenAt,
    revoked: device.revokedAt !== null,
  };
}

/** The fingerprint of a stored device (its keys were checked at enrollment). */
export function fingerprintOf(device: Pick<DeviceRecord, "x25519PublicKey" | "ed25519PublicKey">): string {
  const x = base64urlDecode(device.x25519PublicKey);
  const ed = base64urlDecode(device.ed25519PublicKey);
  if (x === null || ed === null) throw new Error("stored device key is not base64url");
  return deviceFingerprint(x, ed);
}

/** The p of Curve25519, little-endian: 2^255 - 19. */
const P_LAST = 0x7f;
const P_FIRST = 0xed;
// Any scalar works: X25519 clamps it to a multiple of the cofactor, so every low-order point maps to zero.
const PROBE_SCALAR = new Uint8Array(32).fill(0x5a);

/**
 * True for an X25519 public key a peer could run Noise with: canonical (top bit clear, u < p, so no key has two
 * spellings and hence two device ids) and not of low order (which would make every DH with it all zeros).
 */
export function isUsableX25519PublicKey(key: Uint8Array): boolean {
  if (key.length !== 32 || ((key[31] as number) & 0x80) !== 0) return false;
  let allMax = key[31] === P_LAST && (key[0] as number) >= P_FIRST;
  for (let i = 1; i < 31 && allMax; i++) allMax = key[i] === 0xff;
  if (allMax) return false;
  try {
    nobleBackend.x25519(PROBE_SCALAR, key);
    return true;
  } catch {
    return false;
  }
}

const conflict = (message: string) => new ApiError(409, "conflict", message);
const duplicateKey = () => conflict("these device keys are already enrolled");
const deviceLimit = () => conflict(`device limit reached (${MAX_DEVICES_PER_USER}); revoke a device first`);

function isUniqueViolation(error: unknown): boolean {
  return (
    error instanceof Error &&
    /UNIQUE constraint failed/i.test(`${error.message} ${String(error.cause ?? "")}`)
  );
}

/** Throws 409 when either public key (or the derived id) is already enrolled, revoked devices included. */
async function refuseKnownKeys(db: D1Database, device: NewDevice): Promise<void> {
  // x25519_public_key has no unique index; this read keeps one Noise identity from appearing under two ids.
  const hit = await db
    .prepare(
      "SELECT 1 AS hit FROM devices WHERE id = ?1 OR ed25519_public_key = ?2 OR x25519_public_key = ?3 LIMIT 1",
    )
    .bind(device.id, device.ed25519PublicKey, device.x25519PublicKey)
    .first<{ hit: number }>();
  if (hit !== null) throw duplicateKey();
}

async function insertDevice(db: D1Database, userId: string, device: NewDevice, now: number, capped: boolean) {
  const statement = db
    .prepare(
      `INSERT INTO devices (id, user_id, name, x25519_public_key, ed25519_public_key, created_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6
        WHERE ?7 = 0 OR (SELECT COUNT(*) FROM devices WHERE user_id = ?2 AND revoked_at IS NULL) < ?8`,
    )
    .bind(
      device.id,
      userId,
      device.name,
      device.x25519PublicKey,
      device.ed25519PublicKey,
      now,
      capped ? 1 : 0,
      MAX_DEVICES_PER_USER,
    );
  try {
    return (await statement.run()).meta.changes === 1;
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateKey();
    throw error;
  }
}

/** Enrolls a device for a signed-in user. The cap is part of the INSERT, so two parallel enrollments cannot pass it. */
export async function enrollForUser(
  db: D1Database,
  userId: string,
  device: NewDevice,
  now: number,
): Promise<void> {
  await refuseKnownKeys(db, device);
  if (!(await insertDevice(db, userId, device, now, true))) throw deviceLimit();
}

const invalidCode = () => new ApiError(401, "unauthorized", "invalid or expired enrollment code");

/**
 * Enrolls a device with a one-time code (its SHA-256 hex). The code is consumed by one conditional UPDATE
 * (unused, unexpired, owner active, owner below the device cap); only the request whose UPDATE changed the row
 * goes on. If the device row then cannot be written (a parallel enrollment of the same keys), the code is given
 * back. Returns the owner's user id.
 */
export async function enrollWithCode(
  db: D1Database,
  codeHash: string,
  device: NewDevice,
  now: number,
): Promise<string> {
  await refuseKnownKeys(db, device);
  const claimed = await db
    .prepare(
      `UPDATE enrollment_codes SET used_at = ?2
        WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2
          AND EXISTS (SELECT 1 FROM users u WHERE u.id = enrollment_codes.user_id AND u.status = 'active')
          AND (SELECT COUNT(*) FROM devices d WHERE d.user_id = enrollment_codes.user_id AND d.revoked_at IS NULL) < ?3
        RETURNING user_id`,
    )
    .bind(codeHash, now, MAX_DEVICES_PER_USER)
    .first<{ user_id: string }>();
  if (claimed === null) {
    // Say "limit" only when the code itself is good: a caller without a valid code learns nothing more.
    const open = await db
      .prepare(
        `SELECT 1 AS open FROM enrollment_codes e JOIN users u ON u.id = e.user_id
          WHERE e.code_hash = ?1 AND e.used_at IS NULL AND e.expires_at > ?2 AND u.status = 'active'`,
      )
      .bind(codeHash, now)
      .first<{ open: number }>();
    throw open === null ? invalidCode() : deviceLimit();
  }
  try {
    await insertDevice(db, claimed.user_id, device, now, false);
  } catch (error) {
    await db
      .prepare("UPDATE enrollment_codes SET used_at = NULL WHERE code_hash = ?1 AND used_at = ?2")
      .bind(codeHash, now)
      .run();
    throw error;
  }
  return claimed.user_id;
}

const BASE32_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * Creates a one-time enrollment code for `userId`: 20 base32 characters (100 random bits), shown in groups of 4.
 * Only its SHA-256 is stored. Refuses (409) when the account already holds too many open codes.
 */
export async function createEnrollmentCode(
  db: D1Database,
  userId: string,
  random: RandomSource,
  now: number,
) {
  // 256 is a multiple of 32, so masking each byte to 5 bits keeps every character uniform.
  const canonical = Array.from(
    randomBytes(random, ENROLLMENT_CODE_CHARS),
    (b) => BASE32_UPPER[b & 31] as string,
  ).join("");
  const expiresAt = now + ENROLLMENT_CODE_TTL_MS;
  const [, inserted] = await db.batch([
    // Housekeeping: the account's expired codes (used or not) have no further use.
    db.prepare("DELETE FROM enrollment_codes WHERE user_id = ?1 AND expires_at <= ?2").bind(userId, now),
    db
      .prepare(
        `INSERT INTO enrollment_codes (code_hash, user_id, created_at, expires_at)
         SELECT ?1, ?2, ?3, ?4
          WHERE (SELECT COUNT(*) FROM enrollment_codes WHERE user_id = ?2 AND used_at IS NULL AND expires_at > ?3) < ?5`,
      )
      .bind(await sha256Hex(canonical), userId, now, expiresAt, MAX_OPEN_ENROLLMENT_CODES),
  ]);
  if (inserted?.meta.changes !== 1) {
    throw conflict(
      `too many unused enrollment codes (${MAX_OPEN_ENROLLMENT_CODES}); use one or let them expire`,
    );
  }
  return { code: formatEnrollmentCode(canonical), expiresAt };
}

/**
 * Issues a challenge for `deviceId`. The answer has the same shape whether or not the device exists, is revoked or
 * belongs to a suspended account: the row is written by one INSERT ... SELECT that simply inserts nothing in those
 * cases, so the work done (and the time taken) does not depend on the answer either.
 */
export async function createChallenge(db: D1Database, deviceId: string, random: RandomSource, now: number) {
  const challengeId = randomToken(random, 16);
  const challenge = base64urlEncode(randomBytes(random, CHALLENGE_BYTES));
  const expiresAt = now + CHALLENGE_TTL_MS;
  await db.batch([
    // Keeps the table bounded: a device's expired challenges go whenever it asks for a new one.
    db.prepare("DELETE FROM device_challenges WHERE device_id = ?1 AND expires_at <= ?2").bind(deviceId, now),
    db
      .prepare(
        `INSERT INTO device_challenges (id, device_id, challenge, created_at, expires_at)
         SELECT ?1, d.id, ?2, ?3, ?4 FROM devices d JOIN users u ON u.id = d.user_id
          WHERE d.id = ?5 AND d.revoked_at IS NULL AND u.status = 'active'`,
      )
      .bind(challengeId, challenge, now, expiresAt, deviceId),
  ]);
  return { challengeId, challenge, expiresAt };
}

/** A consumed challenge with what is needed to check its signature. */
export interface RedeemedChallenge {
  readonly deviceId: string;
  readonly challenge: Uint8Array;
  readonly userId: string;
  readonly ed25519PublicKey: Uint8Array;
}

/**
 * Consumes a challenge: one UPDATE marks it used if it is unused and unexpired, so each challenge gets exactly one
 * attempt, right or wrong. Returns null when nothing was consumed or its device can no longer get tokens.
 */
export async function redeemChallenge(
  db: D1Database,
  challengeId: string,
  now: number,
): Promise<RedeemedChallenge | null> {
  const consumed = await db
    .prepare(
      `UPDATE device_challenges SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2
        RETURNING device_id, challenge`,
    )
    .bind(challengeId, now)
    .first<{ device_id: string; challenge: string }>();
  if (consumed === null) return null;
  const device = await db
    .prepare(
      `SELECT d.user_id, d.ed25519_public_key FROM devices d JOIN users u ON u.id = d.user_id
        WHERE d.id = ?1 AND d.revoked_at IS NULL AND u.status = 'active'`,
    )
    .bind(consumed.device_id)
    .first<{ user_id: string; ed25519_public_key: string }>();
  const challenge = base64urlDecode(consumed.challenge);
  const key = device === null ? null : base64urlDecode(device.ed25519_public_key);
  if (device === null || challenge === null || key === null) return null;
  return { deviceId: consumed.device_id, challenge, userId: device.user_id, ed25519PublicKey: key };
}

/** Records that a device authenticated. */
export async function touchDevice(db: D1Database, deviceId: string, now: number): Promise<void> {
  await orm(db).update(schema.devices).set({ lastSeenAt: now }).where(eq(schema.devices.id, deviceId)).run();
}

/** The caller's device, or 404 for a device that does not exist or is someone else's (indistinguishable). */
export async function ownDevice(db: D1Database, userId: string, deviceId: string): Promise<DeviceRecord> {
  const device = await findDevice(db, deviceId);
  if (device === null || device.userId !== userId) throw new ApiError(404, "not_found", "device not found");
  return device;
}

/** Renames an active device of `userId`. */
export async function renameDevice(
  db: D1Database,
  userId: string,
  deviceId: string,
  name: string,
): Promise<DeviceRecord> {
  const device = await ownDevice(db, userId, deviceId);
  if (device.revokedAt !== null) throw conflict("device is revoked");
  await orm(db).update(schema.devices).set({ name }).where(eq(schema.devices.id, deviceId)).run();
  return { ...device, name };
}

/** Every device of `userId`, oldest first, revoked ones included (marked). */
export async function listDevices(db: D1Database, userId: string): Promise<DeviceRecord[]> {
  return orm(db)
    .select()
    .from(schema.devices)
    .where(eq(schema.devices.userId, userId))
    .orderBy(asc(schema.devices.createdAt), asc(schema.devices.id))
    .all();
}

/**
 * Grants `grantee` access to `host`. A revoked grant for the same pair is replaced by a fresh one (new id); an
 * active one is a 409. The upsert only fires on a revoked row, so its change count tells the two apart.
 */
export async function createGrant(
  db: D1Database,
  host: DeviceRecord,
  grantee: DeviceRecord,
  random: RandomSource,
  now: number,
) {
  const d = orm(db);
  const active = await d
    .select({ n: sql<number>`COUNT(*)` })
    .from(schema.grants)
    .where(and(eq(schema.grants.hostDeviceId, host.id), isNull(schema.grants.revokedAt)))
    .get();
  if ((active?.n ?? 0) >= MAX_GRANTS_PER_HOST)
    throw conflict(`grant limit reached (${MAX_GRANTS_PER_HOST}) for this device`);
  const grantId = `g_${randomToken(random, 16)}`;
  const result = await d
    .insert(schema.grants)
    .values({
      id: grantId,
      ownerUserId: host.userId,
      hostDeviceId: host.id,
      granteeDeviceId: grantee.id,
      createdAt: now,
    })
    .onConflictDoUpdate({
      target: [schema.grants.hostDeviceId, schema.grants.granteeDeviceId],
      set: { id: grantId, ownerUserId: host.userId, createdAt: now, revokedAt: null },
      setWhere: sql`${schema.grants.revokedAt} IS NOT NULL`,
    })
    .run();
  if (result.meta.changes !== 1) throw conflict("this device already has a grant");
  return grantId;
}

/** Active grants of a host device, oldest first, with each grantee's fingerprint (never its name or owner). */
export async function listGrants(db: D1Database, hostDeviceId: string) {
  const rows = await orm(db)
    .select({
      grantId: schema.grants.id,
      granteeDeviceId: schema.grants.granteeDeviceId,
      createdAt: schema.grants.createdAt,
      x25519PublicKey: schema.devices.x25519PublicKey,
      ed25519PublicKey: schema.devices.ed25519PublicKey,
    })
    .from(schema.grants)
    .innerJoin(schema.devices, eq(schema.devices.id, schema.grants.granteeDeviceId))
    .where(and(eq(schema.grants.hostDeviceId, hostDeviceId), isNull(schema.grants.revokedAt)))
    .orderBy(asc(schema.grants.createdAt), asc(schema.grants.id))
    .all();
  return rows.map((row) => ({
    grantId: row.grantId,
    granteeDeviceId: row.granteeDeviceId,
    granteeFingerprint: fingerprintOf(row),
    createdAt: row.createdAt,
  }));
}

/** Revokes one active grant of a host; false when there is none with that id. */
export async function revokeGrant(
  db: D1Database,
  hostDeviceId: string,
  grantId: string,
  now: number,
): Promise<boolean> {
  const result = await orm(db)
    .update(schema.grants)
    .set({ revokedAt: now })
    .where(
      and(
        eq(schema.grants.id, grantId),
        eq(schema.grants.hostDeviceId, hostDeviceId),
        isNull(schema.grants.revokedAt),
      ),
    )
    .run();
  return result.meta.changes === 1;
}
