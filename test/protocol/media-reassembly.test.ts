import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import { type FragmentedFrame, VideoFragmenter } from "../../protocol/media/fragmenter.ts";
import { decodeNack, encodeNack, type Nack } from "../../protocol/media/nack.ts";
import {
  type CompletedFrame,
  type KeyframeRequestEvent,
  Reassembler,
  type ReassemblerOptions,
  type ReassemblyDropReason,
} from "../../protocol/media/reassembler.ts";
import { RetransmitBuffer } from "../../protocol/media/retransmit-buffer.ts";
import {
  decodeVideoFragment,
  encodeVideoFragment,
  MAX_FRAME_BYTES,
  VIDEO_FRAGMENT_MAX_BYTES,
  VideoMessageKind,
} from "../../protocol/media/video-fragment.ts";
import { fuzzInputs } from "../support/fuzz.ts";

class Collector {
  readonly frames: CompletedFrame[] = [];
  readonly nacks: Nack[] = [];
  readonly keyframeRequests: KeyframeRequestEvent[] = [];
  readonly drops: { reason: ReassemblyDropReason; frameId: number | undefined }[] = [];
  frame(frame: CompletedFrame): void {
    this.frames.push(frame);
  }
  nack(nack: Nack): void {
    this.nacks.push(nack);
  }
  keyframeRequest(request: KeyframeRequestEvent): void {
    this.keyframeRequests.push(request);
  }
  drop(reason: ReassemblyDropReason, frameId: number | undefined): void {
    this.drops.push({ reason, frameId });
  }
  ids(): number[] {
    return this.frames.map((f) => f.frameId);
  }
}

function setup(options: ReassemblerOptions = {}) {
  const sink = new Collector();
  return { sink, reassembler: new Reassembler(sink, options) };
}

/** xorshift32: deterministic randomness for shuffles and loss inside properties. */
function rng(seed: number): (n: number) => number {
  let state = seed >>> 0 || 1;
  return (n) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
}

function patterned(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const next = rng(seed * 7919 + length);
  for (let i = 0; i < length; i++) out[i] = next(256);
  return out;
}

function shuffle<T>(items: T[], below: (n: number) => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = below(i + 1);
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items;
}

interface Sent {
  readonly id: number;
  readonly keyframe: boolean;
  readonly bytes: Uint8Array;
  readonly fragmented: FragmentedFrame;
}

function makeFrames(
  specs: readonly { length: number; keyframe: boolean }[],
  fragmenter: VideoFragmenter,
  firstId = 0,
): Sent[] {
  return specs.map((spec, i) => {
    const id = (firstId + i) >>> 0;
    const bytes = patterned(spec.length, id + 1);
    const fragmented = fragmenter.fragment(bytes, {
      frameId: id,
      keyframe: spec.keyframe,
      timestampMs: i * 16,
    });
    return { id, keyframe: spec.keyframe, bytes, fragmented };
  });
}

/** Every message of a frame grouped by FEC group (data then parity), for "at most one loss per group". */
function groupsOf(frame: FragmentedFrame): Uint8Array[][] {
  if (frame.groupSize === 0) return frame.payloads.map((p) => [p]);
  const groups: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  for (const payload of frame.payloads) {
    current.push(payload);
    if (((payload[0] as number) & 0x0f) === VideoMessageKind.Parity) {
      groups.push(current);
      current = [];
    }
  }
  return groups;
}

const frameSpecs = fc.array(
  fc.record({ length: fc.integer({ min: 1, max: 6000 }), keyframe: fc.boolean() }),
  { minLength: 1, maxLength: 6 },
);
const groupSizeArb = fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 32 }));

function expectDelivered(sink: Collector, sent: readonly Sent[], ids: readonly number[]): void {
  expect(sink.ids()).toEqual(ids);
  for (const frame of sink.frames) {
    const original = sent.find((s) => s.id === frame.frameId);
    if (original === undefined) throw new Error("delivered an unknown frame");
    expect(frame.keyframe).toBe(original.keyframe);
    expect(toHex(frame.bytes)).toBe(toHex(original.bytes));
  }
}

