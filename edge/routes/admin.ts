import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { ADMIN_SCOPES, ADMIN_TOKEN_PREFIX, auditAdmin, auditDetail } from "../middleware/admin-auth.ts";
import { readJson } from "../middleware/body.ts";
import { randomToken, sha256Hex, timingSafeEqualString } from "../security/tokens-util.ts";
import { revokeDevice } from "../services/devices.ts";
import { revokeAllUserSessions, revokeFamily } from "../services/sessions.ts";
import { disconnectDevice, disconnectUser } from "../services/signaling.ts";
import { alertAdminRoutes } from "./admin-alerts.ts";
import { incidentAdminRoutes } from "./admin-incidents.ts";
import { relayAdminRoutes } from "./admin-relays.ts";
import { type AdminRoute, adminRouter } from "./admin-route-table.ts";
import { systemAdminRoutes } from "./admin-system.ts";

/** Every admin route, filled as the routes are declared (read by tests and the release preflight). */
export const ADMIN_ROUTES: AdminRoute[] = [];

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const MAX_ADMIN_TOKEN_TTL_SECS = 30 * 86_400;
const scopeList = z.array(z.enum(ADMIN_SCOPES)).min(1).max(ADMIN_SCOPES.length);
const tokenBody = z.strictObject({
  name: z.string().min(1).max(64),
  scopes: scopeList,
  ttlSecs: z.number().int().min(60).max(MAX_ADMIN_TOKEN_TTL_SECS).optional(),
});
const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/);
const reasonBody = z.strictObject({ reason: z.string().min(1).max(200) });

function pathId(value: string | undefined): string {
  const parsed = id.safeParse(value);
  if (!parsed.success) throw new ApiError(400, "bad_request", "invalid id");
  return parsed.data;
}

function limitOf(value: string | undefined): number {
  const n = Number(value ?? 50);
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : 50;
}

async function createAdminToken(name: string, scopes: readonly string[], ttlSecs: number, createdBy: string) {
  const token = `${ADMIN_TOKEN_PREFIX}${randomToken(random, 32)}`;
  const tokenId = `adm_${randomToken(random, 16)}`;
  const now = Date.now();
  const expiresAt = now + ttlSecs * 1000;
  return {
    token,
    tokenId,
    now,
    expiresAt,
    hash: await sha256Hex(token),
    scopes: [...new Set(scopes)].sort(),
    name,
    createdBy,
  };
}

