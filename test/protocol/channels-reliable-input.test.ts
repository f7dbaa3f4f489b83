import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Channel, decodeChannelPayload } from "../../protocol/channels/channel.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import {
  type AckMessage,
  decodeInputMessage,
  type EventsMessage,
  encodeAck,
  encodeEvents,
  type InputMessage,
  InputMessageKind,
  ReliableInputReceiver,
  ReliableInputSender,
} from "../../protocol/channels/reliable-input.ts";
import { EncodeError } from "../../protocol/wire/decode.ts";
import { MAX_DATA_PLAINTEXT } from "../../protocol/wire/peer-frames.ts";

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

function decodeInput(payload: Uint8Array): InputMessage {
  const channel = decodeChannelPayload(payload);
  if (!channel.ok || channel.value.channel !== Channel.Input) throw new Error("not an input payload");
  const message = decodeInputMessage(channel.value.body);
  if (!message.ok) throw new Error(`undecodable input message: ${message.error}`);
  return message.value;
}
const asEvents = (payload: Uint8Array): EventsMessage => {
  const message = decodeInput(payload);
  if (message.kind !== InputMessageKind.Events) throw new Error("not EVENTS");
  return message;
};
const asAck = (payload: Uint8Array): AckMessage => {
  const message = decodeInput(payload);
  if (message.kind !== InputMessageKind.Ack) throw new Error("not ACK");
  return message;
};

/** Event i of a test run: distinct and checkable. */
const eventNo = (i: number): InputEvent =>
  i % 3 === 0
    ? { type: "mouse-absolute", x: i & 0xffff, y: (i >>> 16) & 0xffff }
    : i % 3 === 1
      ? {
          type: "key",
          down: i % 2 === 0,
          code: `Key${String.fromCharCode(65 + (i % 26))}`,
          modifiers: i & 0x3f,
        }
      : { type: "wheel", dx: (i % 200) - 100, dy: i % 0x7fff };

interface NetOptions {
  readonly seed: number;
  readonly loss: number;
  readonly duplicate: number;
  /** One-way delay is base + uniform(0, jitter) ms: jitter larger than the send spacing reorders. */
  readonly baseMs: number;
  readonly jitterMs: number;
  readonly events: number;
  readonly initialSeq?: number;
}

/** Client -> host over a lossy, reordering, duplicating path in both directions; 1 ms ticks. */
function run(options: NetOptions) {
  const random = prng(options.seed);
  const sender = new ReliableInputSender({ initialSeq: options.initialSeq ?? 0 });
  const receiver = new ReliableInputReceiver({ initialSeq: options.initialSeq ?? 0 });
  const toHost: { at: number; payload: Uint8Array }[] = [];
  const toClient: { at: number; payload: Uint8Array }[] = [];
  const transmit = (queue: { at: number; payload: Uint8Array }[], payload: Uint8Array, now: number) => {
    expect(payload.length).toBeLessThanOrEqual(MAX_DATA_PLAINTEXT);
    const copies = random() < options.duplicate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      if (random() < options.loss) continue;
      queue.push({ at: now + options.baseMs + random() * options.jitterMs, payload });
    }
  };
  const deliver = (queue: { at: number; payload: Uint8Array }[], now: number) => {
    const due = queue.filter((item) => item.at <= now);
    for (const item of due) queue.splice(queue.indexOf(item), 1);
    return due;
  };
  const delivered: InputEvent[] = [];
  let pushed = 0;
  let now = 0;
  let datagrams = 0;
  let maxBuffered = 0;
  for (; now < 600_000 && delivered.length < options.events; now++) {
    // Bursty input: idle stretches, then a few events at once (typing, mouse motion).
    if (pushed < options.events && random() < 0.3) {
      const burst = 1 + Math.floor(random() * 4);
      for (let b = 0; b < burst && pushed < options.events; b++) {
        if (sender.push(eventNo(pushed))) pushed++;
      }
    }
    for (const payload of sender.poll(now)) {
      datagrams++;
      transmit(toHost, payload, now);
    }
    for (const item of deliver(toHost, now)) {
      const result = receiver.receive(asEvents(item.payload));
      if (!result.ok) throw new Error(`honest sender refused: ${result.error}`);
      delivered.push(...result.events);
      transmit(toClient, result.ack, now);
      maxBuffered = Math.max(maxBuffered, receiver.buffered);
    }
    for (const item of deliver(toClient, now)) {
      const refusal = sender.onAck(asAck(item.payload), now);
      expect(refusal === undefined || refusal === "stale").toBe(true);
    }
  }
  return { delivered, now, datagrams, sender, receiver, maxBuffered };
}

