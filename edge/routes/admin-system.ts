import type { Handler } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { type AdminScope, auditDetail } from "../middleware/admin-auth.ts";
import { readJson } from "../middleware/body.ts";
import { formatCidr, parseCidr } from "../net/cidr.ts";
import { randomToken } from "../security/tokens-util.ts";
import { clearBlockCache, MAX_BLOCKS } from "../services/address-blocks.ts";
import { readAudit, verifyAuditChain } from "../services/audit.ts";
import { rotateSigningKeys } from "../services/signing-keys.ts";
import type { AdminRoute } from "./admin-route-table.ts";

type Route = (
  method: AdminRoute["method"],
  path: string,
  scope: AdminScope,
  summary: string,
  handler: Handler<AppEnv>,
) => void;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const blockBody = z.strictObject({
  cidr: z.string().min(2).max(64),
  reason: z.string().min(1).max(200),
  ttlSecs: z
    .number()
    .int()
    .min(60)
    .max(365 * 86_400)
    .optional(),
});

/** Address blocks, token-signing keys and the audit log. */
export function systemAdminRoutes(route: Route): void {
  route("GET", "/address-blocks", "read", "list address blocks", async (c) => {
    const { results } = await c.env.DB.prepare(
      "SELECT id, cidr, reason, created_by, created_at, expires_at FROM address_blocks ORDER BY created_at DESC LIMIT ?",
    )
      .bind(MAX_BLOCKS)
      .all();
    return c.json({ blocks: results });
  });

  route(
    "POST",
    "/address-blocks",
    "users",
    "block an address range (CIDR), enforced on every request",
    async (c) => {
      const body = await readJson(c, blockBody);
      const parsed = parseCidr(body.cidr);
      if (parsed === null) throw new ApiError(400, "invalid_body", "invalid field: cidr");
      const cidr = formatCidr(parsed);
      const count = await c.env.DB.prepare("SELECT COUNT(*) AS n FROM address_blocks").first<{ n: number }>();
      if ((count?.n ?? 0) >= MAX_BLOCKS)
        throw new ApiError(409, "conflict", "too many address blocks; remove some first");
      const blockId = `blk_${randomToken(random, 16)}`;
      const now = Date.now();
      const r = await c.env.DB.prepare(
        "INSERT OR IGNORE INTO address_blocks (id, cidr, reason, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
        .bind(
          blockId,
          cidr,
          body.reason,
          c.get("admin").tokenId,
          now,
          body.ttlSecs === undefined ? null : now + body.ttlSecs * 1000,
        )
        .run();
      if (r.meta.changes !== 1) throw new ApiError(409, "conflict", "that range is already blocked");
      clearBlockCache();
      auditDetail(c, { block: blockId, cidr });
      return c.json({ id: blockId, cidr }, 201);
    },
  );

  route("DELETE", "/address-blocks/:id", "users", "unblock an address range", async (c) => {
    const blockId = c.req.param("id") ?? "";
    const r = await c.env.DB.prepare("DELETE FROM address_blocks WHERE id = ?")
      .bind(blockId.slice(0, 64))
      .run();
    if (r.meta.changes !== 1) throw new ApiError(404, "not_found", "no such block");
    clearBlockCache();
    auditDetail(c, { unblocked: blockId.slice(0, 64) });
    return c.body(null, 204);
  });

  route("GET", "/keys", "read", "list token-signing keys and their states (public parts only)", async (c) => {
    const { results } = await c.env.DB.prepare(
      "SELECT kid, status, created_at, activated_at, retire_at, retired_at FROM signing_keys ORDER BY created_at DESC LIMIT 100",
    ).all();
    return c.json({ keys: results });
  });

  route(
    "POST",
    "/keys/rotate",
    "keys",
    "rotate token-signing keys: next -> current -> previous -> retired",
    async (c) => {
      const config = c.get("config");
      // The old current key keeps verifying until every access token it signed has expired.
      const graceMs = (config.accessTokenTtlSecs + 60) * 1000;
      const result = await rotateSigningKeys(c.env.DB, config.signingKeyWrapKeys, Date.now(), graceMs);
      auditDetail(c, { current: result.current, next: result.next, previous: result.previous });
      return c.json(result);
    },
  );

  route("GET", "/audit", "audit", "read the audit log, newest first (?before=seq, ?limit=)", async (c) => {
    const before = Number(c.req.query("before"));
    const limit = Number(c.req.query("limit") ?? 100);
    const rows = await readAudit(
      c.env.DB,
      Number.isSafeInteger(before) && before > 0 ? before : null,
      Number.isInteger(limit) && limit >= 1 && limit <= 500 ? limit : 100,
    );
    return c.json({ entries: rows });
  });

  route("GET", "/audit/verify", "audit", "recompute the audit hash chain", async (c) => {
    return c.json(await verifyAuditChain(c.env.DB));
  });
}
