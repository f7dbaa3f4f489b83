import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";

/** Placeholder: relay enrollment, register and heartbeat under /v1/relays (issue 4). */
export function relayRoutes(): Hono<AppEnv> {
  return new Hono<AppEnv>();
}
