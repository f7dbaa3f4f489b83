import { type Context, Hono } from "hono";
import type { z } from "zod";
import type { NonceClaim, RegistryAnswer } from "../../durable/relay-registry.ts";
import { relayIdFromKey } from "../../protocol/identity/relay-id.ts";
import {
  relayEnrollRequest,
  relayHeartbeatRequest,
  relayRegisterRequest,
} from "../../protocol/relay/registry-messages.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { readJson } from "../middleware/body.ts";
import { enforce, takeToken } from "../middleware/rate-limit.ts";
import { base64urlDecode, sha256Hex } from "../security/tokens-util.ts";
import { heartbeatEvent, monitor } from "../services/monitor.ts";
import {
  type RelayAdminState,
  type RelayAuth,
  readRelayAuth,
  registryStub,
  relayControl,
  relaySignatureValid,
  relayTimestampFresh,
  requireRelaySettings,
} from "../services/relay-registry.ts";

/**
 * Relay enrollment, register and heartbeat under /v1/relays (DESIGN.md: Relay nodes). Every request is signed by
 * the relay's key (protocol/relay/signed-request.ts). Refusals: a missing or malformed signature header, an unknown
 * relay or a bad signature -> 401 with one message (it does not tell whether a relay id exists); a stale timestamp
 * or a replayed nonce -> 401 saying so (useful to the relay's operator, useless to an attacker); banned -> 403.
 */

// A relay id that does not exist and a bad signature look the same.
// Each one is counted for the monitor's relay_auth_failures rule (issue 6).
const invalidSignature = (c: Context<AppEnv>) => {
  monitor(c, (range) => ({ kind: "relay_auth_failure", at: Date.now(), what: "bad_signature", range }));
  return new ApiError(401, "unauthorized", "invalid relay request signature");
};
const staleTimestamp = () =>
  new ApiError(401, "unauthorized", "request timestamp is outside the allowed window; check the relay clock");

/**
 * Per-address budget for register and heartbeat, derived from the interval: room for several relays on one
 * address (a host running a few, or local development) plus re-registers. Fails closed.
 */
function relayBudget(intervalMs: number) {
  return { limit: Math.ceil(60_000 / intervalMs) * 8 + 20, windowSecs: 60 };
}

/** Parses the auth headers and checks the timestamp; reads the body once for both schema and signature. */
async function signedRequest<S extends z.ZodType>(
  c: Context<AppEnv>,
  schema: S,
  now: number,
): Promise<{ auth: RelayAuth; body: z.infer<S>; bytes: Uint8Array }> {
  const auth = readRelayAuth((name) => c.req.header(name));
  if (auth === null) throw invalidSignature(c);
  if (!relayTimestampFresh(auth, now)) throw staleTimestamp();
  // readJson consumes the stream with the size limit; the clone yields the same (already bounded) bytes to hash.
  const copy = c.req.raw.clone();
  const body = await readJson(c, schema);
  const bytes = new Uint8Array(await copy.arrayBuffer());
  return { auth, body, bytes };
}

/**
 * Verifies a registered relay's signature, then refuses a banned relay (after the signature check, so a ban is not
 * told to strangers).
 */
async function authenticate(c: Context<AppEnv>, auth: RelayAuth, bytes: Uint8Array): Promise<void> {
  const relay = await c.env.DB.prepare("SELECT ed25519_public_key, admin_state FROM relays WHERE id = ?")
    .bind(auth.relayId)
    .first<{ ed25519_public_key: string; admin_state: RelayAdminState }>();
  const key = relay === null ? null : base64urlDecode(relay.ed25519_public_key);
  if (relay === null || key === null) throw invalidSignature(c);
  if (!relaySignatureValid(key, auth, c.req.method, new URL(c.req.url).pathname, bytes))
    throw invalidSignature(c);
  if (relay.admin_state === "banned") throw new ApiError(403, "forbidden", "this relay is banned");
}

/** Maps the registry's answer to the control response or an error. */
async function answer(
  c: Context<AppEnv>,
  relayId: string,
  result: RegistryAnswer,
  intervalMs: number,
  now: number,
) {
  if (!result.ok) {
    switch (result.reason) {
      case "replayed":
        monitor(c, () => ({ kind: "relay_replay", at: now, relayId }));
        throw new ApiError(401, "unauthorized", "nonce already used");
      case "nonce_budget":
        throw new ApiError(429, "rate_limited", "too many requests", { "Retry-After": "60" });
      case "unknown":
        throw invalidSignature(c);
      case "not_registered":
        throw new ApiError(409, "conflict", "register before sending heartbeats");
      default:
        return assertNever(result.reason);
    }
  }
  // Banned between the signature check and the update: still refused.
  if (result.adminState === "banned") throw new ApiError(403, "forbidden", "this relay is banned");
  return c.json(await relayControl(c.env.DB, relayId, result.adminState, intervalMs, now));
}

