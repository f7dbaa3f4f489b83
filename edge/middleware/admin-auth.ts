import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { ApiError, renderError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { keyedHash } from "../security/keyed-hash.ts";
import { sha256Hex } from "../security/tokens-util.ts";
import type { AuditEntry } from "../services/audit.ts";
import { monitorAdminRequest } from "../services/monitor.ts";
import { bearerToken } from "../services/tokens.ts";
import { enforce, takeToken } from "./rate-limit.ts";

/** Admin scopes: least privilege, each route needs exactly one. */
export const ADMIN_SCOPES = ["read", "users", "devices", "relays", "keys", "audit", "tokens"] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** Admin tokens are opaque; the prefix lets secret scanners recognise a leaked one. */
export const ADMIN_TOKEN_PREFIX = "wvadm_";

interface AdminRow {
  id: string;
  scopes: string;
  expires_at: number;
  revoked_at: number | null;
}

/**
 * Wraps every /v1/admin request: the admin rate limit (fails closed), then, whatever happened (allowed, refused,
 * not found, failed), one row in the hash-chained audit log. If the audit row cannot be written the response
 * becomes a 503: an admin action is never reported as done without its trace.
 */
export function auditAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    try {
      enforce(
        await takeToken(
          c,
          `admin:${c.get("clientAddress") ?? "unknown"}`,
          c.get("config").rateLimits.admin,
          "closed",
        ),
      );
      await next();
    } catch (error) {
      // Render here so the audit row records the refusal's status and code.
      c.res = renderError(error, c);
    }
    const status = c.res.status;
    const admin = c.get("admin") as AppEnv["Variables"]["admin"] | undefined;
    const address = c.get("clientAddress");
    const entry: AuditEntry = {
      at: Date.now(),
      requestId: c.get("requestId"),
      actor: admin?.tokenId ?? null,
      method: c.req.method,
      path: new URL(c.req.url).pathname.slice(0, 200),
      status,
      outcome: status < 400 ? "allowed" : "refused",
      reason: status < 400 ? null : ((c.get("errorCode") as string | undefined) ?? null),
      addressHash: address === null ? null : await keyedHash(c.get("config").logHashKey, address),
      detail: (c.get("auditDetail") as string | undefined) ?? null,
    };
    monitorAdminRequest(c, status, admin?.tokenId ?? null);
    if (status >= 400) {
      logEvent("warn", "admin", "admin_request", "refused", {
        requestId: entry.requestId,
        adminTokenId: entry.actor,
        errorCode: entry.reason,
        status,
        clientAddress: address,
      });
    }
    try {
      const log = c.env.AUDIT_LOG.get(c.env.AUDIT_LOG.idFromName("audit"));
      await log.append(entry);
    } catch {
      c.res = undefined;
      c.res = c.json(
        { error: { code: "unavailable", message: "audit log unavailable; the request was not recorded" } },
        503,
      );
    }
  };
}

/** Records ids of what an admin request touched (never secrets) in its audit row. */
export function auditDetail(
  c: Context<AppEnv>,
  detail: Record<string, string | number | boolean | null>,
): void {
  c.set("auditDetail", JSON.stringify(detail).slice(0, 1000));
}

/**
 * Requires an admin token holding `scope`. No token: 401 unauthorized; unknown, expired or revoked token: 401
 * invalid_token; valid token without the scope: 403 insufficient_scope (its id is still recorded as the actor).
 */
export function requireAdmin(scope: AdminScope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    if (token === null) {
      throw new ApiError(401, "unauthorized", "admin token required", {
        "WWW-Authenticate": 'Bearer realm="wavry-admin"',
      });
    }
    if (!token.startsWith(ADMIN_TOKEN_PREFIX))
      throw new ApiError(401, "invalid_token", "invalid admin token");
    const now = Date.now();
    const row = await c.env.DB.prepare(
      "SELECT id, scopes, expires_at, revoked_at FROM admin_tokens WHERE token_hash = ?",
    )
      .bind(await sha256Hex(token))
      .first<AdminRow>();
    if (row === null || row.revoked_at !== null || row.expires_at <= now) {
      if (row !== null) c.set("admin", { tokenId: row.id, scopes: [] });
      throw new ApiError(401, "invalid_token", "invalid admin token");
    }
    const scopes = row.scopes.split(" ").filter((s) => s !== "");
    c.set("admin", { tokenId: row.id, scopes });
    if (!scopes.includes(scope))
      throw new ApiError(403, "insufficient_scope", `this route needs the "${scope}" scope`);
    c.executionCtx.waitUntil(
      c.env.DB.prepare("UPDATE admin_tokens SET last_used_at = ? WHERE id = ?")
        .bind(now, row.id)
        .run()
        .catch(() => undefined),
    );
    await next();
  };
}
