import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { isBlocked } from "../services/address-blocks.ts";

/**
 * Refuses requests from blocked address ranges (403). Fails closed: if the block list cannot be read, the request
 * is refused with 503 rather than let through unchecked.
 */
export function addressBlock(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const address = c.get("clientAddress");
    if (address !== null) {
      let blocked: boolean;
      try {
        blocked = await isBlocked(c.env.DB, address, Date.now());
      } catch {
        throw new ApiError(503, "unavailable", "temporarily unavailable");
      }
      if (blocked) throw new ApiError(403, "address_blocked", "requests from this address range are blocked");
    }
    await next();
  };
}
