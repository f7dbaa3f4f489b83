import { describe, expect, it } from "vitest";
import { decodeChannelPayload } from "../../protocol/channels/channel.ts";
import { CongestionController, type CongestionOptions } from "../../protocol/media/congestion.ts";
import { decodeCongestionReport, FeedbackRecorder } from "../../protocol/media/congestion-feedback.ts";

/**
 * A bottleneck link in simulated time: the sender emits 1200-byte datagrams at the controller's target
 * rate; the link serves a FIFO queue at capacity C (tail drop beyond `bufferMs` of queue), adds a fixed
 * propagation delay and optional random loss; the receiver reports every 50 ms through the real feedback
 * codec; reports reach the sender after the return propagation delay. The receiver's clock runs with an
 * arbitrary offset, as a real one would.
 */
interface LinkPhase {
  /** From this simulated time on (ms). */
  readonly at: number;
  readonly capacityBps: number;
  readonly loss?: number;
}

interface SimOptions {
  readonly durationMs: number;
  readonly phases: readonly LinkPhase[];
  readonly seed: number;
  readonly controller?: CongestionOptions;
  readonly oneWayMs?: number;
  readonly bufferMs?: number;
  readonly sampleEveryMs?: number;
}

interface Sample {
  readonly t: number;
  readonly target: number;
  readonly queueMs: number;
  readonly deliveredBps: number;
}

const PACKET = 1200;
const REPORT_EVERY_MS = 50;
const RECEIVER_CLOCK_OFFSET = 987_654.321;

function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

function simulate(options: SimOptions): { samples: Sample[]; controller: CongestionController } {
  const controller = new CongestionController(options.controller ?? {});
  const recorder = new FeedbackRecorder();
  const random = prng(options.seed);
  const oneWay = options.oneWayMs ?? 20;
  const bufferMs = options.bufferMs ?? 1000;
  const sampleEvery = options.sampleEveryMs ?? 250;
  const phaseAt = (t: number) => {
    let phase = options.phases[0] as LinkPhase;
    for (const p of options.phases) if (p.at <= t) phase = p;
    return phase;
  };
  // In flight to the receiver, in arrival order (a FIFO with constant propagation keeps it sorted).
  const toReceiver: { seq: number; arrival: number }[] = [];
  let toReceiverHead = 0;
  const toSender: { at: number; payload: Uint8Array }[] = [];
  let seq = 0;
  let nextSend = 0;
  let linkFreeAt = 0;
  let nextReport = REPORT_EVERY_MS;
  let nextSample = 0;
  let deliveredBytes = 0;
  const samples: Sample[] = [];

  for (let t = 0; t <= options.durationMs; t++) {
    // Sender: datagrams due up to t, spaced at the current target rate.
    while (nextSend <= t) {
      const phase = phaseAt(nextSend);
      controller.onPacketSent(seq, PACKET, nextSend);
      const start = Math.max(nextSend, linkFreeAt);
      if (start - nextSend <= bufferMs && !(phase.loss !== undefined && random() < phase.loss)) {
        linkFreeAt = start + (PACKET * 8 * 1000) / phase.capacityBps;
        toReceiver.push({ seq, arrival: linkFreeAt + oneWay });
      }
      seq++;
      nextSend += (PACKET * 8 * 1000) / controller.targetBitrate;
    }
    // Receiver: arrivals up to t, then a report every 50 ms.
    while (toReceiverHead < toReceiver.length && (toReceiver[toReceiverHead]?.arrival ?? Infinity) <= t) {
      const packet = toReceiver[toReceiverHead] as { seq: number; arrival: number };
      recorder.onPacket(packet.seq, packet.arrival + RECEIVER_CLOCK_OFFSET);
      deliveredBytes += PACKET;
      toReceiverHead++;
    }
    if (t >= nextReport) {
      nextReport += REPORT_EVERY_MS;
      for (const payload of recorder.build()) toSender.push({ at: t + oneWay, payload });
    }
    // Sender: reports that have come back.
    while (toSender.length > 0 && (toSender[0]?.at ?? Infinity) <= t) {
      const item = toSender.shift() as { at: number; payload: Uint8Array };
      const channel = decodeChannelPayload(item.payload);
      if (!channel.ok) throw new Error(`bad feedback payload: ${channel.error}`);
      const report = decodeCongestionReport(channel.value.body);
      if (!report.ok) throw new Error(`bad report: ${report.error}`);
      controller.onFeedback(report.value, t);
    }
    if (t >= nextSample) {
      samples.push({
        t,
        target: controller.targetBitrate,
        queueMs: Math.max(0, linkFreeAt - t),
        deliveredBps: (deliveredBytes * 8 * 1000) / sampleEvery,
      });
      deliveredBytes = 0;
      nextSample += sampleEvery;
    }
  }
  return { samples, controller };
}

const between = (samples: readonly Sample[], from: number, to: number) =>
  samples.filter((s) => s.t >= from && s.t < to);
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1);
const mbps = (bps: number) => (bps / 1e6).toFixed(2);

