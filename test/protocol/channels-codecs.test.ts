import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import {
  allocChannelPayload,
  Channel,
  decodeChannelPayload,
  encodeChannelPayload,
  MAX_CHANNEL_BODY,
} from "../../protocol/channels/channel.ts";
import {
  decodeInputEvent,
  encodeInputEvent,
  type InputEvent,
  InputEventType,
  isValidKeyCode,
  MAX_INPUT_EVENT_LEN,
  type MouseButton,
  MouseButtonCode,
  readInputEvent,
} from "../../protocol/channels/input-events.ts";
import {
  ACK_LEN,
  decodeInputMessage,
  encodeAck,
  encodeEvents,
  InputMessageKind,
} from "../../protocol/channels/reliable-input.ts";
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
const FUZZ_COUNT = 100_000;

const channelArb = fc.constantFrom(...Object.values(Channel));
const keyCodeArb = fc
  .tuple(
    fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    fc.array(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), {
      minLength: 1,
      maxLength: 31,
    }),
  )
  .map(([head, tail]) => head + tail.join(""));
const buttonArb = fc.constantFrom<MouseButton>("left", "middle", "right", "back", "forward");
const i16 = fc.integer({ min: -0x8000, max: 0x7fff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const inputEventArb: fc.Arbitrary<InputEvent> = fc.oneof(
  fc.record({
    type: fc.constant("key" as const),
    down: fc.boolean(),
    code: fc.oneof(keyCodeArb, fc.constantFrom("KeyA", "ShiftLeft", "ArrowUp", "F12", "MediaTrackPrevious")),
    modifiers: fc.integer({ min: 0, max: 0x3f }),
  }),
  fc.record({ type: fc.constant("mouse-absolute" as const), x: u16, y: u16 }),
  fc.record({ type: fc.constant("mouse-relative" as const), dx: i16, dy: i16 }),
  fc.record({ type: fc.constant("button" as const), down: fc.boolean(), button: buttonArb }),
  fc.record({ type: fc.constant("wheel" as const), dx: i16, dy: i16 }),
);

/** Runs `decode` over 100,000 generated inputs: each yields a value or a known code, never an exception. */
function fuzz<T>(
  decode: (bytes: Uint8Array) => { ok: true; value: T } | { ok: false; error: DecodeErrorCode },
  corpus: readonly Uint8Array[],
  prefixes: readonly (readonly number[])[],
  maxLength: number,
  onValue: (bytes: Uint8Array, value: T) => void,
): { ok: number; errors: Partial<Record<DecodeErrorCode, number>> } {
  const errors: Partial<Record<DecodeErrorCode, number>> = {};
  let okCount = 0;
  for (const input of fuzzInputs({ count: FUZZ_COUNT, seed: 0x5eed, maxLength, corpus, prefixes })) {
    const result = decode(input);
    if (result.ok) {
      okCount++;
      onValue(input, result.value);
    } else {
      expect(CODES).toContain(result.error);
      errors[result.error] = (errors[result.error] ?? 0) + 1;
    }
  }
  return { ok: okCount, errors };
}

describe("channel codec", () => {
  it("round-trips every channel with a body view", () => {
    fc.assert(
      fc.property(channelArb, fc.uint8Array({ maxLength: MAX_CHANNEL_BODY }), (channel, body) => {
        const payload = encodeChannelPayload(channel, body);
        expect(payload[0]).toBe(channel);
        const decoded = decodeChannelPayload(payload);
        if (!decoded.ok) throw new Error(decoded.error);
        expect(decoded.value.channel).toBe(channel);
        expect(toHex(decoded.value.body)).toBe(toHex(body));
        expect(isViewInto(decoded.value.body, payload)).toBe(true);
      }),
    );
  });

  it("documents the code of each channel", () => {
    expect(Channel).toEqual({ Control: 0, Input: 1, Video: 2, Audio: 3, Feedback: 4 });
  });

  it("refuses empty, oversized and unknown-channel plaintexts with typed errors", () => {
    expect(decodeChannelPayload(new Uint8Array(0))).toEqual({ ok: false, error: "too-short" });
    expect(decodeChannelPayload(new Uint8Array(MAX_DATA_PLAINTEXT + 1))).toEqual({
      ok: false,
      error: "too-large",
    });
    for (const code of [5, 0x7f, 0xff]) {
      expect(decodeChannelPayload(Uint8Array.of(code, 1, 2))).toEqual({ ok: false, error: "unknown-type" });
    }
    expect(decodeChannelPayload(new Uint8Array(MAX_DATA_PLAINTEXT)).ok).toBe(true);
  });

  it("refuses to build what cannot be sent", () => {
    expect(() => allocChannelPayload(Channel.Video, MAX_CHANNEL_BODY + 1)).toThrow(EncodeError);
    expect(() => allocChannelPayload(9 as Channel, 1)).toThrow(EncodeError);
    expect(allocChannelPayload(Channel.Video, MAX_CHANNEL_BODY).length).toBe(MAX_DATA_PLAINTEXT);
  });

  it(`never throws on ${FUZZ_COUNT} arbitrary plaintexts`, () => {
    const corpus = [encodeChannelPayload(Channel.Input, Uint8Array.of(1, 2, 3))];
    const stats = fuzz(
      decodeChannelPayload,
      corpus,
      [[0], [1], [4], [5]],
      MAX_DATA_PLAINTEXT + 8,
      (input, v) => {
        expect(v.body.length).toBe(input.length - 1);
      },
    );
    expect(stats.ok).toBeGreaterThan(1000);
    expect(stats.errors["unknown-type"]).toBeGreaterThan(1000);
  });
});

describe("input event codec", () => {
  it("round-trips every event kind", () => {
    fc.assert(
      fc.property(inputEventArb, (event) => {
        const bytes = encodeInputEvent(event);
        expect(bytes.length).toBeLessThanOrEqual(MAX_INPUT_EVENT_LEN);
        expect(decodeInputEvent(bytes)).toEqual({ ok: true, value: event });
      }),
      { numRuns: 2000 },
    );
  });

  it("matches the documented bytes", () => {
    const hex = (event: InputEvent) => toHex(encodeInputEvent(event));
    expect(hex({ type: "key", down: true, code: "KeyA", modifiers: 0b11 })).toBe("0103044b657941");
    expect(hex({ type: "key", down: false, code: "ShiftLeft", modifiers: 0 })).toBe(
      `020009${toHex(new TextEncoder().encode("ShiftLeft"))}`,
    );
    expect(hex({ type: "mouse-absolute", x: 0x1234, y: 0xffff })).toBe("033412ffff");
    expect(hex({ type: "mouse-relative", dx: -1, dy: 2 })).toBe("04ffff0200");
    expect(hex({ type: "button", down: true, button: "forward" })).toBe("0504");
    expect(hex({ type: "button", down: false, button: "left" })).toBe("0600");
    expect(hex({ type: "wheel", dx: 0, dy: -120 })).toBe("07000088ff");
    expect(MouseButtonCode).toEqual({ left: 0, middle: 1, right: 2, back: 3, forward: 4 });
  });

  it("validates key codes by pattern and length", () => {
    for (const good of [
      "KeyA",
      "ShiftLeft",
      "ArrowUp",
      "Digit0",
      "F1",
      "NumpadEnter",
      `A${"b".repeat(31)}`,
    ]) {
      expect(isValidKeyCode(good)).toBe(true);
    }
    for (const bad of ["", "A", "keyA", "Key A", "Key-A", "KéyA", `A${"b".repeat(32)}`, "1Key", "Key\0"]) {
      expect(isValidKeyCode(bad)).toBe(false);
      expect(() => encodeInputEvent({ type: "key", down: true, code: bad, modifiers: 0 })).toThrow(
        EncodeError,
      );
    }
  });

  it("refuses malformed events with typed errors", () => {
    const key = (bytes: number[]) => decodeInputEvent(Uint8Array.from(bytes));
    expect(key([])).toEqual({ ok: false, error: "too-short" });
    expect(key([0x00])).toEqual({ ok: false, error: "unknown-type" });
    expect(key([0x08, 0, 0, 0, 0])).toEqual({ ok: false, error: "unknown-type" });
    expect(key([0x01, 0, 1, 0x41])).toEqual({ ok: false, error: "bad-length" });
    expect(key([0x01, 0, 33])).toEqual({ ok: false, error: "bad-length" });
    expect(key([0x01, 0, 4, 0x4b, 0x65])).toEqual({ ok: false, error: "too-short" });
    expect(key([0x01, 0x40, 2, 0x46, 0x31])).toEqual({ ok: false, error: "bad-field" });
    expect(key([0x01, 0, 2, 0x66, 0x31])).toEqual({ ok: false, error: "bad-field" });
    expect(key([0x01, 0, 2, 0x46, 0x2d])).toEqual({ ok: false, error: "bad-field" });
    expect(key([0x05, 5])).toEqual({ ok: false, error: "bad-field" });
    expect(key([0x03, 0, 0, 0])).toEqual({ ok: false, error: "too-short" });
    expect(key([0x05, 0, 0])).toEqual({ ok: false, error: "bad-length" });
    expect(readInputEvent(Uint8Array.of(0x05, 1), 2)).toEqual({ ok: false, error: "too-short" });
  });

  it("refuses events a caller should never build", () => {
    const bad: InputEvent[] = [
      { type: "mouse-absolute", x: 65536, y: 0 },
      { type: "mouse-absolute", x: -1, y: 0 },
      { type: "mouse-relative", dx: 0x8000, dy: 0 },
      { type: "wheel", dx: 0.5, dy: 0 },
      { type: "key", down: true, code: "KeyA", modifiers: 0x40 },
      { type: "button", down: true, button: "sixth" as MouseButton },
    ];
    for (const event of bad) expect(() => encodeInputEvent(event)).toThrow(EncodeError);
  });

  it(`never throws on ${FUZZ_COUNT} arbitrary inputs; what decodes re-encodes to the same bytes`, () => {
    const corpus = fc.sample(inputEventArb, 200).map(encodeInputEvent);
    const prefixes = Object.values(InputEventType).map((t) => [t]);
    const stats = fuzz(decodeInputEvent, corpus, prefixes, 48, (input, event) => {
      expect(toHex(encodeInputEvent(event))).toBe(toHex(input));
    });
    expect(stats.ok).toBeGreaterThan(1000);
  });
});

describe("input channel messages", () => {
  it("round-trip EVENTS and ACK", () => {
    fc.assert(
      fc.property(u32, fc.array(inputEventArb, { minLength: 1, maxLength: 30 }), (firstSeq, events) => {
        const payload = encodeEvents(firstSeq, events);
        expect(payload.length).toBeLessThanOrEqual(MAX_DATA_PLAINTEXT);
        const channel = decodeChannelPayload(payload);
        if (!channel.ok || channel.value.channel !== Channel.Input) throw new Error("not input");
        expect(decodeInputMessage(channel.value.body)).toEqual({
          ok: true,
          value: { kind: InputMessageKind.Events, firstSeq, events },
        });
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(u32, u32, u32, (n, sack, echo) => {
        const payload = encodeAck(n, sack, echo);
        expect(payload.length).toBe(1 + ACK_LEN);
        expect(decodeInputMessage(payload.subarray(1))).toEqual({
          ok: true,
          value: { kind: InputMessageKind.Ack, nextSeq: n, sack, echoSeq: echo },
        });
      }),
    );
  });

  it("matches the documented bytes", () => {
    expect(toHex(encodeAck(0x01020304, 0x80000001, 9))).toBe(
      "01" + "02" + "00" + "04030201" + "01000080" + "09000000",
    );
    expect(toHex(encodeEvents(7, [{ type: "button", down: true, button: "left" }]))).toBe(
      "01" + "01" + "01" + "07000000" + "0500",
    );
  });

  it("refuses malformed messages with typed errors", () => {
    const decode = (bytes: number[]) => decodeInputMessage(Uint8Array.from(bytes));
    expect(decode([])).toEqual({ ok: false, error: "too-short" });
    expect(decode([0x03])).toEqual({ ok: false, error: "unknown-type" });
    expect(decode([0x02, ...new Array(12).fill(0)])).toEqual({ ok: false, error: "bad-length" });
    expect(decode([0x02, 1, ...new Array(12).fill(0)])).toEqual({ ok: false, error: "bad-field" });
    expect(decode([0x01, 0, 0, 0, 0, 0, 0x05, 0])).toEqual({ ok: false, error: "bad-field" });
    expect(decode([0x01, 2, 0, 0, 0, 0, 0x05, 0])).toEqual({ ok: false, error: "too-short" });
    expect(decode([0x01, 1, 0, 0, 0, 0, 0x05, 0, 0])).toEqual({ ok: false, error: "bad-length" });
    expect(decode([0x01, 255, 0, 0, 0, 0, 0x05, 0])).toEqual({ ok: false, error: "too-short" });
    expect(decodeInputMessage(new Uint8Array(MAX_CHANNEL_BODY + 1))).toEqual({
      ok: false,
      error: "too-large",
    });
    expect(() => encodeEvents(0, [])).toThrow(EncodeError);
    expect(() =>
      encodeEvents(
        0,
        Array.from({ length: 256 }, () => ({ type: "wheel" as const, dx: 0, dy: 0 })),
      ),
    ).toThrow(EncodeError);
  });

  it(`never throws on ${FUZZ_COUNT} arbitrary bodies; what decodes re-encodes to the same bytes`, () => {
    const corpus = [
      ...fc
        .sample(fc.tuple(fc.nat(), fc.array(inputEventArb, { minLength: 1, maxLength: 8 })), 100)
        .map(([seq, events]) => encodeEvents(seq, events).subarray(1)),
      encodeAck(5, 3, 4).subarray(1),
    ];
    const stats = fuzz(decodeInputMessage, corpus, [[1], [2], [1, 1], [1, 2]], 400, (input, message) => {
      const again =
        message.kind === InputMessageKind.Ack
          ? encodeAck(message.nextSeq, message.sack, message.echoSeq)
          : encodeEvents(message.firstSeq, message.events);
      expect(toHex(again.subarray(1))).toBe(toHex(input));
    });
    expect(stats.ok).toBeGreaterThan(1000);
  });
});
