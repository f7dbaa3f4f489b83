import { z } from "zod";

/**
 * JSON bodies between a relay node and the edge's relay registry. Every request is signed (signed-request.ts);
 * these schemas bound every field, so neither side accepts more than it can store.
 */

/** Drop reasons a relay counts (also its metric labels). */
export const RELAY_DROP_REASONS = [
  "malformed",
  "unsupported_version",
  "unknown_session",
  "not_bound",
  "bad_cookie",
  "invalid_lease",
  "rate_limited_ip",
  "rate_limited_session",
  "session_table_full",
  "address_blocked",
  "overloaded",
  "too_large",
] as const;
export type RelayDropReason = (typeof RELAY_DROP_REASONS)[number];

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const region = z.string().regex(/^[a-z0-9-]{1,32}$/);
/** host:port, IPv4 or bracketed IPv6, as peers should dial it. */
const publicAddr = z
  .string()
  .min(3)
  .max(64)
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/);

/** POST /v1/relays/enroll (signed with the new key): binds the key to a one-time enrollment token. */
export const relayEnrollRequest = z.strictObject({
  enrollmentToken: z.string().min(16).max(128),
  /** base64url Ed25519 public key; must match the key that signed the request. */
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});

/** POST /v1/relays/register (signed). */
export const relayRegisterRequest = z.strictObject({
  region,
  publicAddr,
  version: z.string().min(1).max(32),
  maxSessions: z.number().int().min(1).max(1_000_000),
});

/** POST /v1/relays/heartbeat (signed). Counters are totals since the relay process started. */
export const relayHeartbeatRequest = z.strictObject({
  /** 0..1: the busier of CPU and session-table use. */
  load: z.number().min(0).max(1),
  sessions: count,
  bytesForwarded: count,
  packetsForwarded: count,
  drops: z.partialRecord(z.enum(RELAY_DROP_REASONS), count),
  startedAt: count,
});

/** A certified lease key as the edge hands it to relays. */
export const certifiedLeaseKey = z.strictObject({
  kid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /** Compact JWS by the relay master key (typ wavry-lease-key-cert+jwt). */
  certificate: z.string().min(20).max(4096),
});

/** The answer to register and heartbeat: what the relay must enforce until the next one. */
export const relayControlResponse = z.strictObject({
  relayId: z.string(),
  /** active | draining | quarantined | banned (a relay that is not active accepts no new sessions). */
  state: z.enum(["active", "draining", "quarantined", "banned"]),
  heartbeatIntervalMs: z.number().int().min(1000).max(60_000),
  leaseKeys: z.array(certifiedLeaseKey).max(16),
  revokedLeaseKeyIds: z.array(z.string().max(64)).max(1024),
  blockedCidrs: z.array(z.string().max(64)).max(5000),
});

export type RelayEnrollRequest = z.infer<typeof relayEnrollRequest>;
export type RelayRegisterRequest = z.infer<typeof relayRegisterRequest>;
export type RelayHeartbeatRequest = z.infer<typeof relayHeartbeatRequest>;
export type RelayControlResponse = z.infer<typeof relayControlResponse>;
