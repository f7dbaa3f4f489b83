import { DurableObject } from "cloudflare:workers";

/** The outcome of taking from a bucket. */
export interface TakeResult {
  readonly allowed: boolean;
  readonly remaining: number;
  /** Whole seconds until one token is back (0 when allowed). */
  readonly retryAfterSecs: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * One token bucket per object (the object's name is the bucket key), so every decision for a key is made in one
 * place, one request at a time: exact under concurrency. State lives in the object's SQLite-backed storage, so an
 * eviction does not hand an attacker a fresh budget; an alarm deletes a bucket once it has refilled.
 */
export class RateLimiter extends DurableObject {
  /**
   * Takes `cost` tokens from a bucket of `limit` tokens refilled over `windowSecs`. A cost of 0 only looks: it is
   * allowed while at least one token is left, and takes nothing.
   */
  take(limit: number, windowSecs: number, cost = 1): TakeResult {
    if (!(Number.isInteger(limit) && limit > 0 && windowSecs > 0 && cost >= 0 && cost <= limit)) {
      throw new RangeError("invalid bucket parameters");
    }
    const now = Date.now();
    const refillPerMs = limit / (windowSecs * 1000);
    const stored = this.ctx.storage.kv.get<Bucket>("bucket");
    const bucket: Bucket = stored ?? { tokens: limit, updatedAt: now };
    bucket.tokens = Math.min(limit, bucket.tokens + (now - bucket.updatedAt) * refillPerMs);
    bucket.updatedAt = now;
    // A cost of 0 peeks: "allowed" then means at least one token is left.
    const needed = Math.max(cost, 1);
    const allowed = bucket.tokens >= needed;
    if (allowed) bucket.tokens -= cost;
    this.ctx.storage.kv.put("bucket", bucket);
    const missing = Math.max(0, (allowed ? 0 : needed) - bucket.tokens);
    const retryAfterSecs = allowed ? 0 : Math.max(1, Math.ceil(missing / refillPerMs / 1000));
    // Forget the bucket once it would be full again.
    const fullAt = now + Math.ceil((limit - bucket.tokens) / refillPerMs);
    void this.ctx.storage.setAlarm(fullAt + 1000);
    return { allowed, remaining: Math.floor(bucket.tokens), retryAfterSecs };
  }

  /** Refills the bucket (e.g. a successful login clears its failure bucket). */
  reset(): void {
    this.ctx.storage.kv.delete("bucket");
  }

  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
