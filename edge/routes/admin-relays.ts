import type { Handler } from "hono";
import type { AppEnv } from "../app-env.ts";
import type { AdminScope } from "../middleware/admin-auth.ts";
import type { AdminRoute } from "./admin-route-table.ts";

type Route = (
  method: AdminRoute["method"],
  path: string,
  scope: AdminScope,
  summary: string,
  handler: Handler<AppEnv>,
) => void;

/** Placeholder: admin routes for relays and lease keys (issue 4). */
export function relayAdminRoutes(_route: Route): void {}
