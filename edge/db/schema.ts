import { sql } from "drizzle-orm";
import { index, integer, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * D1 schema (drizzle). The SQL in migrations/ is generated from this file (`npm run db:generate`).
 * Timestamps are integer epoch milliseconds. Secrets are never stored in clear: passwords as Argon2id PHC strings,
 * tokens and codes as SHA-256 hashes, TOTP secrets and signing keys sealed under a versioned key id.
 */

export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  /** Lower-cased, trimmed. */
  email: text("email").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  status: text("status", { enum: ["active", "suspended"] })
    .notNull()
    .default("active"),
  failedLogins: integer("failed_logins").notNull().default(0),
  lockedUntil: integer("locked_until").notNull().default(0),
  /** Sealed TOTP secret once confirmed. */
  totpSecret: text("totp_secret"),
  /** Sealed TOTP secret between enroll and confirm. */
  totpPending: text("totp_pending"),
  /** Highest TOTP step accepted, so a code is never used twice. */
  totpLastStep: integer("totp_last_step"),
  /** Access tokens issued before this instant are refused (bans, "log out everywhere"). */
  tokensValidAfter: integer("tokens_valid_after").notNull().default(0),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const refreshFamilies = sqliteTable(
  "refresh_families",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
    revokeReason: text("revoke_reason"),
  },
  (t) => [index("refresh_families_user").on(t.userId)],
);

export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    /** SHA-256 (hex) of the opaque token. */
    tokenHash: text("token_hash").primaryKey(),
    familyId: text("family_id")
      .notNull()
      .references(() => refreshFamilies.id),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    /** Set when the token was exchanged; a second use revokes the family. */
    usedAt: integer("used_at"),
  },
  (t) => [index("refresh_tokens_family").on(t.familyId)],
);