describe("reliable input over a lossy path", () => {
  const cases = [
    { loss: 0, duplicate: 0, jitterMs: 0 },
    { loss: 0.05, duplicate: 0.05, jitterMs: 20 },
    { loss: 0.2, duplicate: 0.1, jitterMs: 40 },
    { loss: 0.5, duplicate: 0.2, jitterMs: 60 },
  ];
  for (const c of cases) {
    it(`delivers every event exactly once, in order (loss ${c.loss}, dup ${c.duplicate}, jitter ${c.jitterMs} ms)`, () => {
      for (const seed of [1, 2, 3]) {
        const events = 3000;
        const { delivered, now, datagrams, sender, receiver, maxBuffered } = run({
          seed,
          events,
          baseMs: 15,
          ...c,
        });
        expect(delivered.length).toBe(events);
        for (let i = 0; i < events; i++) expect(delivered[i]).toEqual(eventNo(i));
        expect(receiver.stats.refused).toBe(0);
        if (seed === 1) {
          console.log(
            `loss ${c.loss}: ${events} events in ${now} ms, ${datagrams} datagrams, ` +
              `${sender.retransmissions} retransmitted events, srtt ${sender.srtt?.toFixed(1)} ms, ` +
              `duplicates dropped ${receiver.stats.duplicates}, max reorder buffer ${maxBuffered}`,
          );
        }
        if (c.loss === 0) expect(sender.retransmissions).toBe(0);
      }
    });
  }

  it("handles sequence numbers wrapping past 2^32", () => {
    const { delivered } = run({
      seed: 9,
      events: 2000,
      loss: 0.2,
      duplicate: 0.1,
      baseMs: 10,
      jitterMs: 30,
      initialSeq: 0x1_0000_0000 - 700,
    });
    expect(delivered).toEqual(Array.from({ length: 2000 }, (_, i) => eventNo(i)));
  });
});

