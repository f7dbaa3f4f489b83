import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import { dataSendPosition, VideoFragmenter } from "../../protocol/media/fragmenter.ts";
import { frameIdBefore, frameIdDistance, nextFrameId } from "../../protocol/media/frame-id.ts";
import {
  decodeKeyframeRequest,
  encodeKeyframeRequest,
  KEYFRAME_REQUEST_LEN,
} from "../../protocol/media/keyframe-request.ts";
import { decodeNack, encodeNack, MAX_NACK_BYTES, MAX_NACK_ENTRIES } from "../../protocol/media/nack.ts";
import {
  DEFAULT_FRAGMENT_PAYLOAD,
  decodeVideoFragment,
  encodeVideoFragment,
  MAX_FRAME_BYTES,
  MAX_VIDEO_DATAGRAM,
  peekVideoMessageKind,
  VIDEO_FRAGMENT_HEADER_LEN,
  VIDEO_FRAGMENT_MAX_BYTES,
  VIDEO_FRAGMENT_MAX_PAYLOAD,
  type VideoFragment,
  VideoMessageKind,
} from "../../protocol/media/video-fragment.ts";
import { xorInto } from "../../protocol/media/xor.ts";
import { type DecodeErrorCode, EncodeError } from "../../protocol/wire/decode.ts";
import { AEAD_TAG_LEN, DATA_HEADER_LEN, MAX_DATA_PLAINTEXT } from "../../protocol/wire/peer-frames.ts";
import { fuzzInputs, isViewInto } from "../support/fuzz.ts";

const CODES: readonly DecodeErrorCode[] = [
  "too-short",
  "too-large",
  "unsupported-version",
  "unknown-type",
  "bad-length",
  "bad-field",
];
const groupSizeArb = fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 32 }));

function patterned(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed | 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state;
  }
  return out;
}

function decoded(bytes: Uint8Array): VideoFragment {
  const result = decodeVideoFragment(bytes);
  if (!result.ok) throw new Error(`fragment refused: ${result.error}`);
  return result.value;
}

describe("video fragments: budget", () => {
  it("a video message plus channel id, DATA header and tag is at most 1200 bytes", () => {
    expect(VIDEO_FRAGMENT_MAX_BYTES).toBe(1167);
    expect(VIDEO_FRAGMENT_MAX_BYTES + 1 + DATA_HEADER_LEN + AEAD_TAG_LEN).toBe(MAX_VIDEO_DATAGRAM);
    expect(VIDEO_FRAGMENT_MAX_BYTES + 1).toBeLessThanOrEqual(MAX_DATA_PLAINTEXT);
    expect(DEFAULT_FRAGMENT_PAYLOAD % 4).toBe(0);
    expect(DEFAULT_FRAGMENT_PAYLOAD + VIDEO_FRAGMENT_HEADER_LEN).toBeLessThanOrEqual(
      VIDEO_FRAGMENT_MAX_BYTES,
    );
  });

  it("a 4 MiB frame fits the fragment-count limit at the default size; larger and empty frames are refused", () => {
    const fragmenter = new VideoFragmenter({ groupSize: 8 });
    const frame = fragmenter.fragment(new Uint8Array(MAX_FRAME_BYTES), {
      frameId: 1,
      keyframe: true,
      timestampMs: 0,
    });
    expect(frame.dataCount).toBe(Math.ceil(MAX_FRAME_BYTES / DEFAULT_FRAGMENT_PAYLOAD));
    for (const payload of frame.payloads)
      expect(payload.length).toBeLessThanOrEqual(VIDEO_FRAGMENT_MAX_BYTES);
    const info = { frameId: 1, keyframe: false, timestampMs: 0 };
    expect(() => fragmenter.fragment(new Uint8Array(MAX_FRAME_BYTES + 1), info)).toThrow(EncodeError);
    expect(() => fragmenter.fragment(new Uint8Array(0), info)).toThrow(EncodeError);
    expect(() =>
      new VideoFragmenter({ groupSize: 8, fragmentBytes: 16 }).fragment(new Uint8Array(70_000), info),
    ).toThrow(EncodeError);
  });

  it("options are checked when the fragmenter is built", () => {
    for (const groupSize of [1, 33, -1, 2.5])
      expect(() => new VideoFragmenter({ groupSize })).toThrow(RangeError);
    for (const fragmentBytes of [0, VIDEO_FRAGMENT_MAX_PAYLOAD + 1])
      expect(() => new VideoFragmenter({ groupSize: 0, fragmentBytes })).toThrow(RangeError);
  });
});

