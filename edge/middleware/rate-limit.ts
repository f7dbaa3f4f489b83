import type { Context, MiddlewareHandler } from "hono";
import type { TakeResult } from "../../durable/rate-limiter.ts";
import type { AppEnv } from "../app-env.ts";
import type { RateBudget } from "../env.ts";
import { ApiError } from "../errors.ts";

/** What to do when the limiter itself cannot be reached. */
export type LimiterFailure = "open" | "closed";

/**
 * Takes one token from the Durable Object bucket named `key`. Returns null when the budget is disabled (limit 0,
 * development only). When the limiter is unreachable: "open" lets the request through, "closed" refuses it (503).
 */
export async function takeToken(
  c: Context<AppEnv>,
  key: string,
  budget: RateBudget,
  onFailure: LimiterFailure,
  cost = 1,
): Promise<TakeResult | null> {
  if (budget.limit === 0) return null;
  try {
    const stub = c.env.RATE_LIMITER.get(c.env.RATE_LIMITER.idFromName(key));
    return await stub.take(budget.limit, budget.windowSecs, cost);
  } catch {
    if (onFailure === "open") return null;
    throw new ApiError(503, "unavailable", "rate limiter unavailable; try again shortly");
  }
}

/** Refills the bucket named `key` (best effort). */
export async function resetBucket(c: Context<AppEnv>, key: string): Promise<void> {
  try {
    const stub = c.env.RATE_LIMITER.get(c.env.RATE_LIMITER.idFromName(key));
    await stub.reset();
  } catch {
    // A bucket that stays drained refills by itself.
  }
}

/** Throws 429 with Retry-After when a take was refused. */
export function enforce(result: TakeResult | null): void {
  if (result !== null && !result.allowed) {
    throw new ApiError(429, "rate_limited", "too many requests", {
      "Retry-After": String(result.retryAfterSecs),
    });
  }
}

/**
 * A per-address rate limit. `scope` names the budget (and the bucket family); requests without a known address
 * share one bucket, which fails safe.
 */
export function rateLimit(
  scope: string,
  pick: (c: Context<AppEnv>) => RateBudget,
  onFailure: LimiterFailure,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const address = c.get("clientAddress") ?? "unknown";
    enforce(await takeToken(c, `${scope}:${address}`, pick(c), onFailure));
    await next();
  };
}
