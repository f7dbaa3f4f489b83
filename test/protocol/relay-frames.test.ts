import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../protocol/bytes.ts";
import type { DecodeErrorCode } from "../../protocol/wire/decode.ts";
import { MAX_PEER_DATAGRAM } from "../../protocol/wire/peer-frames.ts";
import {
  CHALLENGE_LEN,
  decodeRelayFrame,
  encodeChallenge,
  encodeForward,
  encodeHello,
  encodeLeaseAck,
  encodeLeasePresent,
  encodeLeaseReject,
  encodePing,
  HELLO_LEN,
  isForwardFor,
  leaseProofMessage,
  MAX_LEASE_LEN,
  MAX_RELAY_DATAGRAM,
  RejectReason,
  RelayFrameType,
  Role,
} from "../../protocol/wire/relay-frames.ts";
import { PROTOCOL_VERSION, SESSION_ID_LEN } from "../../protocol/wire/version.ts";
import { fuzzInputs, isViewInto } from "../support/fuzz.ts";

const CODES: readonly DecodeErrorCode[] = [
  "too-short",
  "too-large",
  "unsupported-version",
  "unknown-type",
  "bad-length",
  "bad-field",
];
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const sid = bytes(16, 16);
const role = fc.constantFrom(Role.Host, Role.Client);
const hex = (b: Uint8Array) => toHex(b);

function decoded(datagram: Uint8Array) {
  const result = decodeRelayFrame(datagram);
  if (!result.ok) throw new Error(`decode failed: ${result.error}`);
  return result.value;
}