describe("video fragments: fragmenter round trips", () => {
  it("every message decodes, in send order, data covers the frame and parity is the XOR of its group", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }),
        groupSizeArb,
        fc.integer({ min: 1, max: VIDEO_FRAGMENT_MAX_PAYLOAD }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.boolean(),
        (length, groupSize, fragmentBytes, frameId, timestampMs, keyframe) => {
          const frameBytes = patterned(length, length + frameId);
          const fragmenter = new VideoFragmenter({ groupSize, fragmentBytes });
          const frame = fragmenter.fragment(frameBytes, { frameId, keyframe, timestampMs });
          const count = Math.ceil(length / fragmentBytes);
          const groups = groupSize === 0 ? 0 : Math.ceil(count / groupSize);
          expect(frame.dataCount).toBe(count);
          expect(frame.payloads.length).toBe(count + groups);
          expect(fragmenter.messageCount(length)).toBe(count + groups);
          const rebuilt = new Uint8Array(length);
          let expectedData = 0;
          let expectedGroup = 0;
          let inGroup = 0;
          for (const payload of frame.payloads) {
            expect(payload.length).toBeLessThanOrEqual(VIDEO_FRAGMENT_MAX_BYTES);
            const f = decoded(payload);
            expect(isViewInto(f.payload, payload)).toBe(true);
            expect(f).toMatchObject({
              frameId,
              keyframe,
              timestampMs,
              count,
              groupSize,
              frameLength: length,
            });
            expect(f.fragmentSize).toBe(count === 1 ? length : fragmentBytes);
            if (f.kind === VideoMessageKind.Data) {
              expect(f.index).toBe(expectedData++);
              expect(f.last).toBe(f.index === count - 1);
              expect(frame.payloads[dataSendPosition(f.index, groupSize)]).toBe(payload);
              rebuilt.set(f.payload, f.index * fragmentBytes);
              inGroup++;
            } else {
              // Parity comes right after the last member of its group.
              expect(f.groupIndex).toBe(expectedGroup++);
              expect(inGroup).toBe(Math.min(groupSize, count - f.groupIndex * groupSize));
              const xor = new Uint8Array(f.payload.length);
              for (let i = f.groupIndex * groupSize; i < f.groupIndex * groupSize + inGroup; i++) {
                const slice = frameBytes.subarray(
                  i * fragmentBytes,
                  Math.min(length, (i + 1) * fragmentBytes),
                );
                xorInto(xor, 0, slice, 0, slice.length);
              }
              expect(toHex(f.payload)).toBe(toHex(xor));
              inGroup = 0;
            }
          }
          expect(expectedData).toBe(count);
          expect(expectedGroup).toBe(groups);
          expect(toHex(rebuilt)).toBe(toHex(frameBytes));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("encodeVideoFragment re-encodes any decoded fragment to the same bytes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }),
        groupSizeArb,
        fc.integer({ min: 1, max: 700 }),
        (length, g, size) => {
          const frame = new VideoFragmenter({ groupSize: g, fragmentBytes: size }).fragment(
            patterned(length, 9),
            {
              frameId: 0xffff_fffe,
              keyframe: false,
              timestampMs: 77,
            },
          );
          for (const payload of frame.payloads) {
            const { payload: body, payloadLength: _l, fragmentSize: _s, ...fields } = decoded(payload);
            expect(toHex(encodeVideoFragment(fields, body))).toBe(toHex(payload));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("encodeVideoFragment refuses fields a receiver would refuse", () => {
    const base = {
      kind: VideoMessageKind.Data,
      keyframe: false,
      last: false,
      frameId: 1,
      index: 0,
      count: 2,
      groupIndex: 0,
      groupSize: 0,
      timestampMs: 0,
      frameLength: 20,
    } as const;
    expect(() => encodeVideoFragment(base, new Uint8Array(10))).not.toThrow();
    expect(() => encodeVideoFragment(base, new Uint8Array(9))).toThrow(EncodeError); // 9 + 9 < 20
    expect(() => encodeVideoFragment({ ...base, index: 1 }, new Uint8Array(10))).toThrow(EncodeError); // last flag
    expect(() => encodeVideoFragment({ ...base, groupSize: 1 }, new Uint8Array(10))).toThrow(EncodeError);
    expect(() => encodeVideoFragment({ ...base, frameId: -1 }, new Uint8Array(10))).toThrow(EncodeError);
    expect(() => encodeVideoFragment({ ...base, count: 0x1_0000 }, new Uint8Array(10))).toThrow(EncodeError);
    expect(() => encodeVideoFragment(base, new Uint8Array(VIDEO_FRAGMENT_MAX_PAYLOAD + 1))).toThrow(
      EncodeError,
    );
  });
});

describe("video fragments: refusals", () => {
  const good = encodeVideoFragment(
    {
      kind: VideoMessageKind.Data,
      keyframe: true,
      last: false,
      frameId: 5,
      index: 1,
      count: 3,
      groupIndex: 0,
      groupSize: 2,
      timestampMs: 9,
      frameLength: 250,
    },
    new Uint8Array(100),
  );
  const mutate = (at: number, value: number): Uint8Array => {
    const out = good.slice();
    out[at] = value;
    return out;
  };
  const error = (bytes: Uint8Array) => {
    const result = decodeVideoFragment(bytes);
    return result.ok ? "ok" : result.error;
  };

  it("names each failure", () => {
    expect(error(good)).toBe("ok");
    expect(error(new Uint8Array(VIDEO_FRAGMENT_MAX_BYTES + 1))).toBe("too-large");
    expect(error(good.subarray(0, VIDEO_FRAGMENT_HEADER_LEN - 1))).toBe("too-short");
    expect(error(mutate(0, 0x20))).toBe("unsupported-version");
    expect(error(mutate(0, 0x12))).toBe("unknown-type");
    expect(error(mutate(1, 0x05))).toBe("bad-field"); // unknown flag
    expect(error(mutate(1, 0x03))).toBe("bad-field"); // "last" on a middle fragment
    expect(error(mutate(13, 1))).toBe("bad-field"); // reserved
    expect(error(mutate(12, 1))).toBe("bad-field"); // group size 1
    expect(error(mutate(12, 33))).toBe("bad-field");
    expect(error(mutate(10, 1))).toBe("bad-field"); // group index disagrees with index
    expect(error(mutate(6, 3))).toBe("bad-field"); // index >= count
    expect(error(mutate(8, 0))).toBe("bad-field"); // count 0
    expect(error(good.subarray(0, good.length - 1))).toBe("bad-length");
    expect(error(mutate(20, 99))).toBe("bad-length"); // frame length 99 < 2 full fragments
    expect(error(mutate(23, 1))).toBe("bad-field"); // frame length > 4 MiB
    const parityOnNoFec = mutate(0, 0x11);
    parityOnNoFec[12] = 0;
    expect(error(parityOnNoFec)).toBe("bad-field");
  });
});

describe("NACK and KEYFRAME_REQUEST codecs", () => {
  const indexes = fc.uniqueArray(fc.integer({ min: 0, max: 4095 }), { minLength: 1, maxLength: 64 });

  it("NACK round trips, within MAX_NACK_BYTES", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), indexes, (frameId, list) => {
        const missing = [...list].sort((a, b) => a - b);
        const bytes = encodeNack({ frameId, all: false, missing });
        expect(bytes.length).toBeLessThanOrEqual(MAX_NACK_BYTES);
        expect(decodeNack(bytes)).toEqual({ ok: true, value: { frameId, all: false, missing } });
        expect(peekVideoMessageKind(bytes)).toEqual({ ok: true, value: VideoMessageKind.Nack });
      }),
    );
    const all = encodeNack({ frameId: 7, all: true, missing: [] });
    expect(decodeNack(all)).toEqual({ ok: true, value: { frameId: 7, all: true, missing: [] } });
  });

  it("a run of 17 indexes takes one entry; bad input is refused on both sides", () => {
    const run = Array.from({ length: 17 }, (_, i) => 100 + i);
    expect(encodeNack({ frameId: 1, all: false, missing: run }).length).toBe(12);
    const spread = Array.from({ length: MAX_NACK_ENTRIES + 1 }, (_, i) => i * 17);
    expect(() => encodeNack({ frameId: 1, all: false, missing: spread })).toThrow(EncodeError);
    expect(() => encodeNack({ frameId: 1, all: false, missing: [3, 2] })).toThrow(EncodeError);
    expect(() => encodeNack({ frameId: 1, all: false, missing: [4096] })).toThrow(EncodeError);
    expect(() => encodeNack({ frameId: 1, all: false, missing: [] })).toThrow(EncodeError);
    expect(() => encodeNack({ frameId: 1, all: true, missing: [1] })).toThrow(EncodeError);
    const two = encodeNack({ frameId: 1, all: false, missing: [0, 40] });
    const overlapping = two.slice();
    overlapping[12] = 10; // second entry starts inside the first one's range
    expect(decodeNack(overlapping)).toEqual({ ok: false, error: "bad-field" });
    const beyond = encodeNack({ frameId: 1, all: false, missing: [4090] });
    beyond[10] = 0xff; // bitmap reaches past index 4095
    expect(decodeNack(beyond)).toEqual({ ok: false, error: "bad-field" });
    expect(decodeNack(two.subarray(0, 12))).toEqual({ ok: false, error: "bad-length" });
  });

  it("KEYFRAME_REQUEST round trips and is exactly 8 bytes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (id) => {
        const bytes = encodeKeyframeRequest({ givenUpThrough: id });
        expect(bytes.length).toBe(KEYFRAME_REQUEST_LEN);
        expect(decodeKeyframeRequest(bytes)).toEqual({ ok: true, value: { givenUpThrough: id } });
      }),
    );
    expect(decodeKeyframeRequest(Uint8Array.of(0x13, 0, 0, 1, 0, 0, 0, 0))).toEqual({
      ok: false,
      error: "bad-field",
    });
  });

  it("frame ids compare across the wrap", () => {
    expect(frameIdBefore(0xffff_fff0, 5)).toBe(true);
    expect(frameIdBefore(5, 0xffff_fff0)).toBe(false);
    expect(frameIdDistance(3, 0xffff_ffff)).toBe(4);
    expect(nextFrameId(0xffff_ffff)).toBe(0);
  });
});

