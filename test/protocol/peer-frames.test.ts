import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import type { DecodeErrorCode } from "../../protocol/wire/decode.ts";
import {
  DATA_HEADER_LEN,
  decodePeerFrame,
  encodeHandshakeInit,
  encodeHandshakeReply,
  MAX_PEER_DATAGRAM,
  PeerFrameType,
  writeDataHeader,
} from "../../protocol/wire/peer-frames.ts";
import { PROTOCOL_VERSION } from "../../protocol/wire/version.ts";
import { fuzzInputs, isViewInto } from "../support/fuzz.ts";

const CODES: readonly DecodeErrorCode[] = [
  "too-short",
  "too-large",
  "unsupported-version",
  "unknown-type",
  "bad-length",
  "bad-field",
];
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

function dataFrame(receiverIndex: number, counter: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(DATA_HEADER_LEN + body.length);
  writeDataHeader(new DataView(out.buffer), receiverIndex, counter);
  out.set(body, DATA_HEADER_LEN);
  return out;
}

describe("peer frames: round trips", () => {
  it("HANDSHAKE_INIT", () => {
    fc.assert(
      fc.property(u32, bytes(16, 16), bytes(32, 200), (index, sessionId, noise) => {
        const decoded = decodePeerFrame(encodeHandshakeInit(index, sessionId, noise));
        expect(decoded.ok && decoded.value).toMatchObject({
          type: PeerFrameType.HandshakeInit,
          senderIndex: index,
        });
        if (!decoded.ok || decoded.value.type !== PeerFrameType.HandshakeInit) throw new Error("not decoded");
        expect(toHex(decoded.value.sessionId)).toBe(toHex(sessionId));
        expect(toHex(decoded.value.noiseMessage)).toBe(toHex(noise));
      }),
    );
  });

  it("HANDSHAKE_RESPONSE and HANDSHAKE_FINAL", () => {
    fc.assert(
      fc.property(fc.boolean(), u32, u32, bytes(96, 300), (final, sender, receiver, noise) => {
        const type = final ? PeerFrameType.HandshakeFinal : PeerFrameType.HandshakeResponse;
        const decoded = decodePeerFrame(encodeHandshakeReply(type, sender, receiver, noise));
        if (
          !decoded.ok ||
          decoded.value.type === PeerFrameType.Data ||
          decoded.value.type === PeerFrameType.HandshakeInit
        ) {
          throw new Error("not decoded");
        }
        expect(decoded.value).toMatchObject({ type, senderIndex: sender, receiverIndex: receiver });
        expect(toHex(decoded.value.noiseMessage)).toBe(toHex(noise));
      }),
    );
  });

  it("DATA, with counters up to 2^53 - 1 and the header as a view of the first 16 bytes", () => {
    fc.assert(
      fc.property(
        u32,
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        bytes(16, 1000),
        (index, counter, body) => {
          const datagram = dataFrame(index, counter, body);
          const decoded = decodePeerFrame(datagram);
          if (!decoded.ok || decoded.value.type !== PeerFrameType.Data) throw new Error("not decoded");
          expect(decoded.value.receiverIndex).toBe(index);
          expect(decoded.value.counter).toBe(counter);
          expect(isViewInto(decoded.value.header, datagram)).toBe(true);
          expect(decoded.value.header.length).toBe(16);
          expect(toHex(decoded.value.ciphertext)).toBe(toHex(body));
        },
      ),
    );
  });
});

describe("peer frames: refusals", () => {
  it("a version mismatch fails clearly, before anything else is read", () => {
    const frame = encodeHandshakeInit(1, new Uint8Array(16), new Uint8Array(32));
    for (const version of [0, 2, 255]) {
      frame[0] = version;
      expect(decodePeerFrame(frame)).toEqual({ ok: false, error: "unsupported-version" });
    }
  });

  it("refuses oversize input before looking at it, short frames, unknown types, reserved bits and huge counters", () => {
    expect(decodePeerFrame(new Uint8Array(10_000_000))).toEqual({ ok: false, error: "too-large" });
    expect(decodePeerFrame(new Uint8Array(MAX_PEER_DATAGRAM + 1))).toEqual({ ok: false, error: "too-large" });
    expect(decodePeerFrame(Uint8Array.of(PROTOCOL_VERSION, 1, 0))).toEqual({ ok: false, error: "too-short" });
    expect(decodePeerFrame(Uint8Array.of(PROTOCOL_VERSION, 9, 0, 0))).toEqual({
      ok: false,
      error: "unknown-type",
    });
    expect(decodePeerFrame(Uint8Array.of(PROTOCOL_VERSION, 4, 0, 1))).toEqual({
      ok: false,
      error: "bad-field",
    });
    expect(decodePeerFrame(dataFrame(1, 0, new Uint8Array(15)))).toEqual({ ok: false, error: "too-short" });
    const huge = dataFrame(1, 0, new Uint8Array(16));
    new DataView(huge.buffer).setUint32(12, 0x20_0000, true);
    expect(decodePeerFrame(huge)).toEqual({ ok: false, error: "bad-field" });
    expect(decodePeerFrame(encodeHandshakeReply(2, 1, 2, new Uint8Array(95)))).toEqual({
      ok: false,
      error: "too-short",
    });
  });
});

describe("peer frames: fuzz", () => {
  it("100,000 arbitrary inputs give a value or a typed failure, never an exception, and values are views", () => {
    const corpus = [
      encodeHandshakeInit(7, new Uint8Array(16).fill(3), new Uint8Array(32).fill(9)),
      encodeHandshakeReply(PeerFrameType.HandshakeResponse, 1, 2, new Uint8Array(96)),
      encodeHandshakeReply(PeerFrameType.HandshakeFinal, 1, 2, new Uint8Array(64)),
      dataFrame(5, 123456789, new Uint8Array(1200)),
    ];
    const prefixes = [1, 2, 3, 4, 0, 5, 0x15].map((t) => [PROTOCOL_VERSION, t, 0, 0]);
    const seen = new Map<string, number>();
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0x5eed,
      maxLength: MAX_PEER_DATAGRAM + 8,
      corpus,
      prefixes,
    })) {
      const result = decodePeerFrame(input);
      if (result.ok) {
        const value = result.value;
        const fields =
          value.type === PeerFrameType.Data ? [value.header, value.ciphertext] : [value.noiseMessage];
        for (const field of fields) if (!isViewInto(field, input)) throw new Error("decoder copied input");
        seen.set(`type ${value.type}`, (seen.get(`type ${value.type}`) ?? 0) + 1);
      } else {
        if (!CODES.includes(result.error)) throw new Error(`unexpected code ${result.error}`);
        seen.set(result.error, (seen.get(result.error) ?? 0) + 1);
      }
    }
    // The corpus reaches every frame type and every refusal path.
    for (const key of [
      "type 1",
      "type 2",
      "type 3",
      "type 4",
      "too-short",
      "too-large",
      "unsupported-version",
      "unknown-type",
      "bad-field",
    ]) {
      expect(seen.get(key) ?? 0, key).toBeGreaterThan(100);
    }
  });
});