describe("reliable input sender", () => {
  it("batches queued events into bounded datagrams and retransmits on its timer with backoff", () => {
    const sender = new ReliableInputSender({ initialRtoMs: 100, maxDatagramBytes: 200 });
    for (let i = 0; i < 100; i++) expect(sender.push({ type: "mouse-relative", dx: i, dy: -i })).toBe(true);
    const first = sender.poll(0);
    expect(first.length).toBe(3); // (200 - 7) / 5 = 38 events per datagram
    expect(first.every((p) => p.length <= 200)).toBe(true);
    expect(first.map((p) => asEvents(p).events.length)).toEqual([38, 38, 24]);
    expect(first.map((p) => asEvents(p).firstSeq)).toEqual([0, 38, 76]);
    expect(sender.poll(50)).toEqual([]);
    expect(sender.poll(100).length).toBe(3); // timeout: everything again
    expect(sender.rto).toBe(200); // backed off
    expect(sender.poll(250)).toEqual([]);
    expect(sender.poll(300).length).toBe(3);
    // The receiver got only the first datagram: cumulative ack, then the rest is resent on the timer.
    expect(
      sender.onAck({ kind: InputMessageKind.Ack, nextSeq: 38, sack: 0, echoSeq: 0 }, 310),
    ).toBeUndefined();
    expect(sender.queued).toBe(62);
    expect(sender.rto).toBeLessThan(400);
  });

  it("fast-retransmits a hole the selective ack reveals, after about a round trip", () => {
    const sender = new ReliableInputSender({ initialRtoMs: 1000 });
    const receiver = new ReliableInputReceiver();
    const sent: Uint8Array[] = [];
    for (let t = 0; t < 3; t++) {
      sender.push(eventNo(t));
      sent.push(...sender.poll(t));
    }
    expect(sent.map((p) => asEvents(p).firstSeq)).toEqual([0, 1, 2]);
    // Datagram 1 is lost; 0 and 2 arrive at 10 and 12 ms, their ACKs return at 20 and 22 ms.
    const ack0 = receiver.receive(asEvents(sent[0] as Uint8Array));
    const ack2 = receiver.receive(asEvents(sent[2] as Uint8Array));
    if (!ack0.ok || !ack2.ok) throw new Error("refused");
    expect(receiver.buffered).toBe(1);
    expect(sender.onAck(asAck(ack0.ack), 20)).toBeUndefined();
    expect(sender.srtt).toBe(20);
    expect(sender.poll(21)).toEqual([]);
    expect(sender.onAck(asAck(ack2.ack), 22)).toBeUndefined();
    expect(sender.srtt).toBe(20);
    // Event 1 left at 1 ms; a later one is acknowledged: resent once it is 1.25 round trips old, not after 1 s.
    expect(sender.poll(25)).toEqual([]);
    const resent = sender.poll(26);
    expect(resent.map((p) => asEvents(p).events)).toEqual([[eventNo(1)]]);
    const result = receiver.receive(asEvents(resent[0] as Uint8Array));
    expect(result.ok && result.events).toEqual([eventNo(1), eventNo(2)]);
    expect(sender.retransmissions).toBe(1);
  });

  it("bounds its queue and never sends beyond the window", () => {
    const sender = new ReliableInputSender({ window: 64, maxQueued: 100, maxDatagramsPerPoll: 100 });
    let accepted = 0;
    for (let i = 0; i < 150; i++) if (sender.push(eventNo(i))) accepted++;
    expect(accepted).toBe(100);
    const seqs = sender.poll(0).flatMap((p) => {
      const m = asEvents(p);
      return m.events.map((_, i) => m.firstSeq + i);
    });
    expect(Math.max(...seqs)).toBe(63);
    expect(sender.onAck({ kind: InputMessageKind.Ack, nextSeq: 10, sack: 0, echoSeq: 0 }, 1)).toBeUndefined();
    const more = sender.poll(2).flatMap((p) => {
      const m = asEvents(p);
      return m.events.map((_, i) => m.firstSeq + i);
    });
    expect(more).toEqual(Array.from({ length: 10 }, (_, i) => 64 + i));
    expect(() => sender.push({ type: "key", down: true, code: "bad code", modifiers: 0 })).toThrow(
      EncodeError,
    );
  });

  it("ignores hostile or stale acknowledgements", () => {
    const sender = new ReliableInputSender();
    for (let i = 0; i < 10; i++) sender.push(eventNo(i));
    sender.poll(0);
    const ack = (nextSeq: number, sack = 0) =>
      sender.onAck({ kind: InputMessageKind.Ack, nextSeq, sack, echoSeq: nextSeq }, 5);
    expect(ack(11)).toBe("acks-unsent");
    expect(ack(0xffff_ffff)).toBe("stale");
    expect(ack(0x8000_0000)).toBe("stale");
    expect(ack(5, 1 << 4)).toBe("acks-unsent"); // seq 10 was never sent
    expect(sender.queued).toBe(10);
    expect(ack(5, 1 << 3)).toBeUndefined();
    expect(ack(4)).toBe("stale");
    expect(sender.queued).toBe(5);
    // Arbitrary acknowledgements never throw and never grow the queue.
    fc.assert(
      fc.property(u32, u32, u32, (n, s, e) => {
        const refusal = sender.onAck({ kind: InputMessageKind.Ack, nextSeq: n, sack: s, echoSeq: e }, 10);
        expect([undefined, "stale", "acks-unsent"]).toContain(refusal);
        expect(sender.queued).toBeLessThanOrEqual(5);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("reliable input receiver against a hostile peer", () => {
  it("refuses sequence numbers far outside its window", () => {
    const receiver = new ReliableInputReceiver({ window: 128 });
    const send = (firstSeq: number, count = 1) =>
      receiver.receive({
        kind: InputMessageKind.Events,
        firstSeq,
        events: Array.from({ length: count }, (_, i) => eventNo(i)),
      });
    expect(send(128)).toEqual({ ok: false, error: "out-of-window" });
    expect(send(120, 9)).toEqual({ ok: false, error: "out-of-window" });
    expect(send(0xffff_ffff - 128)).toEqual({ ok: false, error: "out-of-window" });
    expect(send(0x8000_0000)).toEqual({ ok: false, error: "out-of-window" });
    expect(receiver.stats.refused).toBe(4);
    expect(send(127).ok).toBe(true);
    expect(receiver.buffered).toBe(1);
    // Old sequence numbers (already delivered) are acknowledged again but never delivered twice.
    expect(send(0, 5).ok).toBe(true);
    const again = send(0, 5);
    expect(again.ok && again.events).toEqual([]);
    expect(again.ok && asAck(again.ack).nextSeq).toBe(5);
  });

  it("keeps its reorder buffer below the window under arbitrary messages", () => {
    const window = 256;
    const receiver = new ReliableInputReceiver({ window });
    const random = prng(42);
    let delivered = 0;
    for (let i = 0; i < 20_000; i++) {
      const far = random() < 0.3;
      const firstSeq = far
        ? Math.floor(random() * 0x1_0000_0000)
        : (delivered + Math.floor(random() * 2 * window) - window) >>> 0;
      const count = 1 + Math.floor(random() * 40);
      const result = receiver.receive({
        kind: InputMessageKind.Events,
        firstSeq,
        events: Array.from({ length: count }, () => eventNo(i)),
      });
      if (result.ok) {
        delivered += result.events.length;
        expect(asAck(result.ack).nextSeq).toBe(delivered >>> 0);
      }
      expect(receiver.buffered).toBeLessThan(window);
    }
    expect(receiver.stats.delivered).toBe(delivered);
    expect(receiver.stats.refused).toBeGreaterThan(1000);
  });

  it("acknowledges with a cumulative sequence and a selective bitmap", () => {
    const receiver = new ReliableInputReceiver();
    const at = (firstSeq: number) =>
      receiver.receive({ kind: InputMessageKind.Events, firstSeq, events: [eventNo(firstSeq)] });
    at(2);
    at(4);
    const result = at(33);
    if (!result.ok) throw new Error("refused");
    // next = 0; bit i = seq 1 + i: seqs 2, 4 and 33 are held (33 is bit 32, outside the bitmap).
    expect(asAck(result.ack)).toEqual({ kind: InputMessageKind.Ack, nextSeq: 0, sack: 0b1010, echoSeq: 33 });
    expect(decodeInput(encodeAck(0, 0b1010, 33))).toEqual(asAck(result.ack));
    expect(asAck(receiver.ackNow()).echoSeq).toBe(0);
    expect(asEvents(encodeEvents(1, [eventNo(1)])).events).toEqual([eventNo(1)]);
  });

  it("rejects invalid configuration", () => {
    expect(() => new ReliableInputReceiver({ window: 16 })).toThrow(RangeError);
    expect(() => new ReliableInputReceiver({ window: 1 << 16 })).toThrow(RangeError);
    expect(() => new ReliableInputSender({ maxDatagramBytes: MAX_DATA_PLAINTEXT + 1 })).toThrow(RangeError);
    expect(() => new ReliableInputSender({ minRtoMs: 500, initialRtoMs: 100 })).toThrow(RangeError);
    expect(() => new ReliableInputSender({ initialSeq: -1 })).toThrow(RangeError);
  });
});
