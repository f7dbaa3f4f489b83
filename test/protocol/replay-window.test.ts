import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { REPLAY_WINDOW_SIZE, ReplayWindow } from "../../protocol/transport/replay-window.ts";

// In the spirit of wireguard-go's replay_test.go: a scripted walk over the window's edges, then a
// model-based property against the plain definition of the window.
const W = REPLAY_WINDOW_SIZE;

describe("replay window", () => {
  it("is at least 2048 packets wide", () => {
    expect(W).toBeGreaterThanOrEqual(2048);
  });

  it("walks the edges: duplicates, backwards, the last slot in the window and the first slot out of it", () => {
    const window = new ReplayWindow();
    const steps: [number, boolean][] = [
      [0, true],
      [0, false],
      [1, true],
      [1, false],
      [9, true],
      [8, true],
      [7, true],
      [7, false],
      [W, true], // far ahead, still close enough that 1..W-1 stay valid
      [W - 1, true],
      [1, false], // already seen
      [2, true], // W - 2 behind: inside
      [0, false], // W behind: outside (and seen)
      [W + 1, true],
      [2, false], // seen
      [3, true], // W - 2 behind
      [1, false], // W behind: now outside
      [W * 3, true], // large jump
      [W * 3 - W, false], // exactly W behind: outside
      [W * 3 - W + 1, true], // W - 1 behind: the last slot inside
      [W * 3 - W + 1, false],
      [W * 3 - 1, true],
      [W * 3, false],
    ];
    steps.forEach(([counter, expected], i) => {
      expect(window.accept(counter), `step ${i}: counter ${counter}`).toBe(expected);
    });
  });

  it("accepts a whole window received backwards, then nothing twice", () => {
    const window = new ReplayWindow();
    for (let c = W - 1; c >= 0; c--) expect(window.accept(c)).toBe(true);
    for (let c = 0; c < W; c++) expect(window.check(c)).toBe(false);
    expect(window.accept(W)).toBe(true);
  });

  it("check() never changes the window; accept() only marks new counters", () => {
    const window = new ReplayWindow();
    expect(window.check(5)).toBe(true);
    expect(window.check(5)).toBe(true);
    expect(window.highest).toBe(-1);
    expect(window.accept(5)).toBe(true);
    expect(window.check(5)).toBe(false);
    expect(window.highest).toBe(5);
  });

  it("handles jumps across many ring lengths and counters near 2^53 without losing precision", () => {
    const window = new ReplayWindow();
    const big = 2 ** 52 + 12345;
    expect(window.accept(big)).toBe(true);
    expect(window.accept(big - 1)).toBe(true);
    expect(window.accept(big - 1)).toBe(false);
    expect(window.accept(big - W)).toBe(false);
    expect(window.accept(Number.MAX_SAFE_INTEGER - 1)).toBe(true);
    expect(window.accept(big)).toBe(false);
  });

  it("refuses counters at or above the limit, negative and non-integer counters", () => {
    const window = new ReplayWindow(1000);
    expect(window.accept(999)).toBe(true);
    expect(window.accept(1000)).toBe(false);
    expect(window.accept(-1)).toBe(false);
    expect(window.accept(1.5)).toBe(false);
    expect(window.accept(Number.NaN)).toBe(false);
  });

  it("matches the definition on random traffic (reordering, duplicates, jumps)", () => {
    const step = fc.oneof(
      fc.integer({ min: -W - 100, max: 64 }), // near the front: reordering and duplicates
      fc.integer({ min: 0, max: 3 * W }), // across block and ring boundaries
      fc.constant(10 * W), // a jump
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 400 }), (deltas) => {
        const window = new ReplayWindow();
        const seen = new Set<number>();
        let highest = -1;
        for (const delta of deltas) {
          const counter = Math.max(0, highest + delta);
          const expected = !seen.has(counter) && (counter > highest || highest - counter < W);
          expect(window.accept(counter)).toBe(expected);
          if (expected) {
            seen.add(counter);
            highest = Math.max(highest, counter);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
