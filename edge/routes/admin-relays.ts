import type { Handler } from "hono";
import { z } from "zod";
import { isRelayId } from "../../protocol/identity/relay-id.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { type AdminScope, auditDetail } from "../middleware/admin-auth.ts";
import { readJson } from "../middleware/body.ts";
import { randomToken, sha256Hex } from "../security/tokens-util.ts";
import {
  certifyLeaseKey,
  createLeaseKey,
  LEASE_KID_PATTERN,
  listLeaseKeys,
  RELAY_ADMIN_STATES,
  requireRelaySettings,
  revokeLeaseKey,
} from "../services/relay-registry.ts";
import type { AdminRoute } from "./admin-route-table.ts";

type Route = (
  method: AdminRoute["method"],
  path: string,
  scope: AdminScope,
  summary: string,
  handler: Handler<AppEnv>,
) => void;

/** Relay enrollment tokens are opaque; the prefix lets secret scanners recognise a leaked one. */
export const RELAY_ENROLLMENT_TOKEN_PREFIX = "wvrel_";
const DEFAULT_ENROLLMENT_TTL_SECS = 86_400;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const enrollmentBody = z.strictObject({
  ttlSecs: z
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .optional(),
});
const stateBody = z.strictObject({ state: z.enum(RELAY_ADMIN_STATES), reason: z.string().min(1).max(200) });
const certificateBody = z.strictObject({ certificate: z.string().min(20).max(4096) });

function relayIdParam(value: string | undefined): string {
  if (!isRelayId(value)) throw new ApiError(404, "not_found", "no such relay");
  return value;
}

function kidParam(value: string | undefined): string {
  if (value === undefined || !LEASE_KID_PATTERN.test(value))
    throw new ApiError(404, "not_found", "no such lease key");
  return value;
}

/** Admin routes for relays (enrollment, listing, admin states) and lease keys (issue 4). Every action is audited. */
export function relayAdminRoutes(route: Route): void {
  route(
    "POST",
    "/relays/enrollment-tokens",
    "relays",
    "mint a one-time relay enrollment token (shown once)",
    async (c) => {
      const body = await readJson(c, enrollmentBody);
      const token = `${RELAY_ENROLLMENT_TOKEN_PREFIX}${randomToken(random, 32)}`;
      const id = `ret_${randomToken(random, 16)}`;
      const now = Date.now();
      const expiresAt = now + (body.ttlSecs ?? DEFAULT_ENROLLMENT_TTL_SECS) * 1000;
      await c.env.DB.prepare(
        "INSERT INTO relay_enrollment_tokens (token_hash, id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      )
        .bind(await sha256Hex(token), id, c.get("admin").tokenId, now, expiresAt)
        .run();
      auditDetail(c, { enrollmentToken: id, expiresAt });
      return c.json({ id, token, expiresAt }, 201);
    },
  );

  route("GET", "/relays", "read", "list relays with health, admin state, load and counters", async (c) => {
    const { results } = await c.env.DB.prepare(
      `SELECT id, ed25519_public_key, region, public_addr, version, max_sessions, admin_state, admin_reason,
              admin_state_at, health, health_changed_at, last_heartbeat_at, load, sessions, counters, enrolled_at,
              enrollment_token_id, registered_at, register_count
         FROM relays ORDER BY id LIMIT 1000`,
    ).all<{ counters: string | null } & Record<string, unknown>>();
    return c.json({
      relays: results.map(({ counters, ...rest }) => ({
        ...rest,
        counters: counters === null ? null : (JSON.parse(counters) as unknown),
      })),
    });
  });

  route(
    "POST",
    "/relays/:id/state",
    "relays",
    "set a relay's admin state (none, draining, quarantined, banned); it stays until changed",
    async (c) => {
      const relayId = relayIdParam(c.req.param("id"));
      const body = await readJson(c, stateBody);
      const updated = await c.env.DB.prepare(
        "UPDATE relays SET admin_state = ?, admin_reason = ?, admin_state_at = ? WHERE id = ? RETURNING admin_state",
      )
        .bind(body.state, body.reason, Date.now(), relayId)
        .first<{ admin_state: string }>();
      if (updated === null) throw new ApiError(404, "not_found", "no such relay");
      auditDetail(c, { relay: relayId, state: body.state, reason: body.reason });
      return c.json({ relayId, state: body.state });
    },
  );

  route("GET", "/lease-keys", "read", "list lease keys and their states (public parts only)", async (c) => {
    return c.json({ leaseKeys: await listLeaseKeys(c.env.DB) });
  });

  route(
    "POST",
    "/lease-keys",
    "keys",
    "generate a lease key (pending until a master-key certificate is uploaded)",
    async (c) => {
      const created = await createLeaseKey(
        c.env.DB,
        c.get("config").signingKeyWrapKeys,
        c.get("admin").tokenId,
        Date.now(),
      );
      auditDetail(c, { leaseKey: created.kid });
      return c.json({ ...created, status: "pending" }, 201);
    },
  );

  route(
    "POST",
    "/lease-keys/:kid/certificate",
    "keys",
    "upload a lease key's certificate from the relay master key; the key becomes active",
    async (c) => {
      const kid = kidParam(c.req.param("kid"));
      const body = await readJson(c, certificateBody);
      const { masterPublicKey } = requireRelaySettings(c.env);
      const result = await certifyLeaseKey(c.env.DB, kid, body.certificate, masterPublicKey, Date.now());
      auditDetail(c, {
        leaseKey: kid,
        certExpiresAt: result.certExpiresAt,
        masterVerified: masterPublicKey !== null,
      });
      return c.json(result);
    },
  );

  route(
    "POST",
    "/lease-keys/:kid/revoke",
    "keys",
    "revoke a lease key (relays learn it with their next heartbeat)",
    async (c) => {
      const kid = kidParam(c.req.param("kid"));
      await revokeLeaseKey(c.env.DB, kid, Date.now());
      auditDetail(c, { leaseKey: kid, revoked: true });
      return c.json({ kid, status: "revoked" });
    },
  );
}
