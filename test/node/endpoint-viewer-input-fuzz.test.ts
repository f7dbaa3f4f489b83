import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseInputMessage } from "../../endpoint/viewer/input-message.ts";
import { fuzzInputs } from "../support/fuzz.ts";

// The page is less trusted than the daemon: its input messages go through parseInputMessage, which must answer a
// typed event or undefined for anything, never throw.
const VALID = [
  '{"t":"key","down":true,"code":"KeyA","mods":0}',
  '{"t":"abs","x":0.25,"y":0.5}',
  '{"t":"rel","dx":-3,"dy":7}',
  '{"t":"button","down":false,"button":2}',
  '{"t":"wheel","dx":0,"dy":-120}',
];

describe("viewer input messages", () => {
  it("accepts the documented shapes", () => {
    for (const text of VALID) expect(parseInputMessage(text), text).toBeDefined();
  });

  it("100,000 arbitrary inputs give an event or undefined, never an exception", () => {
    const corpus = VALID.map((v) => new TextEncoder().encode(v));
    const decoder = new TextDecoder();
    let accepted = 0;
    for (const bytes of fuzzInputs({
      count: 100_000,
      seed: 11,
      maxLength: 300,
      corpus,
      prefixes: [[0x7b, 0x22, 0x74]],
    })) {
      if (parseInputMessage(decoder.decode(bytes)) !== undefined) accepted++;
    }
    expect(accepted).toBeGreaterThan(0);
  });

  it("refuses out-of-range values and extra fields (property)", () => {
    fc.assert(
      fc.property(fc.double(), fc.double(), fc.integer(), (x, y, n) => {
        const abs = parseInputMessage(JSON.stringify({ t: "abs", x, y }));
        expect(abs !== undefined).toBe(
          Number.isFinite(x) && Number.isFinite(y) && x >= 0 && x <= 1 && y >= 0 && y <= 1,
        );
        const rel = parseInputMessage(JSON.stringify({ t: "rel", dx: n, dy: 0 }));
        expect(rel !== undefined).toBe(n >= -0x8000 && n <= 0x7fff);
        expect(parseInputMessage(JSON.stringify({ t: "rel", dx: 0, dy: 0, extra: n }))).toBeUndefined();
      }),
    );
  });
});
