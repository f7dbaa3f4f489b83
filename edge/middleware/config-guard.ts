import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { loadConfig } from "../env.ts";
import { ApiError } from "../errors.ts";

/**
 * Validates the configuration (once per isolate) and fails every request closed when it is invalid. The message
 * names each bad setting so an operator can fix it; it never echoes a value.
 */
export function configGuard(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const result = loadConfig(c.env);
    if (!result.ok) {
      throw new ApiError(
        503,
        "configuration_error",
        `server configuration is invalid: ${result.problems.join("; ")}`,
      );
    }
    c.set("config", result.config);
    await next();
  };
}
