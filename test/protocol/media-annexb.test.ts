import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AccessUnit, AnnexBParser } from "../../protocol/media/annexb.ts";
import { fuzzInputs } from "../support/fuzz.ts";

/** Real x264 output: the shipped clip (scripts/make-clip.sh), 60 pictures with AUDs, IDR every 30. */
const clip = new Uint8Array(readFileSync(new URL("../../endpoint/media/assets/clip.h264", import.meta.url)));
const CLIP_FRAMES = 60;

function parseInChunks(
  bytes: Uint8Array,
  sizes: readonly number[],
  parser = new AnnexBParser(),
): AccessUnit[] {
  const out: AccessUnit[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes.length === 0 ? bytes.length : (sizes[i % sizes.length] ?? 1);
    out.push(...parser.push(bytes.subarray(at, at + size)));
    at += size;
  }
  out.push(...parser.flush());
  return out;
}

function concat(units: readonly AccessUnit[]): Uint8Array {
  const out = new Uint8Array(units.reduce((n, u) => n + u.data.length, 0));
  let at = 0;
  for (const u of units) {
    out.set(u.data, at);
    at += u.data.length;
  }
  return out;
}

const nal = (header: number, ...body: number[]) => [0, 0, 0, 1, header, ...body];

describe("Annex B parser", () => {
  it("splits the clip into its 60 pictures on AUDs, keyframes where the IDRs are", () => {
    const units = parseInChunks(clip, []);
    expect(units).toHaveLength(CLIP_FRAMES);
    expect(units.flatMap((u, i) => (u.keyframe ? [i] : []))).toEqual([0, 30]);
    for (const u of units) expect([...u.data.subarray(0, 5)]).toEqual([0, 0, 0, 1, 0x09]);
    expect(concat(units)).toEqual(clip);
  });

  it("gives the same units for any chunking of the stream", () => {
    const whole = parseInChunks(clip, []);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 40 }), (sizes) => {
        const units = parseInChunks(clip, sizes);
        expect(units.map((u) => u.keyframe)).toEqual(whole.map((u) => u.keyframe));
        expect(units.map((u) => u.data)).toEqual(whole.map((u) => u.data));
      }),
      { numRuns: 25 },
    );
    // One byte at a time: every start code straddles a chunk boundary.
    expect(concat(parseInChunks(clip, [1]))).toEqual(clip);
  });

  it("splits streams without AUDs on the first slice of a new picture", () => {
    const stream = new Uint8Array([
      ...nal(0x67, 1, 2),
      ...nal(0x68, 3),
      ...nal(0x65, 0x88, 5), // IDR, first_mb_in_slice 0
      ...nal(0x65, 0x40, 6), // IDR, first_mb_in_slice 1: same picture
      ...nal(0x41, 0x9a, 7), // P slice, first_mb_in_slice 0: next picture
      ...nal(0x06, 5, 1, 0x80), // SEI after a slice: next unit
      ...nal(0x41, 0x9a, 8),
    ]);
    const units = parseInChunks(stream, [3]);
    expect(units.map((u) => [u.keyframe, u.data.length])).toEqual([
      [true, 27],
      [false, 7],
      [false, 15],
    ]);
  });

  it("an IDR without SPS and PPS is not a keyframe", () => {
    const units = parseInChunks(new Uint8Array([...nal(0x09, 0x10), ...nal(0x65, 0x88, 1)]), []);
    expect(units).toHaveLength(1);
    expect(units[0]?.keyframe).toBe(false);
  });

  it("drops an oversized unit with a counted reason, keeps memory bounded and recovers", () => {
    const parser = new AnnexBParser({ maxAccessUnitBytes: 1024 });
    const big = new Uint8Array([
      ...nal(0x09, 0x10),
      ...nal(0x41, 0x9a),
      ...new Array<number>(200_000).fill(0xff),
    ]);
    const units: AccessUnit[] = [];
    for (let at = 0; at < big.length; at += 4096) {
      units.push(...parser.push(big.subarray(at, at + 4096)));
      expect(parser.bufferedBytes).toBeLessThan(1024 + 4096 + 64);
    }
    units.push(...parser.push(clip.subarray(0, 20_000)), ...parser.flush());
    expect(parser.drops["too-large"]).toBeGreaterThanOrEqual(2); // the junk and the clip's 6 KB first picture
    expect(units.length).toBeGreaterThan(0);
    for (const u of units) expect(u.data.length).toBeLessThanOrEqual(1024);
  });

  it("counts leading garbage and NALs that never reach a picture", () => {
    const parser = new AnnexBParser();
    const units = parser.push(
      new Uint8Array([7, 7, 7, ...nal(0x67, 1), ...nal(0x09, 0x10), ...nal(0x41, 0x9a)]),
    );
    units.push(...parser.flush());
    expect(units).toHaveLength(1);
    expect(parser.drops.garbage).toBe(1);
    expect(parser.drops["no-picture"]).toBe(1);
  });

  it("rejects bad limits when built", () => {
    expect(() => new AnnexBParser({ maxAccessUnitBytes: 0 })).toThrow(RangeError);
    expect(() => new AnnexBParser({ maxAccessUnitBytes: 8 * 1024 * 1024 })).toThrow(RangeError);
  });

  it("never throws on 100,000 arbitrary inputs, and never emits more than the limit", () => {
    const units = parseInChunks(clip, []);
    const corpus = units.slice(0, 8).map((u) => u.data.subarray(0, 600));
    const parser = new AnnexBParser({ maxAccessUnitBytes: 512 });
    let emitted = 0;
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0x264,
      maxLength: 700,
      corpus,
      prefixes: [
        [0, 0, 1],
        [0, 0, 0, 1, 0x09],
        [0, 0, 1, 0x65],
        [0, 0, 0, 1, 0x41],
      ],
    })) {
      for (const u of parser.push(input)) {
        emitted++;
        expect(u.data.length).toBeGreaterThan(0);
        expect(u.data.length).toBeLessThanOrEqual(512);
      }
      if (input.length % 7 === 0) parser.flush();
    }
    expect(emitted).toBeGreaterThan(0);
  });
});
