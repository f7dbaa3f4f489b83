import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";

/** Placeholder: GET /v1/signal WebSocket upgrade and tickets (issue 4). */
export function signalRoutes(): Hono<AppEnv> {
  return new Hono<AppEnv>();
}
