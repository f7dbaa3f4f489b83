/**
 * A token bucket: `ratePerMs` tokens accrue per millisecond up to `burst`; taking more than there are fails and
 * takes nothing. Plain number fields (no allocation per call) because it sits on the forwarding path. A clock that
 * steps backwards refills nothing rather than draining.
 */
export class TokenBucket {
  tokens: number;
  lastMs: number;

  constructor(
    public ratePerMs: number,
    public burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /** Takes `cost` tokens if there are that many. */
  take(cost: number, nowMs: number): boolean {
    const elapsed = nowMs - this.lastMs;
    if (elapsed > 0) {
      const tokens = this.tokens + elapsed * this.ratePerMs;
      this.tokens = Math.min(tokens, this.burst);
      this.lastMs = nowMs;
    }
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Changes the rate and burst (a renewed lease), keeping the tokens there are, capped at the new burst. */
  reset(ratePerMs: number, burst: number): void {
    this.ratePerMs = ratePerMs;
    this.burst = burst;
    if (this.tokens > burst) this.tokens = burst;
  }
}

/** A bucket refilling `perSec` tokens a second. */
export function perSecond(perSec: number, burst: number, nowMs: number): TokenBucket {
  return new TokenBucket(perSec / 1000, burst, nowMs);
}
