import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../protocol/bytes.ts";
import { deviceFingerprint, deviceIdFromKeys, isDeviceId } from "../../protocol/identity/device-id.ts";
import {
  canonicalEnrollmentCode,
  ENROLLMENT_CODE_CHARS,
  enrollmentProofMessage,
  formatEnrollmentCode,
  tokenChallengeMessage,
} from "../../protocol/identity/device-proofs.ts";

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const bytes = (from: number) => Uint8Array.from({ length: 32 }, (_, i) => from + i);
const X = bytes(0);
const ED = bytes(32);

/** Splits a signed message back into its fields (the test's independent reading of the documented layout). */
function parseFields(message: Uint8Array, context: string): Uint8Array[] {
  const head = utf8(context);
  expect(message.subarray(0, head.length)).toEqual(head);
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const fields: Uint8Array[] = [];
  let at = head.length;
  while (at < message.length) {
    const length = view.getUint32(at, false);
    fields.push(message.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  expect(at).toBe(message.length);
  return fields;
}

describe("device id and fingerprint", () => {
  // Known answers computed independently (Python hashlib + base64.b32encode) over keys 00..1f and 20..3f.
  it("matches the independently computed vector", () => {
    expect(deviceIdFromKeys(X, ED)).toBe("d_xoelgnvrms22s37a3w6tcrqeca");
    expect(deviceFingerprint(X, ED)).toBe("d349 6d2f 9659 2a94 408a 4ab8 517e 443e 84ea cfc3");
  });

  it("is deterministic, well formed and recognised by isDeviceId", () => {
    fc.assert(
      fc.property(key, key, (x, ed) => {
        const id = deviceIdFromKeys(x, ed);
        expect(deviceIdFromKeys(x.slice(), ed.slice())).toBe(id);
        expect(id).toMatch(/^d_[a-z2-7]{26}$/);
        expect(isDeviceId(id)).toBe(true);
        const fingerprint = deviceFingerprint(x, ed);
        expect(deviceFingerprint(x.slice(), ed.slice())).toBe(fingerprint);
        expect(fingerprint).toMatch(/^[0-9a-f]{4}( [0-9a-f]{4}){9}$/);
      }),
    );
  });

  it("gives different keys different ids and fingerprints, and the order of the keys matters", () => {
    fc.assert(
      fc.property(key, key, key, key, (x1, ed1, x2, ed2) => {
        fc.pre(toHex(x1) + toHex(ed1) !== toHex(x2) + toHex(ed2));
        expect(deviceIdFromKeys(x1, ed1)).not.toBe(deviceIdFromKeys(x2, ed2));
        expect(deviceFingerprint(x1, ed1)).not.toBe(deviceFingerprint(x2, ed2));
      }),
    );
    expect(deviceIdFromKeys(X, ED)).not.toBe(deviceIdFromKeys(ED, X));
  });

  it("changes when any single bit of either key flips", () => {
    fc.assert(
      fc.property(key, key, fc.nat({ max: 511 }), (x, ed, bit) => {
        const flipped = (bit < 256 ? x : ed).slice();
        const b = bit % 256;
        flipped[b >> 3] = (flipped[b >> 3] as number) ^ (1 << (b & 7));
        const other = bit < 256 ? deviceIdFromKeys(flipped, ed) : deviceIdFromKeys(x, flipped);
        expect(other).not.toBe(deviceIdFromKeys(x, ed));
      }),
    );
  });

  it("uses separate hash contexts for the id and the fingerprint", () => {
    const idHash = toHex(
      sha256(new Uint8Array([...utf8("wavry device id v1\0"), ...X, ...ED])).subarray(0, 20),
    );
    expect(deviceFingerprint(X, ED).replaceAll(" ", "")).not.toBe(idHash);
  });

  it("refuses keys of the wrong length", () => {
    expect(() => deviceIdFromKeys(new Uint8Array(31), ED)).toThrow(RangeError);
    expect(() => deviceIdFromKeys(X, new Uint8Array(33))).toThrow(RangeError);
    expect(() => deviceFingerprint(new Uint8Array(0), ED)).toThrow(RangeError);
  });

  it("isDeviceId refuses anything but the canonical spelling", () => {
    const id = deviceIdFromKeys(X, ED);
    for (const bad of [
      id.toUpperCase(),
      `${id}a`,
      id.slice(0, -1),
      `x_${id.slice(2)}`,
      `${id.slice(0, -1)}b`, // non-zero padding bits in the last character
      `${id.slice(0, -1)}1`, // not base32
      ` ${id}`,
      "",
      42,
      null,
    ]) {
      expect(isDeviceId(bad), String(bad)).toBe(false);
    }
  });
});

describe("signed device messages", () => {
  const enrollment = {
    userIdOrCode: "u_1",
    x25519Public: X,
    ed25519Public: ED,
    name: "Büro",
    timestampMs: 1_700_000_000_000,
  };

  it("match the independently computed enrollment and token vectors", () => {
    const message = enrollmentProofMessage(enrollment);
    expect(message.length).toBe(127);
    expect(toHex(sha256(message))).toBe("f6f294499d1469572cb5c1a5ffe85df88771860af51a9c358bf237723132f0d9");
    const token = tokenChallengeMessage({
      challengeId: "cid",
      challenge: new Uint8Array(32).fill(7),
      deviceId: "d_abc",
    });
    expect(token.length).toBe(74);
    expect(toHex(sha256(token))).toBe("43f1f44dea4362fa5890693ce55d3412f156a14e0ce606e5533c6751ce08d0ca");
  });

  const wellFormed = fc.string({ unit: "binary", maxLength: 80 });
  const enrollmentInput = fc.record({
    userIdOrCode: wellFormed,
    x25519Public: key,
    ed25519Public: key,
    name: wellFormed,
    timestampMs: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  });
  const tokenInput = fc.record({
    challengeId: wellFormed,
    challenge: fc.uint8Array({ maxLength: 64 }),
    deviceId: wellFormed,
  });

  it("decode back to exactly their fields (so the encoding is injective)", () => {
    fc.assert(
      fc.property(enrollmentInput, (input) => {
        const fields = parseFields(enrollmentProofMessage(input), "wavry device enrollment v1\0");
        expect(fields).toHaveLength(5);
        expect(new TextDecoder().decode(fields[0])).toBe(input.userIdOrCode);
        expect(fields[1]).toEqual(input.x25519Public);
        expect(fields[2]).toEqual(input.ed25519Public);
        expect(new TextDecoder().decode(fields[3])).toBe(input.name);
        const time = fields[4] ?? new Uint8Array(0);
        expect(new DataView(time.buffer, time.byteOffset, 8).getBigUint64(0, false)).toBe(
          BigInt(input.timestampMs),
        );
      }),
    );
    fc.assert(
      fc.property(tokenInput, (input) => {
        const fields = parseFields(tokenChallengeMessage(input), "wavry device token v1\0");
        expect(fields).toHaveLength(3);
        expect(new TextDecoder().decode(fields[0])).toBe(input.challengeId);
        expect(fields[1]).toEqual(input.challenge);
        expect(new TextDecoder().decode(fields[2])).toBe(input.deviceId);
      }),
    );
  });

  it("differ whenever the inputs differ", () => {
    fc.assert(
      fc.property(enrollmentInput, enrollmentInput, (a, b) => {
        const same =
          a.userIdOrCode === b.userIdOrCode &&
          a.name === b.name &&
          a.timestampMs === b.timestampMs &&
          toHex(a.x25519Public) === toHex(b.x25519Public) &&
          toHex(a.ed25519Public) === toHex(b.ed25519Public);
        expect(toHex(enrollmentProofMessage(a)) === toHex(enrollmentProofMessage(b))).toBe(same);
      }),
    );
  });

  it("cannot move bytes across a field boundary", () => {
    // The same concatenated bytes split at two different points must sign different messages.
    fc.assert(
      fc.property(fc.uint8Array({ max: 127, maxLength: 48 }), fc.nat(), fc.nat(), (joined, i, j) => {
        const cut1 = i % (joined.length + 1);
        const cut2 = j % (joined.length + 1);
        fc.pre(cut1 !== cut2);
        // ASCII bytes, so the tail spells the same bytes as a deviceId string.
        const at = (cut: number) =>
          tokenChallengeMessage({
            challengeId: "",
            challenge: joined.subarray(0, cut),
            deviceId: String.fromCharCode(...joined.subarray(cut)),
          });
        expect(toHex(at(cut1))).not.toBe(toHex(at(cut2)));
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.nat(), fc.nat(), (joined, i, j) => {
        const cut1 = i % (joined.length + 1);
        const cut2 = j % (joined.length + 1);
        fc.pre(cut1 !== cut2);
        const at = (cut: number) =>
          tokenChallengeMessage({
            challengeId: joined.slice(0, cut),
            challenge: new Uint8Array(0),
            deviceId: joined.slice(cut),
          });
        expect(toHex(at(cut1))).not.toBe(toHex(at(cut2)));
      }),
    );
    // Name and timestamp: a name that ends like the start of another timestamp field is still a different message.
    const base = enrollmentProofMessage(enrollment);
    const shifted = enrollmentProofMessage({
      ...enrollment,
      name: `${enrollment.name}\u0000`,
      timestampMs: 0,
    });
    expect(toHex(shifted)).not.toBe(toHex(base));
  });

  it("bind the context: an enrollment message is never a token message", () => {
    const token = tokenChallengeMessage({ challengeId: "a", challenge: X, deviceId: "b" });
    expect(
      toHex(enrollmentProofMessage(enrollment)).startsWith(toHex(utf8("wavry device enrollment v1\0"))),
    ).toBe(true);
    expect(toHex(token).startsWith(toHex(utf8("wavry device token v1\0")))).toBe(true);
  });

  it("refuse malformed input instead of signing something ambiguous", () => {
    expect(() => enrollmentProofMessage({ ...enrollment, x25519Public: new Uint8Array(31) })).toThrow(
      RangeError,
    );
    expect(() => enrollmentProofMessage({ ...enrollment, ed25519Public: new Uint8Array(33) })).toThrow(
      RangeError,
    );
    expect(() => enrollmentProofMessage({ ...enrollment, timestampMs: -1 })).toThrow(RangeError);
    expect(() => enrollmentProofMessage({ ...enrollment, timestampMs: 1.5 })).toThrow(RangeError);
    expect(() => enrollmentProofMessage({ ...enrollment, timestampMs: 2 ** 53 })).toThrow(RangeError);
    // A lone surrogate would encode as U+FFFD, colliding with the name that really contains U+FFFD.
    expect(() => enrollmentProofMessage({ ...enrollment, name: "a\uD800" })).toThrow(RangeError);
    expect(() => enrollmentProofMessage({ ...enrollment, name: "a\uFFFD" })).not.toThrow();
    expect(() => enrollmentProofMessage({ ...enrollment, name: "x".repeat(4097) })).toThrow(RangeError);
    expect(() => tokenChallengeMessage({ challengeId: "\uDC00", challenge: X, deviceId: "d" })).toThrow(
      RangeError,
    );
  });
});

describe("enrollment codes", () => {
  it("canonicalise what a person types and format it back in groups", () => {
    const canonical = "ABCDEFGHIJKLMNOPQRST";
    expect(canonical).toHaveLength(ENROLLMENT_CODE_CHARS);
    expect(formatEnrollmentCode(canonical)).toBe("ABCD-EFGH-IJKL-MNOP-QRST");
    expect(canonicalEnrollmentCode("abcd-efgh-ijkl-mnop-qrst")).toBe(canonical);
    expect(canonicalEnrollmentCode(" ABCD EFGH IJKL MNOP QRST ")).toBe(canonical);
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
          minLength: 20,
          maxLength: 20,
        }),
        (code) => {
          expect(canonicalEnrollmentCode(formatEnrollmentCode(code))).toBe(code);
          expect(canonicalEnrollmentCode(formatEnrollmentCode(code).toLowerCase())).toBe(code);
        },
      ),
    );
  });

  it("refuse codes of the wrong length or alphabet", () => {
    for (const bad of [
      "",
      "ABCD-EFGH",
      "ABCDEFGHIJKLMNOPQRS",
      "ABCDEFGHIJKLMNOPQRSTU",
      "ABCDEFGHIJKLMNOPQRS0",
      "ABCDEFGHIJKLMNOPQRS1",
      "A".repeat(65),
    ]) {
      expect(canonicalEnrollmentCode(bad), bad).toBeNull();
    }
  });
});
