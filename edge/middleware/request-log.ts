import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import { logEvent, useLogHashKey } from "../log.ts";

/** How a status reads in the log: the outcome field every line carries. */
export function requestOutcome(status: number): "ok" | "refused" | "rejected" | "failed" {
  if (status < 400) return "ok";
  if (status === 401 || status === 403 || status === 429) return "refused";
  if (status < 500) return "rejected";
  return "failed";
}

/**
 * One `request` line for every request, written once the response is known (DESIGN.md, "Monitoring and incident
 * response"): the request id, the method, the matched route PATTERN (`/v1/devices/:id`, never the raw path or
 * query, which may hold a ticket or an id an attacker chose), the status, the outcome, the API error code, the
 * duration, the client address as a keyed hash, and the principal's ids once authenticated. Registered right
 * after `requestContext`, so refusals by the configuration guard, the address block and the rate limits are
 * logged too. It also hands the isolate's log hash key to edge/log.ts.
 */
export function requestLog(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = Date.now();
    useLogHashKey(c.env);
    await next();
    const status = c.res.status;
    const vars = c.var as Partial<AppEnv["Variables"]>;
    const principal = vars.principal;
    logEvent(status >= 500 ? "error" : "info", "edge", "request", requestOutcome(status), {
      requestId: vars.requestId ?? null,
      method: c.req.method.slice(0, 10),
      route: routePath(c, -1),
      status,
      errorCode: vars.errorCode ?? null,
      durationMs: Date.now() - started,
      clientAddress: vars.clientAddress ?? null,
      userId: principal?.userId ?? null,
      deviceId: principal?.kind === "device" ? principal.deviceId : null,
      adminTokenId: vars.admin?.tokenId ?? null,
    });
  };
}
