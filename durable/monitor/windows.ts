/**
 * Sliding-window counters for the monitor (issue 6). A window of `windowMs` is cut into {@link WINDOW_BUCKETS}
 * buckets, so a counter holds at most that many pairs plus one, however many events it sees. The count covers every bucket
 * that overlaps the window: it may include events up to one bucket width (windowMs / 12) older than the window,
 * never fewer than the window holds. That slack only ever makes a rule fire a little earlier, not later.
 *
 * Pure: no clock, no storage. The caller passes event times and keeps the entries (entry-store.ts).
 */

/** Buckets per window. */
export const WINDOW_BUCKETS = 12;

/** One counter: `[bucketStart, count]` pairs, oldest first. */
export interface WindowEntry {
  readonly t: "w";
  readonly b: readonly (readonly [number, number])[];
}

/** True for a value shaped like a {@link WindowEntry} (stored entries are checked before use). */
export function isWindowEntry(value: unknown): value is WindowEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as { t?: unknown; b?: unknown };
  return (
    v.t === "w" &&
    Array.isArray(v.b) &&
    v.b.every(
      (pair) =>
        Array.isArray(pair) && pair.length === 2 && Number.isFinite(pair[0]) && Number.isFinite(pair[1]),
    )
  );
}

function bucketWidth(windowMs: number): number {
  return Math.max(1, Math.ceil(windowMs / WINDOW_BUCKETS));
}

/**
 * Adds `n` at time `at` and returns the new entry and the count of the window ending at the newest bucket (an event
 * that arrives late still counts, in its own bucket, while that bucket is inside the window).
 */
export function addToWindow(
  entry: WindowEntry | undefined,
  at: number,
  n: number,
  windowMs: number,
): { readonly entry: WindowEntry; readonly count: number } {
  const width = bucketWidth(windowMs);
  const start = Math.floor(at / width) * width;
  const pairs = (entry?.b ?? []).map(([s, c]) => [s, c] as [number, number]);
  const hit = pairs.find(([s]) => s === start);
  if (hit !== undefined) hit[1] += n;
  else pairs.push([start, n]);
  pairs.sort((a, b) => a[0] - b[0]);
  const newest = pairs[pairs.length - 1]?.[0] ?? start;
  const live = pairs.filter(([s]) => inWindow(s, newest, windowMs, width));
  return { entry: { t: "w", b: live }, count: live.reduce((sum, [, c]) => sum + c, 0) };
}

/** The count of the window ending at `now` (0 once every bucket has left it). */
export function countInWindow(entry: WindowEntry | undefined, now: number, windowMs: number): number {
  if (entry === undefined) return 0;
  const width = bucketWidth(windowMs);
  const current = Math.floor(now / width) * width;
  let sum = 0;
  for (const [s, c] of entry.b) if (s <= current && inWindow(s, current, windowMs, width)) sum += c;
  return sum;
}

/**
 * A bucket is in the window ending with bucket `newest` when it starts after `newest - windowMs - width`: the
 * buckets kept span the window plus at most one bucket, so the count is never below the events of the last
 * `windowMs`, and at most one bucket's worth above.
 */
function inWindow(start: number, newest: number, windowMs: number, width: number): boolean {
  return start > newest - windowMs - width;
}