export const devices = sqliteTable(
  "devices",
  {
    /** Derived from the public keys (see protocol/identity/device-id.ts). */
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id),
    name: text("name").notNull(),
    /** base64url, 32 bytes. */
    x25519PublicKey: text("x25519_public_key").notNull().unique(),
    /** base64url, 32 bytes. */
    ed25519PublicKey: text("ed25519_public_key").notNull().unique(),
    createdAt: integer("created_at").notNull(),
    lastSeenAt: integer("last_seen_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("devices_user").on(t.userId)],
);

export const enrollmentCodes = sqliteTable("enrollment_codes", {
  codeHash: text("code_hash").primaryKey(),
  userId: text("user_id")
    .notNull()
    .references(() => users.id),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  usedAt: integer("used_at"),
});

export const deviceChallenges = sqliteTable(
  "device_challenges",
  {
    id: text("id").primaryKey(),
    deviceId: text("device_id")
      .notNull()
      .references(() => devices.id),
    /** base64url random bytes the device signs. */
    challenge: text("challenge").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    usedAt: integer("used_at"),
  },
  // Each challenge request deletes the device's expired challenges: without this index that is a table scan.
  (t) => [index("device_challenges_device").on(t.deviceId, t.expiresAt)],
);

export const grants = sqliteTable(
  "grants",
  {
    id: text("id").primaryKey(),
    /** The owner of the host device. */
    ownerUserId: text("owner_user_id")
      .notNull()
      .references(() => users.id),
    hostDeviceId: text("host_device_id")
      .notNull()
      .references(() => devices.id),
    granteeDeviceId: text("grantee_device_id")
      .notNull()
      .references(() => devices.id),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("grants_pair").on(t.hostDeviceId, t.granteeDeviceId)],
);

export const adminTokens = sqliteTable("admin_tokens", {
  id: text("id").primaryKey(),
  tokenHash: text("token_hash").notNull().unique(),
  name: text("name").notNull(),
  /** Space-separated scopes. */
  scopes: text("scopes").notNull(),
  /** Admin token id that created it, or "bootstrap". */
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  revokedAt: integer("revoked_at"),
  lastUsedAt: integer("last_used_at"),
});

export const auditLog = sqliteTable("audit_log", {
  seq: integer("seq").primaryKey(),
  at: integer("at").notNull(),
  requestId: text("request_id").notNull(),
  /** Admin token id, "bootstrap", or null when no valid credential was presented. */
  actor: text("actor"),
  method: text("method").notNull(),
  path: text("path").notNull(),
  status: integer("status").notNull(),
  outcome: text("outcome", { enum: ["allowed", "refused"] }).notNull(),
  reason: text("reason"),
  /** Keyed hash of the client address, never the address itself. */
  addressHash: text("address_hash"),
  /** JSON with ids of what was touched; never a secret. */
  detail: text("detail"),
  prevHash: text("prev_hash").notNull(),
  hash: text("hash").notNull(),
});

export const addressBlocks = sqliteTable("address_blocks", {
  id: text("id").primaryKey(),
  /** Canonical CIDR. */
  cidr: text("cidr").notNull().unique(),
  reason: text("reason").notNull(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at"),
});

export const signingKeys = sqliteTable(
  "signing_keys",
  {
    kid: text("kid").primaryKey(),
    status: text("status", { enum: ["next", "current", "previous", "retired"] }).notNull(),
    /** Public JWK (JSON). */
    publicJwk: text("public_jwk").notNull(),
    /** Ed25519 seed sealed under WAVRY_SIGNING_KEY_WRAP_KEYS. */
    privateSealed: text("private_sealed").notNull(),
    createdAt: integer("created_at").notNull(),
    activatedAt: integer("activated_at"),
    /** For "previous": when it stops verifying (after the longest access token it signed expired). */
    retireAt: integer("retire_at"),
    retiredAt: integer("retired_at"),
  },
  (t) => [
    // At most one current and one next key, enforced by the database.
    uniqueIndex("signing_keys_one_current").on(t.status).where(sql`status = 'current'`),
    uniqueIndex("signing_keys_one_next").on(t.status).where(sql`status = 'next'`),
  ],
);

/**
 * Enrolled relays (issue 4). The id is derived from the Ed25519 key (protocol/identity/relay-id.ts), so a second
 * enrollment cannot take an id over. `admin_state` is written only by admins and is sticky; `health` and the
 * liveness columns are written only by the RelayRegistry Durable Object (heartbeats raise, alarms lower).
 */
export const relays = sqliteTable(
  "relays",
  {
    id: text("id").primaryKey(),
    /** base64url, 32 bytes: verifies every register and heartbeat. */
    ed25519PublicKey: text("ed25519_public_key").notNull().unique(),
    /** Set by register; null until the relay first registers. */
    region: text("region"),
    /** host:port peers dial. */
    publicAddr: text("public_addr"),
    version: text("version"),
    maxSessions: integer("max_sessions").notNull().default(0),
    adminState: text("admin_state", { enum: ["none", "draining", "quarantined", "banned"] })
      .notNull()
      .default("none"),
    adminReason: text("admin_reason"),
    adminStateAt: integer("admin_state_at"),
    /** Liveness: dropped until the first register; quarantined after missed heartbeats, dropped after silence. */
    health: text("health", { enum: ["healthy", "quarantined", "dropped"] })
      .notNull()
      .default("dropped"),
    healthChangedAt: integer("health_changed_at"),
    lastHeartbeatAt: integer("last_heartbeat_at"),
    /** 0..1 as last reported. */
    load: real("load").notNull().default(0),
    sessions: integer("sessions").notNull().default(0),
    /** JSON: bytes and packets forwarded, drops by reason, process start (as last reported). */
    counters: text("counters"),
    enrolledAt: integer("enrolled_at").notNull(),
    /** Id (not hash) of the enrollment token used, for the audit trail. */
    enrollmentTokenId: text("enrollment_token_id"),
    registeredAt: integer("registered_at"),
    registerCount: integer("register_count").notNull().default(0),
  },
  (t) => [index("relays_selection").on(t.health, t.adminState, t.region)],
);

/** One-time relay enrollment tokens, stored as SHA-256 hashes; the clear token is shown once to the admin. */
export const relayEnrollmentTokens = sqliteTable("relay_enrollment_tokens", {
  /** SHA-256 (hex) of the opaque token. */
  tokenHash: text("token_hash").primaryKey(),
  /** Public id for listings and the audit log. */
  id: text("id").notNull().unique(),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  usedAt: integer("used_at"),
  /** The relay that enrolled with it. */
  relayId: text("relay_id"),
});

/**
 * Lease-signing keys (issue 4): generated here, private half sealed under WAVRY_SIGNING_KEY_WRAP_KEYS, and usable
 * only once an operator uploads a certificate from the offline relay master key (pending -> active -> revoked).
 */
export const leaseKeys = sqliteTable(
  "lease_keys",
  {
    kid: text("kid").primaryKey(),
    status: text("status", { enum: ["pending", "active", "revoked"] }).notNull(),
    /** Public JWK (JSON). */
    publicJwk: text("public_jwk").notNull(),
    /** Ed25519 seed sealed under WAVRY_SIGNING_KEY_WRAP_KEYS. */
    privateSealed: text("private_sealed").notNull(),
    /** Compact JWS by the relay master key (typ wavry-lease-key-cert+jwt). */
    certificate: text("certificate"),
    certExpiresAt: integer("cert_expires_at"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    activatedAt: integer("activated_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("lease_keys_status").on(t.status)],
);

/**
 * Incidents (issue 6): opened, annotated and closed by admins through /v1/admin/incidents. A closed incident is
 * final: the database refuses to change it or add to it (migrations/0005), so its summary describes exactly what
 * its timeline holds.
 */
export const incidents = sqliteTable(
  "incidents",
  {
    id: text("id").primaryKey(),
    title: text("title").notNull(),
    severity: text("severity", { enum: ["critical", "high", "medium", "low"] }).notNull(),
    description: text("description").notNull(),
    status: text("status", { enum: ["open", "closed"] })
      .notNull()
      .default("open"),
    /** Admin token id. */
    openedBy: text("opened_by").notNull(),
    openedAt: integer("opened_at").notNull(),
    closedBy: text("closed_by"),
    closedAt: integer("closed_at"),
    summary: text("summary"),
    blastRadius: text("blast_radius"),
    preventiveControls: text("preventive_controls"),
  },
  (t) => [index("incidents_status_opened").on(t.status, t.openedAt)],
);

/**
 * An incident's timeline, append-only (migrations/0005): notes, and links to audit rows (`ref` = the seq) and to
 * alerts (`ref` = the Monitor's alert id). A link appears at most once per incident.
 */
export const incidentEntries = sqliteTable(
  "incident_entries",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    incidentId: text("incident_id")
      .notNull()
      .references(() => incidents.id),
    kind: text("kind", { enum: ["note", "audit", "alert"] }).notNull(),
    /** The note's text, or the linked audit seq / alert id. */
    body: text("body").notNull(),
    /** Admin token id. */
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    index("incident_entries_incident").on(t.incidentId, t.id),
    uniqueIndex("incident_entries_one_link").on(t.incidentId, t.kind, t.body).where(sql`kind != 'note'`),
  ],
);
