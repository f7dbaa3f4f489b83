import { Hono } from "hono";
import { PROTOCOL_VERSION } from "../protocol/wire/version.ts";

/** Bindings the edge expects (validated by the env module the edge issue adds). */
export interface EdgeBindings {
  readonly DB: D1Database;
  readonly WAVRY_ENVIRONMENT?: string;
}

const app = new Hono<{ Bindings: EdgeBindings }>();

/** Liveness: answers without touching D1 or a Durable Object. */
app.get("/healthz", (c) => c.json({ ok: true, protocolVersion: PROTOCOL_VERSION }));

app.notFound((c) => c.json({ error: { code: "not_found", message: "no such route" } }, 404));
app.onError((_error, c) => c.json({ error: { code: "internal", message: "internal error" } }, 500));

export default app;