/** The admin API under /v1/admin. Every request, allowed or refused, lands in the audit log. */
export function adminRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", auditAdmin());
  const table: AdminRoute[] = [];
  const route = adminRouter(app, table);

  // The bootstrap secret can create the first admin token and nothing else.
  table.push({
    method: "POST",
    path: "/bootstrap",
    scope: "bootstrap",
    summary: "create the first admin token",
  });
  app.post("/bootstrap", async (c) => {
    const secret = c.get("config").adminBootstrapToken;
    const presented = (c.req.header("authorization") ?? "").replace(/^Bearer /, "");
    if (secret === null || !timingSafeEqualString(presented, secret)) {
      throw new ApiError(401, "unauthorized", "bootstrap secret required");
    }
    c.set("admin", { tokenId: "bootstrap", scopes: [] });
    const body = await readJson(c, z.strictObject({ name: z.string().min(1).max(64).optional() }));
    const t = await createAdminToken(body.name ?? "first admin", ADMIN_SCOPES, 86_400, "bootstrap");
    // Atomic: inserts only while no admin token has ever existed.
    const result = await c.env.DB.prepare(
      `INSERT INTO admin_tokens (id, token_hash, name, scopes, created_by, created_at, expires_at)
       SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM admin_tokens)`,
    )
      .bind(t.tokenId, t.hash, t.name, t.scopes.join(" "), t.createdBy, t.now, t.expiresAt)
      .run();
    if (result.meta.changes !== 1)
      throw new ApiError(409, "conflict", "already bootstrapped: use an admin token");
    auditDetail(c, { created: t.tokenId });
    return c.json({ id: t.tokenId, token: t.token, scopes: t.scopes, expiresAt: t.expiresAt }, 201);
  });

  route("POST", "/tokens", "tokens", "create an admin token (scopes within the caller's)", async (c) => {
    const body = await readJson(c, tokenBody);
    const caller = c.get("admin");
    if (!body.scopes.every((s) => caller.scopes.includes(s))) {
      throw new ApiError(403, "insufficient_scope", "a token cannot grant scopes its creator lacks");
    }
    const t = await createAdminToken(body.name, body.scopes, body.ttlSecs ?? 86_400, caller.tokenId);
    await c.env.DB.prepare(
      "INSERT INTO admin_tokens (id, token_hash, name, scopes, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
      .bind(t.tokenId, t.hash, t.name, t.scopes.join(" "), t.createdBy, t.now, t.expiresAt)
      .run();
    auditDetail(c, { created: t.tokenId, scopes: t.scopes.join(" ") });
    return c.json({ id: t.tokenId, token: t.token, scopes: t.scopes, expiresAt: t.expiresAt }, 201);
  });

  route("GET", "/tokens", "tokens", "list admin tokens (never their values)", async (c) => {
    const { results } = await c.env.DB.prepare(
      "SELECT id, name, scopes, created_by, created_at, expires_at, revoked_at, last_used_at FROM admin_tokens ORDER BY created_at DESC LIMIT 200",
    ).all();
    return c.json({ tokens: results });
  });

  route("DELETE", "/tokens/:id", "tokens", "revoke an admin token", async (c) => {
    const tokenId = pathId(c.req.param("id"));
    const r = await c.env.DB.prepare(
      "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
    )
      .bind(Date.now(), tokenId)
      .run();
    if (r.meta.changes !== 1) throw new ApiError(404, "not_found", "no such active token");
    auditDetail(c, { revoked: tokenId });
    return c.body(null, 204);
  });

  route(
    "GET",
    "/users",
    "read",
    "list and search users (?q= email substring, ?after=, ?limit=)",
    async (c) => {
      const q = (c.req.query("q") ?? "").slice(0, 100).replace(/[\\%_]/g, (m) => `\\${m}`);
      const { results } = await c.env.DB.prepare(
        `SELECT id, email, status, created_at, locked_until, totp_secret IS NOT NULL AS totp_enabled FROM users
        WHERE email LIKE ? ESCAPE '\\' AND id > ? ORDER BY id LIMIT ?`,
      )
        .bind(`%${q}%`, c.req.query("after") ?? "", limitOf(c.req.query("limit")))
        .all();
      return c.json({ users: results });
    },
  );

  route("GET", "/users/:id", "read", "one user with device and session counts", async (c) => {
    const userId = pathId(c.req.param("id"));
    const user = await c.env.DB.prepare(
      `SELECT id, email, status, created_at, locked_until, failed_logins, totp_secret IS NOT NULL AS totp_enabled,
              (SELECT COUNT(*) FROM devices d WHERE d.user_id = users.id AND d.revoked_at IS NULL) AS devices,
              (SELECT COUNT(*) FROM refresh_families f WHERE f.user_id = users.id AND f.revoked_at IS NULL) AS sessions
         FROM users WHERE id = ?`,
    )
      .bind(userId)
      .first();
    if (user === null) throw new ApiError(404, "not_found", "no such user");
    return c.json({ user });
  });

  route("POST", "/users/:id/suspend", "users", "suspend a user and revoke all their tokens", async (c) => {
    const userId = pathId(c.req.param("id"));
    await readJson(c, reasonBody);
    const now = Date.now();
    const r = await c.env.DB.prepare("UPDATE users SET status = 'suspended', updated_at = ? WHERE id = ?")
      .bind(now, userId)
      .run();
    if (r.meta.changes !== 1) throw new ApiError(404, "not_found", "no such user");
    await revokeAllUserSessions(c.env.DB, userId, "suspended", now);
    await disconnectUser(c.env, userId, "user_suspended");
    auditDetail(c, { user: userId });
    return c.body(null, 204);
  });

  route("POST", "/users/:id/restore", "users", "restore a suspended user and clear a lockout", async (c) => {
    const userId = pathId(c.req.param("id"));
    const r = await c.env.DB.prepare(
      "UPDATE users SET status = 'active', failed_logins = 0, locked_until = 0, updated_at = ? WHERE id = ?",
    )
      .bind(Date.now(), userId)
      .run();
    if (r.meta.changes !== 1) throw new ApiError(404, "not_found", "no such user");
    auditDetail(c, { user: userId });
    return c.body(null, 204);
  });

  route(
    "POST",
    "/users/:id/revoke-tokens",
    "tokens",
    "revoke every session and access token of a user",
    async (c) => {
      const userId = pathId(c.req.param("id"));
      const exists = await c.env.DB.prepare("SELECT 1 AS x FROM users WHERE id = ?").bind(userId).first();
      if (exists === null) throw new ApiError(404, "not_found", "no such user");
      await revokeAllUserSessions(c.env.DB, userId, "admin", Date.now());
      await disconnectUser(c.env, userId, "tokens_revoked");
      auditDetail(c, { user: userId });
      return c.body(null, 204);
    },
  );

  route("POST", "/token-families/:id/revoke", "tokens", "revoke one refresh-token family", async (c) => {
    const familyId = pathId(c.req.param("id"));
    const found = await c.env.DB.prepare("SELECT 1 AS x FROM refresh_families WHERE id = ?")
      .bind(familyId)
      .first();
    if (found === null) throw new ApiError(404, "not_found", "no such token family");
    await revokeFamily(c.env.DB, familyId, "admin", Date.now());
    auditDetail(c, { family: familyId });
    return c.body(null, 204);
  });

  route("GET", "/devices", "read", "list and search devices (?userId=, ?q= name substring)", async (c) => {
    const q = (c.req.query("q") ?? "").slice(0, 100).replace(/[\\%_]/g, (m) => `\\${m}`);
    const userId = c.req.query("userId");
    const { results } = await c.env.DB.prepare(
      `SELECT id, user_id, name, created_at, last_seen_at, revoked_at FROM devices
        WHERE name LIKE ? ESCAPE '\\' AND (? IS NULL OR user_id = ?) AND id > ? ORDER BY id LIMIT ?`,
    )
      .bind(
        `%${q}%`,
        userId ?? null,
        userId ?? null,
        c.req.query("after") ?? "",
        limitOf(c.req.query("limit")),
      )
      .all();
    return c.json({ devices: results });
  });

  route("POST", "/devices/:id/revoke", "devices", "revoke a device", async (c) => {
    const deviceId = pathId(c.req.param("id"));
    if (!(await revokeDevice(c.env.DB, deviceId, Date.now())))
      throw new ApiError(404, "not_found", "no such active device");
    await disconnectDevice(c.env, deviceId, "device_revoked");
    auditDetail(c, { device: deviceId });
    return c.body(null, 204);
  });

  systemAdminRoutes(route);
  relayAdminRoutes(route);
  incidentAdminRoutes(route);
  alertAdminRoutes(route);
  if (ADMIN_ROUTES.length === 0) ADMIN_ROUTES.push(...table);
  return app;
}
