/**
 * The relay's one source of time, passed in everywhere (STYLE.md, after tailscale derp) so tests can move it.
 * Wall-clock milliseconds: lease `iat`/`exp` are wall-clock seconds, and rate limits only need differences,
 * which are clamped at zero where a step backwards could matter.
 */
export interface Clock {
  nowMs(): number;
}

/** `Date.now()`. */
export const systemClock: Clock = { nowMs: () => Date.now() };