function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
}

const nonceOf = (auth: RelayAuth): NonceClaim => ({ nonce: auth.nonce, timestampMs: auth.timestampMs });

/** Routes under /v1/relays. */
export function relayRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  // Enrollment spends a one-time secret: the strict auth budget, failing closed. Its nonce is not recorded: the
  // token works once, so a replay within the skew window finds it spent.
  app.post("/enroll", async (c) => {
    const config = c.get("config");
    enforce(
      await takeToken(
        c,
        `relay-enroll:${c.get("clientAddress") ?? "unknown"}`,
        config.rateLimits.auth,
        "closed",
      ),
    );
    const now = Date.now();
    const { auth, body, bytes } = await signedRequest(c, relayEnrollRequest, now);
    const key = base64urlDecode(body.publicKey);
    // The id is derived from the key, and the request must be signed by that key: nobody enrolls a key they lack.
    if (key === null || key.length !== 32 || relayIdFromKey(key) !== auth.relayId) throw invalidSignature(c);
    if (!relaySignatureValid(key, auth, c.req.method, new URL(c.req.url).pathname, bytes))
      throw invalidSignature(c);
    const hash = await sha256Hex(body.enrollmentToken);
    const db = c.env.DB;
    // One transaction: the token is spent only if the relay id is new, and the relay row exists only if the token
    // was spent by this request.
    const [spent] = await db.batch([
      db
        .prepare(
          `UPDATE relay_enrollment_tokens SET used_at = ?, relay_id = ?
            WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
              AND NOT EXISTS (SELECT 1 FROM relays WHERE id = ? OR ed25519_public_key = ?)`,
        )
        .bind(now, auth.relayId, hash, now, auth.relayId, body.publicKey),
      db
        .prepare(
          `INSERT INTO relays (id, ed25519_public_key, enrolled_at, enrollment_token_id)
           SELECT ?, ?, ?, id FROM relay_enrollment_tokens WHERE token_hash = ? AND relay_id = ? AND used_at = ?
              AND NOT EXISTS (SELECT 1 FROM relays WHERE id = ?)`,
        )
        .bind(auth.relayId, body.publicKey, now, hash, auth.relayId, now, auth.relayId),
    ]);
    if (spent?.meta.changes !== 1) {
      const exists = await db.prepare("SELECT 1 AS x FROM relays WHERE id = ?").bind(auth.relayId).first();
      if (exists !== null) throw new ApiError(409, "conflict", "this relay key is already enrolled");
      monitor(c, (range) => ({ kind: "relay_auth_failure", at: now, what: "enrollment", range }));
      throw new ApiError(401, "invalid_token", "invalid, used or expired enrollment token");
    }
    return c.json({ relayId: auth.relayId }, 201);
  });

  app.post("/register", async (c) => {
    const settings = requireRelaySettings(c.env);
    const address = c.get("clientAddress") ?? "unknown";
    enforce(await takeToken(c, `relay:${address}`, relayBudget(settings.heartbeatIntervalMs), "closed"));
    const now = Date.now();
    const { auth, body, bytes } = await signedRequest(c, relayRegisterRequest, now);
    await authenticate(c, auth, bytes);
    const result = await registryStub(c.env).register(auth.relayId, body, nonceOf(auth), now);
    if (result.ok) monitor(c, () => ({ kind: "relay_register", at: now, relayId: auth.relayId }));
    return answer(c, auth.relayId, result, settings.heartbeatIntervalMs, now);
  });

  app.post("/heartbeat", async (c) => {
    const settings = requireRelaySettings(c.env);
    const address = c.get("clientAddress") ?? "unknown";
    enforce(await takeToken(c, `relay:${address}`, relayBudget(settings.heartbeatIntervalMs), "closed"));
    const now = Date.now();
    const { auth, body, bytes } = await signedRequest(c, relayHeartbeatRequest, now);
    await authenticate(c, auth, bytes);
    const result = await registryStub(c.env).heartbeat(auth.relayId, body, nonceOf(auth), now);
    if (result.ok) monitor(c, () => heartbeatEvent(auth.relayId, body, now));
    return answer(c, auth.relayId, result, settings.heartbeatIntervalMs, now);
  });

  return app;
}
