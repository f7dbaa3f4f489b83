import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import { Channel, decodeChannelPayload, FeedbackKind } from "../../protocol/channels/channel.ts";
import { CongestionController, linearSlope } from "../../protocol/media/congestion.ts";
import {
  type CongestionReport,
  decodeCongestionReport,
  encodeCongestionReport,
  FeedbackRecorder,
  MAX_RECORDER_SPAN,
  MAX_REPORT_PACKETS,
  reportArrivals,
  TICK_MS,
} from "../../protocol/media/congestion-feedback.ts";
import { type DecodeErrorCode, EncodeError } from "../../protocol/wire/decode.ts";
import { MAX_DATA_PLAINTEXT } from "../../protocol/wire/peer-frames.ts";
import { fuzzInputs, isViewInto } from "../support/fuzz.ts";

const CODES: readonly DecodeErrorCode[] = [
  "too-short",
  "too-large",
  "unsupported-version",
  "unknown-type",
  "bad-length",
  "bad-field",
];

function body(payload: Uint8Array): Uint8Array {
  const channel = decodeChannelPayload(payload);
  if (!channel.ok || channel.value.channel !== Channel.Feedback) throw new Error("not a feedback payload");
  return channel.value.body;
}
function decode(payload: Uint8Array): CongestionReport {
  const report = decodeCongestionReport(body(payload));
  if (!report.ok) throw new Error(`undecodable report: ${report.error}`);
  return report.value;
}
/** Arrival ticks of a report as absolute values (undefined = lost), comparable with what was encoded. */
function absolute(report: CongestionReport): (number | undefined)[] {
  return [...reportArrivals(report)].map((t) => (Number.isNaN(t) ? undefined : report.baseTime + t));
}

/** Arrival lists an encoder accepts: consecutive received packets at most int16 ticks apart. */
const arrivalsArb = fc
  .array(fc.option(fc.integer({ min: -0x8000, max: 0x7fff }), { nil: undefined, freq: 3 }), {
    minLength: 1,
    maxLength: MAX_REPORT_PACKETS,
  })
  .chain((deltas) =>
    fc.integer({ min: 0, max: 0xffff_0000 }).map((start) => {
      let time = start;
      return deltas.map((d) => {
        if (d === undefined) return undefined;
        time += d;
        return time;
      });
    }),
  );