describe("video codecs: fuzz", () => {
  const fragmenter = new VideoFragmenter({ groupSize: 3, fragmentBytes: 300 });
  const corpus = [
    ...fragmenter.fragment(patterned(1000, 1), { frameId: 9, keyframe: true, timestampMs: 5 }).payloads,
    ...new VideoFragmenter({ groupSize: 0 }).fragment(patterned(2500, 2), {
      frameId: 1,
      keyframe: false,
      timestampMs: 5,
    }).payloads,
    encodeNack({ frameId: 3, all: false, missing: [1, 2, 3, 40, 90, 4000] }),
    encodeNack({ frameId: 3, all: true, missing: [] }),
    encodeKeyframeRequest({ givenUpThrough: 12 }),
  ];
  const prefixes = [0x10, 0x11, 0x12, 0x13, 0x14, 0x00, 0x20].map((b) => [b, 0]);

  const run = <T>(
    name: string,
    decode: (bytes: Uint8Array) => { ok: true; value: T } | { ok: false; error: DecodeErrorCode },
    seed: number,
    maxLength: number,
  ) => {
    it(`${name}: 100,000 arbitrary inputs give a value or a typed failure, never an exception`, () => {
      const seen = new Map<string, number>();
      for (const input of fuzzInputs({ count: 100_000, seed, maxLength, corpus, prefixes })) {
        const result = decode(input);
        const key = result.ok ? "ok" : result.error;
        if (!result.ok && !CODES.includes(result.error)) throw new Error(`unexpected code ${result.error}`);
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      expect(seen.get("ok") ?? 0, `${name} accepted some inputs`).toBeGreaterThan(100);
      expect(seen.size, `${name} reached several refusal paths`).toBeGreaterThanOrEqual(4);
    });
  };
  run("fragment", decodeVideoFragment, 0xf4a9, VIDEO_FRAGMENT_MAX_BYTES + 8);
  run("nack", decodeNack, 0x4ac4, MAX_NACK_BYTES + 8);
  run("keyframe request", decodeKeyframeRequest, 0x6e7f, 16);

  it("decoded fragments always describe a self-consistent geometry", () => {
    for (const input of fuzzInputs({ count: 50_000, seed: 77, maxLength: 1200, corpus, prefixes })) {
      const result = decodeVideoFragment(input);
      if (!result.ok) continue;
      const f = result.value;
      const lastLength = f.frameLength - (f.count - 1) * f.fragmentSize;
      if (!(lastLength >= 1 && lastLength <= f.fragmentSize && f.fragmentSize <= VIDEO_FRAGMENT_MAX_PAYLOAD))
        throw new Error("inconsistent geometry accepted");
      if (f.kind === VideoMessageKind.Data && f.payload.length !== (f.last ? lastLength : f.fragmentSize))
        throw new Error("wrong data length accepted");
    }
  });
});