describe("reassembly: FEC, reorder and duplicates", () => {
  it("reorder + duplication + at most one loss per group: every frame byte-identical, in order", () => {
    fc.assert(
      fc.property(
        frameSpecs,
        groupSizeArb,
        fc.integer({ min: 16, max: 1143 }),
        fc.integer(),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        (specs, groupSize, fragmentBytes, seed, firstId) => {
          const below = rng(seed);
          const keyframed = specs.map((s, i) => (i === 0 ? { ...s, keyframe: true } : s));
          const sent = makeFrames(keyframed, new VideoFragmenter({ groupSize, fragmentBytes }), firstId);
          const arrivals: Uint8Array[] = [];
          for (const frame of sent) {
            for (const group of groupsOf(frame.fragmented)) {
              // With FEC, lose any one message of the group half the time; without, lose nothing.
              const lost = groupSize !== 0 && below(2) === 0 ? below(group.length) : -1;
              group.forEach((payload, i) => {
                if (i === lost) return;
                arrivals.push(payload);
                if (below(4) === 0) arrivals.push(payload);
              });
            }
          }
          const { sink, reassembler } = setup();
          for (const payload of shuffle(arrivals, below)) reassembler.receive(payload, 0);
          reassembler.poll(10); // the first delivery waits out the reorder grace
          expectDelivered(
            sink,
            sent,
            sent.map((s) => s.id),
          );
          expect(sink.keyframeRequests).toEqual([]);
          expect(reassembler.framesInFlight).toBe(0);
          expect(reassembler.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("heavier loss: delivered frames are byte-identical and decodable; anything else ends in a keyframe request", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.integer({ min: 1, max: 5000 }), keyframe: fc.boolean() }), {
          minLength: 2,
          maxLength: 10,
        }),
        groupSizeArb,
        fc.integer({ min: 16, max: 600 }),
        fc.integer(),
        fc.integer({ min: 1, max: 60 }),
        (specs, groupSize, fragmentBytes, seed, lossPercent) => {
          const below = rng(seed);
          const keyframed = specs.map((s, i) => (i === 0 ? { ...s, keyframe: true } : s));
          const sent = makeFrames(keyframed, new VideoFragmenter({ groupSize, fragmentBytes }), 0xffff_fffc);
          const arrivals: { payload: Uint8Array; at: number; id: number }[] = [];
          sent.forEach((frame, f) => {
            for (const payload of frame.fragmented.payloads) {
              if (below(100) < lossPercent) continue;
              const at = f * 16 + below(30);
              arrivals.push({ payload, at, id: frame.id });
              if (below(5) === 0) arrivals.push({ payload, at: at + below(20), id: frame.id });
            }
          });
          arrivals.sort((a, b) => a.at - b.at);
          const { sink, reassembler } = setup({ maxFrameAgeMs: 100 });
          for (const { payload, at } of arrivals) {
            reassembler.poll(at);
            reassembler.receive(payload, at);
          }
          reassembler.poll(100_000);
          reassembler.poll(200_000);
          // Never a wrong frame: every delivered frame equals the one sent under its id.
          for (const frame of sink.frames) {
            const original = sent.find((s) => s.id === frame.frameId);
            if (original === undefined || toHex(original.bytes) !== toHex(frame.bytes))
              throw new Error("delivered a wrong frame");
          }
          // In order, and every delivered non-keyframe follows its delivered predecessor.
          const order = sink.frames.map((f) => sent.findIndex((s) => s.id === f.frameId));
          order.forEach((index, k) => {
            if (k > 0) expect(index).toBeGreaterThan(order[k - 1] as number);
            if (!(sent[index] as Sent).keyframe) expect(order[k - 1]).toBe(index - 1);
          });
          // A frame that was not delivered, with something of it or after it seen, is covered by a later
          // delivered keyframe or by a keyframe request.
          const seenUpTo = Math.max(-1, ...arrivals.map((a) => sent.findIndex((s) => s.id === a.id)));
          sent.forEach((_frame, index) => {
            if (index > seenUpTo || order.includes(index)) return;
            const laterKeyframe = order.some((o) => o > index && (sent[o] as Sent).keyframe);
            expect(laterKeyframe || sink.keyframeRequests.length > 0).toBe(true);
          });
          expect(reassembler.framesInFlight).toBe(0);
          expect(reassembler.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("reassembly: the decoder rule", () => {
  const fragmenter = new VideoFragmenter({ groupSize: 4, fragmentBytes: 100 });
  const specs = [
    { length: 900, keyframe: true },
    { length: 300, keyframe: false },
    { length: 450, keyframe: false },
    { length: 200, keyframe: false },
    { length: 700, keyframe: true },
    { length: 250, keyframe: false },
  ];

  it("after a frame is given up, later non-keyframes are withheld until a keyframe, and a keyframe is asked for", () => {
    const sent = makeFrames(specs, fragmenter);
    const { sink, reassembler } = setup({ maxNackRounds: 0, reorderGraceMs: 5 });
    let now = 0;
    for (const frame of sent) {
      // Frame 2 loses two data fragments of its first group: parity cannot help.
      const payloads = frame.id === 2 ? frame.fragmented.payloads.slice(2) : frame.fragmented.payloads;
      for (const payload of payloads) reassembler.receive(payload, now);
      now += 16;
      reassembler.poll(now);
      if (frame.id === 3) {
        expect(sink.ids()).toEqual([0, 1]);
        expect(sink.keyframeRequests).toEqual([{ givenUpThrough: 2, reason: "unrecoverable" }]);
        expect(reassembler.awaitingKeyframe).toBe(true);
      }
    }
    expectDelivered(sink, sent, [0, 1, 4, 5]);
    expect(sink.drops).toContainEqual({ reason: "unrecoverable", frameId: 2 });
    // Frame 3 arrived after frame 2 was given up: refused at its first fragment, never assembled.
    expect(sink.drops.filter((d) => d.frameId === 3).map((d) => d.reason)).toEqual([
      "awaiting-keyframe",
      "stale",
    ]);
    expect(reassembler.awaitingKeyframe).toBe(false);
  });

  it("a keyframe that completes first supersedes older incomplete frames without a keyframe request", () => {
    const sent = makeFrames(specs, fragmenter);
    const { sink, reassembler } = setup();
    for (const frame of sent) {
      const payloads = frame.id === 2 ? frame.fragmented.payloads.slice(0, 1) : frame.fragmented.payloads;
      for (const payload of payloads) reassembler.receive(payload, 0);
    }
    reassembler.poll(9);
    expect(sink.ids()).toEqual([]); // the first delivery waits out the reorder grace
    reassembler.poll(10);
    expectDelivered(sink, sent, [0, 1, 4, 5]);
    expect(sink.drops.filter((d) => d.reason === "superseded").map((d) => d.frameId)).toEqual([2, 3]);
    expect(sink.keyframeRequests).toEqual([]);
  });

  it("joining mid-stream: non-keyframes are withheld after the grace and a keyframe requested; the first frame delivered is a keyframe", () => {
    const sent = makeFrames(specs, fragmenter, 40);
    const { sink, reassembler } = setup({ reorderGraceMs: 10 });
    for (const frame of sent.slice(1, 4))
      for (const payload of frame.fragmented.payloads) reassembler.receive(payload, 0);
    reassembler.poll(5);
    expect(sink.keyframeRequests).toEqual([]);
    reassembler.poll(10);
    expect(sink.keyframeRequests).toEqual([{ givenUpThrough: 41, reason: "withheld" }]);
    expect(sink.drops.filter((d) => d.reason === "withheld").map((d) => d.frameId)).toEqual([41, 42, 43]);
    for (const frame of sent.slice(4))
      for (const payload of frame.fragmented.payloads) reassembler.receive(payload, 20);
    expectDelivered(sink, sent, [44, 45]);
  });

  it("fragments overtaken before the first delivery are still accepted", () => {
    const sent = makeFrames(specs.slice(0, 2), fragmenter);
    const { sink, reassembler } = setup();
    const [key, next] = sent as [Sent, Sent];
    reassembler.receive(next.fragmented.payloads[0] as Uint8Array, 0);
    for (const payload of key.fragmented.payloads) reassembler.receive(payload, 0);
    for (const payload of next.fragmented.payloads) reassembler.receive(payload, 0);
    reassembler.poll(10);
    expectDelivered(sink, sent, [0, 1]);
  });

  it("a recovered short last fragment whose padding is not zero is reported corrupt, never delivered", () => {
    const frame = makeFrames([{ length: 250, keyframe: true }], fragmenter)[0] as Sent;
    const payloads = frame.fragmented.payloads.map((p) => p.slice());
    const parity = payloads[3] as Uint8Array;
    parity[parity.length - 1] = (parity[parity.length - 1] as number) ^ 1; // byte 99: past the last fragment
    const { sink, reassembler } = setup();
    reassembler.receive(payloads[0] as Uint8Array, 0);
    reassembler.receive(payloads[1] as Uint8Array, 0);
    reassembler.receive(parity, 0);
    expect(sink.frames).toEqual([]);
    expect(sink.drops).toContainEqual({ reason: "corrupt", frameId: 0 });
  });
});

describe("reassembly: bounds against a hostile sender", () => {
  /** A valid first fragment of a frame claiming `frameLength` bytes in `count` fragments. */
  function claim(frameId: number, frameLength: number, count: number, keyframe = true): Uint8Array {
    const size = Math.ceil(frameLength / count);
    return encodeVideoFragment(
      {
        kind: VideoMessageKind.Data,
        keyframe,
        last: count === 1,
        frameId,
        index: 0,
        count,
        groupIndex: 0,
        groupSize: 0,
        timestampMs: 0,
        frameLength,
      },
      new Uint8Array(count === 1 ? frameLength : size),
    );
  }

  it("frames in flight and bytes never exceed their bounds, whatever the claimed sizes", () => {
    const maxBufferedBytes = 3 * 1024 * 1024;
    const { sink, reassembler } = setup({ maxFramesInFlight: 16, maxBufferedBytes, maxFrameIdGap: 4096 });
    let peakFrames = 0;
    let peakBytes = 0;
    for (let id = 0; id < 2000; id++) {
      // Alternate 4 MiB claims (never fit), 1 MiB claims and 4096-fragment claims.
      const payload =
        id % 3 === 0
          ? claim(id, MAX_FRAME_BYTES, 3670)
          : id % 3 === 1
            ? claim(id, 1 << 20, 1000)
            : claim(id, 4096, 4096);
      reassembler.receive(payload, id);
      peakFrames = Math.max(peakFrames, reassembler.framesInFlight);
      peakBytes = Math.max(peakBytes, reassembler.bufferedBytes);
    }
    expect(peakFrames).toBeLessThanOrEqual(16);
    expect(peakBytes).toBeLessThanOrEqual(maxBufferedBytes);
    expect(reassembler.stats.drops["over-budget"]).toBeGreaterThan(600);
    expect(reassembler.stats.drops.evicted).toBeGreaterThan(600);
    expect(sink.frames).toEqual([]);
    expect(sink.keyframeRequests.length).toBeGreaterThan(0);
  });

  it("parity for many groups is stored only within the byte bound", () => {
    const maxBufferedBytes = 256 * 1024;
    const { reassembler } = setup({ maxBufferedBytes });
    const frame = new VideoFragmenter({ groupSize: 2 }).fragment(patterned(200_000, 3), {
      frameId: 0,
      keyframe: true,
      timestampMs: 0,
    });
    for (const payload of frame.payloads) {
      if (((payload[0] as number) & 0x0f) === VideoMessageKind.Parity) reassembler.receive(payload, 0);
    }
    expect(reassembler.bufferedBytes).toBeLessThanOrEqual(maxBufferedBytes);
    expect(reassembler.stats.drops["over-budget"]).toBeGreaterThan(0);
  });

  it("incomplete frames are released after maxFrameAgeMs and a keyframe is requested", () => {
    const { sink, reassembler } = setup({ maxFrameAgeMs: 200, maxNackRounds: 3 });
    for (let id = 0; id < 10; id++) reassembler.receive(claim(id, 50_000, 50), id);
    expect(reassembler.framesInFlight).toBe(10);
    reassembler.poll(150);
    expect(reassembler.framesInFlight).toBe(10);
    reassembler.poll(220);
    expect(reassembler.framesInFlight).toBe(0);
    expect(reassembler.bufferedBytes).toBe(0);
    expect(sink.keyframeRequests.length).toBeGreaterThan(0);
  });

  it("fragments that contradict the frame's first fragment are dropped", () => {
    const { sink, reassembler } = setup();
    reassembler.receive(claim(0, 1000, 10), 0);
    reassembler.receive(claim(0, 2000, 10), 0);
    reassembler.receive(claim(0, 1000, 10, false), 0);
    expect(sink.drops.map((d) => d.reason)).toEqual(["inconsistent", "inconsistent"]);
  });

  it("a jump of maxFrameIdGap or more resynchronises on the new frame", () => {
    const { sink, reassembler } = setup({ maxFrameIdGap: 100 });
    reassembler.receive(claim(5, 1000, 10), 0);
    reassembler.receive(claim(500, 100, 1, false), 1);
    expect(sink.drops).toContainEqual({ reason: "resync", frameId: 5 });
    expect(reassembler.awaitingKeyframe).toBe(true);
    reassembler.receive(claim(501, 100, 1, true), 2);
    reassembler.poll(20);
    expect(sink.ids()).toEqual([501]);
  });

  it("100,000 fuzzed messages never throw and never break the bounds", () => {
    const fragmenter = new VideoFragmenter({ groupSize: 3, fragmentBytes: 200 });
    const corpus = makeFrames(
      [
        { length: 1500, keyframe: true },
        { length: 700, keyframe: false },
        { length: 90, keyframe: false },
      ],
      fragmenter,
    ).flatMap((s) => [...s.fragmented.payloads]);
    const { reassembler } = setup({ maxFramesInFlight: 8, maxBufferedBytes: 1 << 20 });
    let now = 0;
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0xbad,
      maxLength: VIDEO_FRAGMENT_MAX_BYTES + 4,
      corpus,
      prefixes: [[0x10], [0x11]],
    })) {
      reassembler.receive(input, now);
      if (++now % 16 === 0) reassembler.poll(now);
      if (reassembler.framesInFlight > 8 || reassembler.bufferedBytes > 1 << 20)
        throw new Error("bound broken");
    }
    expect(reassembler.stats.malformed["bad-field"]).toBeGreaterThan(0);
  });
});

describe("reassembly: NACK and retransmission", () => {
  const fragmenter = new VideoFragmenter({ groupSize: 4, fragmentBytes: 100 });

  function deliverVia(
    buffer: RetransmitBuffer,
    reassembler: Reassembler,
    sink: Collector,
    from: number,
    now: number,
  ): void {
    for (const nack of sink.nacks.slice(from)) {
      const wire = decodeNack(encodeNack(nack));
      if (!wire.ok) throw new Error("NACK did not round trip");
      for (const payload of buffer.answer(wire.value)) reassembler.receive(payload, now);
    }
  }

  it("missing fragments beyond FEC are NACKed after the grace and completed from the retransmit buffer", () => {
    const sent = makeFrames(
      [
        { length: 1000, keyframe: true },
        { length: 800, keyframe: false },
      ],
      fragmenter,
    );
    const buffer = new RetransmitBuffer();
    for (const frame of sent) buffer.add(frame.fragmented);
    const { sink, reassembler } = setup({ reorderGraceMs: 10 });
    const lost = new Set([0, 1, 2, 7]); // three of group 0 and one data fragment of group 1 (sent positions)
    (sent[0] as Sent).fragmented.payloads.forEach((payload, i) => {
      if (!lost.has(i)) reassembler.receive(payload, 0);
    });
    for (const payload of (sent[1] as Sent).fragmented.payloads) reassembler.receive(payload, 1);
    reassembler.poll(5);
    expect(sink.nacks).toEqual([]);
    reassembler.poll(11);
    expect(sink.nacks).toEqual([{ frameId: 0, all: false, missing: [0, 1, 2] }]);
    expect(sink.frames).toEqual([]);
    deliverVia(buffer, reassembler, sink, 0, 20);
    expectDelivered(sink, sent, [0, 1]);
    // Frame 1's lost fragment came from parity at once; frame 0's third from parity after two resends.
    expect(reassembler.stats.fragmentsRecovered).toBe(2);
  });

  it("a frame never seen at all is NACKed whole and recovered", () => {
    const sent = makeFrames(
      [
        { length: 300, keyframe: true },
        { length: 80, keyframe: false },
        { length: 80, keyframe: false },
      ],
      fragmenter,
    );
    const buffer = new RetransmitBuffer();
    for (const frame of sent) buffer.add(frame.fragmented);
    const { sink, reassembler } = setup({ reorderGraceMs: 10 });
    for (const frame of [sent[0], sent[2]] as Sent[])
      for (const payload of frame.fragmented.payloads) reassembler.receive(payload, 0);
    reassembler.poll(10);
    expect(sink.ids()).toEqual([0]);
    expect(sink.nacks).toEqual([{ frameId: 1, all: true, missing: [] }]);
    deliverVia(buffer, reassembler, sink, 0, 20);
    expectDelivered(sink, sent, [0, 1, 2]);
  });

  it("when NACK rounds run out the frame is given up, and the retransmit buffer caps resends", () => {
    const sent = makeFrames([{ length: 1000, keyframe: true }], fragmenter);
    const buffer = new RetransmitBuffer({ maxResendsPerFragment: 1 });
    buffer.add((sent[0] as Sent).fragmented);
    const { sink, reassembler } = setup({ reorderGraceMs: 10, nackRetryMs: 30, maxNackRounds: 2 });
    (sent[0] as Sent).fragmented.payloads.forEach((payload, i) => {
      if (i > 1) reassembler.receive(payload, 0);
    });
    reassembler.poll(10);
    reassembler.poll(39);
    reassembler.poll(40);
    expect(sink.nacks.map((n) => n.missing)).toEqual([
      [0, 1],
      [0, 1],
    ]);
    const first = buffer.answer(sink.nacks[0] as Nack);
    expect(first.length).toBe(2);
    expect(buffer.answer(sink.nacks[1] as Nack)).toEqual([]);
    expect(buffer.misses["resend-limit"]).toBe(2);
    reassembler.poll(69);
    expect(sink.drops).toEqual([]);
    reassembler.poll(70);
    expect(sink.drops).toContainEqual({ reason: "unrecoverable", frameId: 0 });
    expect(sink.keyframeRequests).toEqual([{ givenUpThrough: 0, reason: "unrecoverable" }]);
    // Late arrivals for a given-up frame are stale.
    for (const payload of first) reassembler.receive(payload, 80);
    expect(sink.frames).toEqual([]);
  });

  it("the retransmit buffer keeps the newest frames within its frame and byte bounds", () => {
    const frames = makeFrames(
      Array.from({ length: 20 }, () => ({ length: 1000, keyframe: false })),
      fragmenter,
    );
    const perFrame = (frames[0] as Sent).fragmented.byteLength;
    const byFrames = new RetransmitBuffer({ maxFrames: 5 });
    const byBytes = new RetransmitBuffer({ maxBytes: perFrame * 3 + 10 });
    for (const frame of frames) {
      byFrames.add(frame.fragmented);
      byBytes.add(frame.fragmented);
    }
    expect(byFrames.frameCount).toBe(5);
    expect(byBytes.frameCount).toBe(3);
    expect(byBytes.byteCount).toBeLessThanOrEqual(perFrame * 3 + 10);
    expect(byFrames.answer({ frameId: 14, all: false, missing: [0] })).toEqual([]);
    expect(byFrames.misses["unknown-frame"]).toBe(1);
    const resent = byFrames.answer({ frameId: 19, all: false, missing: [3, 9, 500] });
    expect(resent.map((p) => decodeVideoFragment(p).ok && decodeVideoFragment(p)).length).toBe(2);
    expect(byFrames.misses["unknown-index"]).toBe(1);
    const resentIndexes = resent.map((p) => {
      const d = decodeVideoFragment(p);
      return d.ok ? d.value.index : -1;
    });
    expect(resentIndexes).toEqual([3, 9]);
  });
});
