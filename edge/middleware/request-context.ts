import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { clientAddress } from "../net/client-address.ts";

/** A request id for logs and the audit trail, and the client address (DESIGN.md: Edge). */
export function requestContext(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("requestId", crypto.randomUUID());
    await next();
  };
}

/** Resolves the client address once the configuration (proxy trust) is known. */
export function resolveClientAddress(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set(
      "clientAddress",
      clientAddress(c.req.raw.headers, { trustProxyHeaders: c.get("config").trustProxyHeaders }),
    );
    await next();
  };
}