describe("congestion report codec", () => {
  it("round-trips sequence ranges, losses and arrival times (negative deltas included)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - MAX_REPORT_PACKETS }),
        arrivalsArb,
        (seq, arrivals) => {
          const payload = encodeCongestionReport(seq, arrivals);
          expect(payload.length).toBeLessThanOrEqual(MAX_DATA_PLAINTEXT);
          const report = decode(payload);
          expect(report.baseSeq).toBe(seq);
          expect(report.count).toBe(arrivals.length);
          expect(isViewInto(report.bitmap, payload)).toBe(true);
          const received = arrivals.filter((a) => a !== undefined) as number[];
          expect(report.receivedCount).toBe(received.length);
          // Only differences and base_time mod 2^32 travel.
          const first = received[0];
          const offsets = absolute(report).map((t) => (t === undefined ? undefined : t - report.baseTime));
          expect(offsets).toEqual(
            arrivals.map((a) => (a === undefined || first === undefined ? undefined : a - first)),
          );
          if (first !== undefined) expect(report.baseTime).toBe(((first % 2 ** 32) + 2 ** 32) % 2 ** 32);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("matches the documented bytes", () => {
    const payload = encodeCongestionReport(0x1_0000_0002, [100, undefined, 98, 140]);
    expect(toHex(payload)).toBe(
      "04" + // feedback channel
        "01" + // kind: congestion report
        "00" + // reserved
        "0400" + // count 4
        "0200000001000000" + // base_seq
        "64000000" + // base_time = 100 ticks
        "0d" + // bitmap 0b1101
        "feff" + // 98 - 100
        "2a00", // 140 - 98
    );
    expect(FeedbackKind.CongestionReport).toBe(1);
    expect(TICK_MS).toBe(0.025);
  });

  it("refuses malformed reports with typed errors", () => {
    const good = body(encodeCongestionReport(5, [1, 2, undefined]));
    const patched = (at: number, value: number) => {
      const copy = good.slice();
      copy[at] = value;
      return decodeCongestionReport(copy);
    };
    expect(decodeCongestionReport(good).ok).toBe(true);
    expect(decodeCongestionReport(new Uint8Array(0))).toEqual({ ok: false, error: "too-short" });
    expect(decodeCongestionReport(good.subarray(0, 15))).toEqual({ ok: false, error: "too-short" });
    expect(patched(0, 2)).toEqual({ ok: false, error: "unknown-type" });
    expect(patched(1, 1)).toEqual({ ok: false, error: "bad-field" });
    expect(patched(2, 0)).toEqual({ ok: false, error: "bad-field" }); // count 0
    expect(patched(3, 2)).toEqual({ ok: false, error: "bad-field" }); // count 515
    expect(patched(11, 0x20)).toEqual({ ok: false, error: "bad-field" }); // seq >= 2^53
    expect(patched(16, 0b1011)).toEqual({ ok: false, error: "bad-field" }); // padding bit past count
    expect(patched(16, 0b111)).toEqual({ ok: false, error: "bad-length" }); // 3 received needs 4 delta bytes
    expect(decodeCongestionReport(Uint8Array.of(...good, 0))).toEqual({ ok: false, error: "bad-length" });
    const none = body(encodeCongestionReport(5, [undefined, undefined]));
    expect(decodeCongestionReport(none).ok).toBe(true);
    const noneWithTime = none.slice();
    noneWithTime[12] = 1;
    expect(decodeCongestionReport(noneWithTime)).toEqual({ ok: false, error: "bad-field" });
    expect(decodeCongestionReport(new Uint8Array(2000))).toEqual({ ok: false, error: "too-large" });
  });

  it("refuses to encode what the format cannot carry", () => {
    expect(() => encodeCongestionReport(0, [])).toThrow(EncodeError);
    expect(() => encodeCongestionReport(0, new Array(MAX_REPORT_PACKETS + 1).fill(1))).toThrow(EncodeError);
    expect(() => encodeCongestionReport(0, [0, 0x8000])).toThrow(EncodeError);
    expect(() => encodeCongestionReport(0, [0.5])).toThrow(EncodeError);
    expect(() => encodeCongestionReport(2 ** 53, [0])).toThrow(EncodeError);
    expect(() => encodeCongestionReport(2 ** 53 - 1, [0, 1])).toThrow(EncodeError);
    expect(decode(encodeCongestionReport(2 ** 53 - 2, [0, 1])).baseSeq).toBe(2 ** 53 - 2);
    // The largest report still fits one DATA frame.
    expect(encodeCongestionReport(0, new Array(MAX_REPORT_PACKETS).fill(7)).length).toBeLessThanOrEqual(
      MAX_DATA_PLAINTEXT,
    );
  });

  it("never throws on 100000 arbitrary bodies; what decodes re-encodes to the same bytes", () => {
    const corpus = fc
      .sample(fc.tuple(fc.nat(), arrivalsArb), 60)
      .map(([s, a]) => body(encodeCongestionReport(s, a)));
    let decoded = 0;
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0xfeed,
      maxLength: 1200,
      corpus,
      prefixes: [[1], [1, 0], [1, 0, 1, 0], [1, 0, 8, 0]],
    })) {
      const result = decodeCongestionReport(input);
      if (!result.ok) {
        expect(CODES).toContain(result.error);
        continue;
      }
      decoded++;
      const again = encodeCongestionReport(result.value.baseSeq, absolute(result.value));
      expect(toHex(again.subarray(1))).toBe(toHex(input));
    }
    expect(decoded).toBeGreaterThan(1000);
  });
});

