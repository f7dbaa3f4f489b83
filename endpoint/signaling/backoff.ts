/** Reconnect delays for the signaling socket: exponential, bounded, with jitter. */

/** How reconnect delays grow. */
export interface BackoffOptions {
  /** The ceiling of the first retry. */
  readonly initialMs: number;
  /** No delay exceeds this. */
  readonly maxMs: number;
  /** Growth of the ceiling per failed attempt. */
  readonly factor: number;
}

/** 0.5 s, 1 s, 2 s, … up to 30 s (before jitter). */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2 };

/**
 * The delay before retry number `attempt` (0 for the first retry). "Equal jitter": between half the ceiling and the
 * ceiling, so endpoints that all lost the edge at once spread their reconnects out, yet none retries immediately.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  // The exponent is capped so a long outage cannot overflow to Infinity before the min().
  const ceiling = Math.min(options.maxMs, options.initialMs * options.factor ** Math.min(attempt, 32));
  const jitter = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + jitter * (ceiling / 2));
}
