import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";

/**
 * Security headers on every response, errors included. The API serves JSON only, so the policy forbids
 * everything a browser could load or run from it.
 */
export function securityHeaders(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    const h = c.res.headers;
    h.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
    h.set("Strict-Transport-Security", "max-age=63072000; includeSubDomains");
    h.set("X-Content-Type-Options", "nosniff");
    h.set("X-Frame-Options", "DENY");
    h.set("Referrer-Policy", "no-referrer");
    h.set("Cross-Origin-Opener-Policy", "same-origin");
    h.set("Cross-Origin-Resource-Policy", "same-site");
    h.set("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
    // Routes that are safe to cache (the JWKS) say so themselves; everything else is never stored.
    if (!h.has("Cache-Control")) h.set("Cache-Control", "no-store");
    h.set("X-Request-Id", c.get("requestId"));
  };
}