describe("feedback recorder", () => {
  it("reports arrivals and losses since the last report, reordering included", () => {
    const recorder = new FeedbackRecorder();
    expect(recorder.build()).toEqual([]);
    recorder.onPacket(10, 1000);
    recorder.onPacket(12, 1001.5);
    recorder.onPacket(11, 1001); // reordered
    recorder.onPacket(14, 1002);
    recorder.onPacket(14, 1003); // duplicate
    const [payload, ...rest] = recorder.build();
    expect(rest).toEqual([]);
    const report = decode(payload as Uint8Array);
    expect(report.baseSeq).toBe(10);
    expect(absolute(report).map((t) => (t === undefined ? undefined : t * TICK_MS))).toEqual([
      1000,
      1001,
      1001.5,
      undefined,
      1002,
    ]);
    expect(recorder.hasPending).toBe(false);
    recorder.onPacket(13, 1004); // reported lost already: late
    recorder.onPacket(15, 1005);
    expect(recorder.late).toBe(2);
    expect(decode(recorder.build()[0] as Uint8Array).baseSeq).toBe(15);
  });

  it("splits at the count limit and at gaps an int16 delta cannot hold", () => {
    const recorder = new FeedbackRecorder();
    for (let seq = 0; seq < 1200; seq++) recorder.onPacket(seq, seq * 0.1);
    recorder.onPacket(1200, 1200 * 0.1 + 5000); // five seconds of silence
    const reports = recorder.build().map(decode);
    expect(reports.map((r) => [r.baseSeq, r.count])).toEqual([
      [0, 512],
      [512, 512],
      [1024, 176],
      [1200, 1],
    ]);
  });

  it("stays bounded when sequence numbers jump", () => {
    const recorder = new FeedbackRecorder();
    recorder.onPacket(0, 0);
    recorder.onPacket(1_000_000, 1);
    expect(recorder.abandoned).toBe(1_000_000 - MAX_RECORDER_SPAN + 1);
    const reports = recorder.build().map(decode);
    expect(reports.reduce((n, r) => n + r.count, 0)).toBe(MAX_RECORDER_SPAN);
    expect(reports.every((r) => r.count <= MAX_REPORT_PACKETS)).toBe(true);
    // Nonsense input is ignored rather than trusted.
    recorder.onPacket(-1, 0);
    recorder.onPacket(Number.NaN, 0);
    recorder.onPacket(5, Number.POSITIVE_INFINITY);
    expect(recorder.hasPending).toBe(false);
  });
});

describe("congestion controller against hostile or broken reports", () => {
  it("never throws and keeps its bounds under arbitrary reports", () => {
    const controller = new CongestionController({ minBitrate: 200_000, maxBitrate: 5_000_000 });
    for (let seq = 0; seq < 4000; seq++) controller.onPacketSent(seq, 1200, seq);
    fc.assert(
      fc.property(
        fc.nat({ max: 5000 }),
        arrivalsArb,
        fc.integer({ min: 0, max: 10_000 }),
        (seq, arrivals, now) => {
          controller.onFeedback(decode(encodeCongestionReport(seq, arrivals)), now);
          expect(controller.targetBitrate).toBeGreaterThanOrEqual(200_000);
          expect(controller.targetBitrate).toBeLessThanOrEqual(5_000_000);
          expect(Number.isFinite(controller.pacingRate)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("counts a replayed report once", () => {
    const controller = new CongestionController();
    for (let seq = 0; seq < 100; seq++) controller.onPacketSent(seq, 1200, seq);
    // Half of the packets lost, reported twice: a second copy must not double the loss evidence.
    const report = decode(
      encodeCongestionReport(
        0,
        Array.from({ length: 100 }, (_, i) => (i % 2 ? i * 40 : undefined)),
      ),
    );
    controller.onFeedback(report, 200);
    const first = controller.lossRatio;
    controller.onFeedback(report, 210);
    expect(first).toBe(0.5);
    expect(controller.lossRatio).toBe(0.5);
  });

  it("exposes pacing at 1.5x the target and checks its options", () => {
    const controller = new CongestionController({ startBitrate: 1_000_000 });
    expect(controller.pacingRate).toBe(1_500_000);
    expect(() => new CongestionController({ minBitrate: 2_000_000, startBitrate: 1_000_000 })).toThrow(
      RangeError,
    );
    expect(() => new CongestionController({ pacingFactor: 0 })).toThrow(RangeError);
    expect(() => new CongestionController({ increasePerSecond: 0.5 })).toThrow(RangeError);
  });

  it("fits a least-squares slope", () => {
    expect(linearSlope([0, 1, 2, 3], [1, 3, 5, 7])).toBe(2);
    expect(linearSlope([1, 1], [0, 5])).toBeUndefined();
    expect(linearSlope([1], [1])).toBeUndefined();
  });
});