describe("congestion control in a simulated bottleneck", () => {
  it("starts low, converges near capacity C, and backs off with a bounded queue when C halves", () => {
    const C = 10_000_000;
    const { samples } = simulate({
      durationMs: 60_000,
      seed: 7,
      sampleEveryMs: 50,
      phases: [
        { at: 0, capacityBps: C },
        { at: 40_000, capacityBps: C / 2 },
      ],
    });
    const steady = between(samples, 20_000, 40_000);
    const afterDrop = between(samples, 40_000, 60_000);
    const settled = between(samples, 45_000, 60_000);
    const figures = {
      startMbps: mbps(samples[0]?.target ?? 0),
      reach80pctMs: samples.find((s) => s.target >= 0.8 * C)?.t ?? Number.POSITIVE_INFINITY,
      steadyTargetMbps: mean(steady.map((s) => s.target)) / 1e6,
      steadyDeliveredMbps: mean(steady.map((s) => s.deliveredBps)) / 1e6,
      steadyQueueMsMean: mean(steady.map((s) => s.queueMs)),
      steadyQueueMsMax: Math.max(...steady.map((s) => s.queueMs)),
      afterDropQueueMsMax: Math.max(...afterDrop.map((s) => s.queueMs)),
      belowHalfAfterMs: (afterDrop.find((s) => s.target <= 0.55 * C)?.t ?? Number.POSITIVE_INFINITY) - 40_000,
      queueDrainedAfterMs:
        (afterDrop.find((s, i) => i > 0 && s.queueMs < 20)?.t ?? Number.POSITIVE_INFINITY) - 40_000,
      settledTargetMbps: mean(settled.map((s) => s.target)) / 1e6,
      settledDeliveredMbps: mean(settled.map((s) => s.deliveredBps)) / 1e6,
      settledQueueMsMean: mean(settled.map((s) => s.queueMs)),
      settledQueueMsMax: Math.max(...settled.map((s) => s.queueMs)),
    };
    console.log(`bottleneck 10 -> 5 Mbit/s: ${JSON.stringify(figures)}`);
    expect(figures.reach80pctMs).toBeLessThan(15_000);
    expect(figures.steadyTargetMbps).toBeGreaterThan(0.8 * 10);
    expect(figures.steadyTargetMbps).toBeLessThan(1.1 * 10);
    expect(figures.steadyDeliveredMbps).toBeGreaterThan(0.8 * 10);
    expect(figures.steadyQueueMsMean).toBeLessThan(30);
    expect(figures.steadyQueueMsMax).toBeLessThan(150);
    expect(figures.belowHalfAfterMs).toBeLessThan(2_000);
    expect(figures.afterDropQueueMsMax).toBeLessThan(500);
    expect(figures.queueDrainedAfterMs).toBeLessThan(5_000);
    expect(figures.settledDeliveredMbps).toBeGreaterThan(0.8 * 5);
    expect(figures.settledTargetMbps).toBeLessThan(1.1 * 5);
    expect(figures.settledQueueMsMean).toBeLessThan(30);
    expect(figures.settledQueueMsMax).toBeLessThan(150);
  });

  it("converges for other capacities and round trips too", () => {
    for (const [C, oneWayMs] of [
      [2_000_000, 5],
      [20_000_000, 50],
    ] as const) {
      const { samples } = simulate({
        durationMs: 40_000,
        seed: 11,
        oneWayMs,
        phases: [{ at: 0, capacityBps: C }],
      });
      const late = between(samples, 25_000, 40_000);
      const target = mean(late.map((s) => s.target));
      const queue = mean(late.map((s) => s.queueMs));
      console.log(
        `C=${mbps(C)} Mbit/s, one-way ${oneWayMs} ms: target ${mbps(target)}, queue ${queue.toFixed(1)} ms`,
      );
      expect(target).toBeGreaterThan(0.75 * C);
      expect(target).toBeLessThan(1.1 * C);
      expect(queue).toBeLessThan(40);
    }
  });

  it("decreases under 10% random loss without congestion, and keeps increasing under 1%", () => {
    const run = (loss: number) =>
      simulate({
        durationMs: 20_000,
        seed: 3,
        controller: { startBitrate: 4_000_000 },
        phases: [
          { at: 0, capacityBps: 100_000_000 },
          { at: 5_000, capacityBps: 100_000_000, loss },
        ],
      }).samples;
    const at = (samples: readonly Sample[], t: number) => samples.find((s) => s.t >= t)?.target ?? Number.NaN;
    const lossy = run(0.1);
    const light = run(0.01);
    const figures = {
      beforeMbps: at(lossy, 5_000) / 1e6,
      after10pctMbps: at(lossy, 20_000) / 1e6,
      after1pctMbps: at(light, 20_000) / 1e6,
    };
    console.log(`random loss from t=5 s: ${JSON.stringify(figures)}`);
    expect(figures.after10pctMbps).toBeLessThan(0.5 * figures.beforeMbps);
    expect(figures.after1pctMbps).toBeGreaterThan(figures.beforeMbps);
  });

  it("stays within its bounds", () => {
    const { samples } = simulate({
      durationMs: 20_000,
      seed: 5,
      controller: { minBitrate: 500_000, maxBitrate: 3_000_000, startBitrate: 1_000_000 },
      phases: [
        { at: 0, capacityBps: 50_000_000 },
        { at: 10_000, capacityBps: 100_000, loss: 0.5 },
      ],
    });
    expect(Math.max(...samples.map((s) => s.target))).toBeLessThanOrEqual(3_000_000);
    expect(Math.min(...samples.map((s) => s.target))).toBeGreaterThanOrEqual(500_000);
    expect(between(samples, 8_000, 10_000).every((s) => s.target === 3_000_000)).toBe(true);
    expect(samples[samples.length - 1]?.target).toBe(500_000);
  });
});
