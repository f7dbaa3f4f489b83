/**
 * Video frame ids are u32 and wrap. They are compared with serial-number arithmetic (RFC 1982 §3.2): `a` is
 * before `b` when `b - a` taken modulo 2^32 lies in (0, 2^31). A receiver only ever compares ids that are a
 * few hundred apart, far inside that half range.
 */

/** `a - b` as a signed distance in (-2^31, 2^31]: negative when `a` is before `b`. */
export function frameIdDistance(a: number, b: number): number {
  return (a - b) | 0;
}

/** True when `a` comes before `b` in serial order. */
export function frameIdBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** The id after `id`, wrapping at 2^32. */
export function nextFrameId(id: number): number {
  return (id + 1) >>> 0;
}

/** `id + n` modulo 2^32 (n may be negative). */
export function addFrameId(id: number, n: number): number {
  return (id + n) >>> 0;
}
