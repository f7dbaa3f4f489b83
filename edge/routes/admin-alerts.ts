import { z } from "zod";
import { ApiError } from "../errors.ts";
import { auditDetail } from "../middleware/admin-auth.ts";
import { readJson } from "../middleware/body.ts";
import { monitorStub } from "../services/monitor.ts";
import type { adminRouter } from "./admin-route-table.ts";

/**
 * Alerts (issue 6): list, read and acknowledge what the Monitor Durable Object detected. The "audit" scope, like
 * the audit log and incidents: alerts are security telemetry of the same kind. Acknowledging is audited like every
 * admin request (with the alert id in the row's detail). `wavry admin alerts` calls exactly these paths.
 */

const ALERT_ID = /^alr_[A-Za-z0-9_-]{1,40}$/;
const STATUSES = ["open", "acked", "all"] as const;
const ackBody = z.strictObject({ note: z.string().min(1).max(500).optional() });

function alertId(value: string | undefined): string {
  if (value === undefined || !ALERT_ID.test(value)) throw new ApiError(404, "not_found", "no such alert");
  return value;
}

export function alertAdminRoutes(route: ReturnType<typeof adminRouter>): void {
  route(
    "GET",
    "/alerts",
    "audit",
    "list alerts, newest first (?status=open|acked|all, ?limit=)",
    async (c) => {
      const status = c.req.query("status") ?? "open";
      if (!(STATUSES as readonly string[]).includes(status))
        throw new ApiError(400, "bad_request", "status is open, acked or all");
      const limit = Number(c.req.query("limit") ?? 50);
      const alerts = await monitorStub(c.env).list(
        status as (typeof STATUSES)[number],
        Number.isInteger(limit) && limit >= 1 && limit <= 500 ? limit : 50,
      );
      return c.json({ alerts });
    },
  );

  route("GET", "/alerts/:id", "audit", "one alert with its counts and delivery state", async (c) => {
    const alert = await monitorStub(c.env).get(alertId(c.req.param("id")));
    if (alert === null) throw new ApiError(404, "not_found", "no such alert");
    return c.json({ alert });
  });

  route("POST", "/alerts/:id/ack", "audit", "acknowledge an alert { note? }", async (c) => {
    const id = alertId(c.req.param("id"));
    // The body is optional: only a request that declares one is parsed (and then strictly).
    const body: z.infer<typeof ackBody> =
      c.req.header("content-type") === undefined ? {} : await readJson(c, ackBody);
    const alert = await monitorStub(c.env).ack(id, c.get("admin").tokenId, body.note ?? null);
    if (alert === null) throw new ApiError(404, "not_found", "no such alert");
    auditDetail(c, { alert: id, rule: alert.rule });
    return c.json({ alert });
  });
}
