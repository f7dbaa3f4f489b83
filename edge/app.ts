import { Hono } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "./app-env.ts";
import { ApiError, errorBody, renderError } from "./errors.ts";
import { addressBlock } from "./middleware/address-block.ts";
import { configGuard } from "./middleware/config-guard.ts";
import { rateLimit } from "./middleware/rate-limit.ts";
import { requestContext, resolveClientAddress } from "./middleware/request-context.ts";
import { requestLog } from "./middleware/request-log.ts";
import { securityHeaders } from "./middleware/security-headers.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { deviceRoutes } from "./routes/devices.ts";
import { publicRoutes } from "./routes/public.ts";
import { relayRoutes } from "./routes/relays.ts";
import { signalRoutes } from "./routes/signal.ts";

/**
 * The edge app. Middleware order matters: request id and security headers wrap everything (errors included);
 * the configuration guard fails closed before anything reads config; the address block and the global rate limit
 * run before any route does work.
 */
export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", requestContext());
  app.use("*", requestLog());
  app.use("*", securityHeaders());
  app.use("*", configGuard());
  app.use("*", resolveClientAddress());
  app.use("*", addressBlock());
  app.use(
    "*",
    cors({
      origin: (origin, c) => (c.get("config").allowedOrigins.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "PATCH", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type"],
      maxAge: 600,
    }),
  );
  // Global per-address budget. Fails open: if the limiter is unreachable, availability wins here; the auth, token
  // and admin budgets below fail closed.
  app.use(
    "*",
    rateLimit("global", (c) => c.get("config").rateLimits.global, "open"),
  );

  app.route("/", publicRoutes());
  app.route("/v1/auth", authRoutes());
  app.route("/v1/devices", deviceRoutes());
  app.route("/v1/relays", relayRoutes());
  app.route("/v1/signal", signalRoutes());
  app.route("/v1/admin", adminRoutes());

  app.notFound((c) => c.json(errorBody("not_found", "no such route"), 404));
  app.onError((error, c) => renderError(error, c));
  return app;
}

export { ApiError };