describe("relay frames: round trips", () => {
  it("HELLO and CHALLENGE, and a CHALLENGE is never larger than the HELLO that asks for it", () => {
    expect(CHALLENGE_LEN).toBeLessThanOrEqual(HELLO_LEN);
    fc.assert(
      fc.property(sid, role, bytes(16, 16), bytes(32, 32), (s, r, nonce, cookie) => {
        expect(decoded(encodeHello(s, r, nonce))).toMatchObject({ type: RelayFrameType.Hello, role: r });
        const challenge = decoded(encodeChallenge(s, nonce, cookie));
        if (challenge.type !== RelayFrameType.Challenge) throw new Error("wrong type");
        expect([hex(challenge.sessionId), hex(challenge.clientNonce), hex(challenge.cookie)]).toEqual([
          hex(s),
          hex(nonce),
          hex(cookie),
        ]);
      }),
    );
  });

  it("LEASE_PRESENT up to the largest lease", () => {
    fc.assert(
      fc.property(
        sid,
        role,
        bytes(32, 32),
        bytes(64, 64),
        bytes(1, MAX_LEASE_LEN),
        (s, r, cookie, proof, lease) => {
          const frame = decoded(encodeLeasePresent(s, r, cookie, proof, lease));
          if (frame.type !== RelayFrameType.LeasePresent) throw new Error("wrong type");
          expect(frame.role).toBe(r);
          expect([hex(frame.cookie), hex(frame.proof), hex(frame.lease)]).toEqual([
            hex(cookie),
            hex(proof),
            hex(lease),
          ]);
        },
      ),
      { numRuns: 300 },
    );
    expect(() =>
      encodeLeasePresent(
        new Uint8Array(16),
        Role.Host,
        new Uint8Array(32),
        new Uint8Array(64),
        new Uint8Array(MAX_LEASE_LEN + 1),
      ),
    ).toThrow();
  });

  it("LEASE_ACK with IPv4 and IPv6 observed addresses, LEASE_REJECT, FORWARD, PING and PONG", () => {
    const address = fc.oneof(
      fc.record({
        family: fc.constant(4 as const),
        address: bytes(4, 4),
        port: fc.integer({ min: 0, max: 65535 }),
      }),
      fc.record({
        family: fc.constant(6 as const),
        address: bytes(16, 16),
        port: fc.integer({ min: 0, max: 65535 }),
      }),
    );
    const reason = fc.constantFrom(...Object.values(RejectReason));
    fc.assert(
      fc.property(
        sid,
        role,
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        address,
        reason,
        bytes(1, MAX_PEER_DATAGRAM),
        bytes(8, 8),
        (s, r, bound, expires, observed, why, payload, nonce) => {
          const ack = decoded(encodeLeaseAck(s, r, bound, expires, observed));
          if (ack.type !== RelayFrameType.LeaseAck) throw new Error("wrong type");
          expect([
            ack.role,
            ack.peerBound,
            ack.expiresInSecs,
            ack.observed.family,
            ack.observed.port,
          ]).toEqual([r, bound, expires, observed.family, observed.port]);
          expect(hex(ack.observed.address)).toBe(hex(observed.address));
          expect(decoded(encodeLeaseReject(s, why))).toMatchObject({
            type: RelayFrameType.LeaseReject,
            reason: why,
          });
          const forward = decoded(encodeForward(s, payload));
          if (forward.type !== RelayFrameType.Forward) throw new Error("wrong type");
          expect(hex(forward.payload)).toBe(hex(payload));
          for (const type of [RelayFrameType.Ping, RelayFrameType.Pong] as const) {
            const ping = decoded(encodePing(type, s, nonce));
            expect(ping.type).toBe(type);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the lease proof message binds version, session, role, cookie and lease", () => {
    const base = leaseProofMessage(new Uint8Array(16), Role.Host, new Uint8Array(32), Uint8Array.of(1));
    expect(
      hex(leaseProofMessage(new Uint8Array(16), Role.Client, new Uint8Array(32), Uint8Array.of(1))),
    ).not.toBe(hex(base));
    expect(
      hex(leaseProofMessage(new Uint8Array(16).fill(1), Role.Host, new Uint8Array(32), Uint8Array.of(1))),
    ).not.toBe(hex(base));
    expect(
      hex(leaseProofMessage(new Uint8Array(16), Role.Host, new Uint8Array(32).fill(1), Uint8Array.of(1))),
    ).not.toBe(hex(base));
  });
});

describe("relay frames: refusals", () => {
  it("a version mismatch fails clearly", () => {
    const hello = encodeHello(new Uint8Array(16), Role.Host, new Uint8Array(16));
    hello[0] = PROTOCOL_VERSION + 1;
    expect(decodeRelayFrame(hello)).toEqual({ ok: false, error: "unsupported-version" });
  });

  it("refuses oversize input, wrong fixed lengths, bad roles, unknown reasons and empty forwards", () => {
    expect(decodeRelayFrame(new Uint8Array(10_000_000))).toEqual({ ok: false, error: "too-large" });
    expect(decodeRelayFrame(new Uint8Array(MAX_RELAY_DATAGRAM + 1))).toEqual({
      ok: false,
      error: "too-large",
    });
    const hello = encodeHello(new Uint8Array(16), Role.Host, new Uint8Array(16));
    expect(decodeRelayFrame(hello.subarray(0, HELLO_LEN - 1))).toEqual({ ok: false, error: "bad-length" });
    const badRole = hello.slice();
    badRole[20] = 3;
    expect(decodeRelayFrame(badRole)).toEqual({ ok: false, error: "bad-field" });
    const reject = encodeLeaseReject(new Uint8Array(16), RejectReason.Expired);
    reject[20] = 200;
    expect(decodeRelayFrame(reject)).toEqual({ ok: false, error: "bad-field" });
    const present = encodeLeasePresent(
      new Uint8Array(16),
      Role.Host,
      new Uint8Array(32),
      new Uint8Array(64),
      new Uint8Array(10),
    );
    expect(decodeRelayFrame(present.subarray(0, present.length - 1))).toEqual({
      ok: false,
      error: "bad-length",
    });
    expect(decodeRelayFrame(encodeForward(new Uint8Array(16), Uint8Array.of(1)).subarray(0, 20))).toEqual({
      ok: false,
      error: "too-short",
    });
    const unknown = hello.slice();
    unknown[1] = 0x04;
    expect(decodeRelayFrame(unknown)).toEqual({ ok: false, error: "unknown-type" });
  });
});

describe("relay frames: fuzz", () => {
  it("100,000 arbitrary inputs give a value or a typed failure, never an exception, and values are views", () => {
    const s = new Uint8Array(16).fill(7);
    const corpus = [
      encodeHello(s, Role.Host, new Uint8Array(16)),
      encodeChallenge(s, new Uint8Array(16), new Uint8Array(32)),
      encodeLeasePresent(
        s,
        Role.Client,
        new Uint8Array(32),
        new Uint8Array(64),
        new Uint8Array(600).fill(0x41),
      ),
      encodeLeaseAck(s, Role.Host, true, 300, {
        family: 4,
        address: Uint8Array.of(127, 0, 0, 1),
        port: 4000,
      }),
      encodeLeaseAck(s, Role.Client, false, 300, { family: 6, address: new Uint8Array(16), port: 4000 }),
      encodeLeaseReject(s, RejectReason.BadCookie),
      encodeForward(s, new Uint8Array(1200)),
      encodePing(RelayFrameType.Ping, s, new Uint8Array(8)),
      encodePing(RelayFrameType.Pong, s, new Uint8Array(8)),
    ];
    const prefixes = Object.values(RelayFrameType).map((t) => [PROTOCOL_VERSION, t, 0, 0]);
    const seen = new Map<string, number>();
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0xbeef,
      maxLength: MAX_RELAY_DATAGRAM + 8,
      corpus,
      prefixes,
    })) {
      const result = decodeRelayFrame(input);
      if (result.ok) {
        const value = result.value as unknown as Record<string, unknown>;
        for (const field of Object.values(value)) {
          if (field instanceof Uint8Array && !isViewInto(field, input))
            throw new Error("decoder copied input");
        }
        seen.set(`type ${result.value.type}`, (seen.get(`type ${result.value.type}`) ?? 0) + 1);
      } else {
        if (!CODES.includes(result.error)) throw new Error(`unexpected code ${result.error}`);
        seen.set(result.error, (seen.get(result.error) ?? 0) + 1);
      }
    }
    for (const type of Object.values(RelayFrameType))
      expect(seen.get(`type ${type}`) ?? 0, `type ${type}`).toBeGreaterThan(50);
    for (const code of CODES) expect(seen.get(code) ?? 0, code).toBeGreaterThan(50);
  });
});

describe("relay frames: the allocation-free FORWARD check", () => {
  /** What the endpoints did before the fast path: the full decode, then the session comparison. */
  const viaDecode = (input: Uint8Array, sessionId: Uint8Array) => {
    const result = decodeRelayFrame(input);
    return (
      result.ok &&
      result.value.type === RelayFrameType.Forward &&
      toHex(result.value.sessionId) === toHex(sessionId)
    );
  };

  it("accepts a FORWARD for its session and refuses every near miss", () => {
    const s = new Uint8Array(SESSION_ID_LEN).fill(7);
    const forward = encodeForward(s, new Uint8Array(1200).fill(1));
    expect(isForwardFor(forward, s)).toBe(true);
    for (let at = 0; at < 20; at++) {
      const changed = forward.slice();
      changed[at] = (changed[at] as number) ^ 0x01;
      expect(isForwardFor(changed, s), `byte ${at} changed`).toBe(false);
      expect(viaDecode(changed, s), `byte ${at} changed`).toBe(false);
    }
    expect(isForwardFor(forward.subarray(0, 20), s), "no payload").toBe(false);
    expect(isForwardFor(forward, s.subarray(0, 15)), "short session id").toBe(false);
    const tooLarge = new Uint8Array(MAX_RELAY_DATAGRAM + 1);
    tooLarge.set(forward.subarray(0, 20));
    expect(isForwardFor(tooLarge, s), "too large").toBe(false);
    const largest = tooLarge.subarray(0, MAX_RELAY_DATAGRAM);
    expect(isForwardFor(largest, s)).toBe(viaDecode(largest, s));
  });

  it("agrees with the full decoder on 100,000 fuzzed inputs and on arbitrary FORWARD-shaped ones", () => {
    const s = new Uint8Array(SESSION_ID_LEN).fill(7);
    const corpus = [encodeForward(s, new Uint8Array(1200)), encodeForward(s, Uint8Array.of(9))];
    const prefixes = [[PROTOCOL_VERSION, RelayFrameType.Forward, 0, 0, ...s]];
    let accepted = 0;
    for (const input of fuzzInputs({
      count: 100_000,
      seed: 0xf0a4d,
      maxLength: MAX_RELAY_DATAGRAM + 8,
      corpus,
      prefixes,
    })) {
      const fast = isForwardFor(input, s);
      if (fast !== viaDecode(input, s)) throw new Error(`disagreement on ${toHex(input.subarray(0, 24))}`);
      if (fast) accepted++;
    }
    expect(accepted).toBeGreaterThan(1000);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.boolean(),
        (tail, sessionId, sameSession) => {
          const head = Uint8Array.of(PROTOCOL_VERSION, RelayFrameType.Forward, 0, 0);
          const input = new Uint8Array(4 + SESSION_ID_LEN + tail.length);
          input.set(head);
          input.set(sameSession ? sessionId : s, 4);
          input.set(tail, 4 + SESSION_ID_LEN);
          expect(isForwardFor(input, sessionId)).toBe(viaDecode(input, sessionId));
        },
      ),
      { numRuns: 5000, seed: 0x5e55 },
    );
  });
});
