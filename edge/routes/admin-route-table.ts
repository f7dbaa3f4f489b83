import type { Handler, Hono } from "hono";
import type { AppEnv } from "../app-env.ts";
import { type AdminScope, requireAdmin } from "../middleware/admin-auth.ts";

/** One admin route as declared: the preflight and the tests read this table, not a hand-kept list. */
export interface AdminRoute {
  readonly method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path below /v1/admin. */
  readonly path: string;
  /** The scope it needs; "bootstrap" only for the one route the bootstrap secret opens. */
  readonly scope: AdminScope | "bootstrap";
  readonly summary: string;
}

/** Declares routes on an admin sub-app and records them in `table`. */
export function adminRouter(app: Hono<AppEnv>, table: AdminRoute[]) {
  return (
    method: AdminRoute["method"],
    path: string,
    scope: AdminScope,
    summary: string,
    handler: Handler<AppEnv>,
  ) => {
    table.push({ method, path, scope, summary });
    app.on(method, path, requireAdmin(scope), handler);
  };
}
