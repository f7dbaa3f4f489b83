import { Hono } from "hono";
import { PROTOCOL_VERSION } from "../../protocol/wire/version.ts";
import type { AppEnv } from "../app-env.ts";
import { publicJwks } from "../services/signing-keys.ts";

/** Unauthenticated routes: health and the public token keys. */
export function publicRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  /** Liveness; answers only when the configuration is valid (the guard runs first). */
  app.get("/healthz", (c) => c.json({ ok: true, protocolVersion: PROTOCOL_VERSION }));

  /** The keys that may verify tokens now or soon: current, next, and previous within its grace period. */
  app.get("/.well-known/jwks.json", async (c) => {
    const jwks = await publicJwks(c.env.DB, c.get("config").signingKeyWrapKeys, Date.now());
    c.header("Cache-Control", "public, max-age=300");
    return c.json(jwks);
  });

  return app;
}
