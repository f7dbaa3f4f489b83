import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base32Lower, isDeviceId } from "../../protocol/identity/device-id.ts";
import {
  AUTO_PING_TEXT,
  AUTO_PONG_TEXT,
  type ClientMessage,
  clientMessageSchemas,
  encodeMessage,
  isCandidate,
  type ParseFailure,
  parseClientMessage,
  parseServerMessage,
  SESSION_FAILURE_REASONS,
  SESSION_REJECT_REASONS,
  SESSION_REPORT_FAILURES,
  type ServerMessage,
  SIGNAL_ERROR_CODES,
  SIGNAL_LIMITS,
  serverMessageSchemas,
  utf8Length,
} from "../../protocol/signaling/messages.ts";

const FAILURES: readonly ParseFailure[] = [
  "too_large",
  "not_json",
  "unsupported_version",
  "unknown_type",
  "invalid_message",
];
const CLIENT_TYPES = Object.keys(clientMessageSchemas);

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const deviceId = bytes(16).map((b) => `d_${base32Lower(b)}`);
const relayId = bytes(16).map((b) => `r_${base32Lower(b)}`);
const sessionId = bytes(16).map(b64url);
const key = bytes(32).map(b64url);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
const ipv6 = fc.ipV6().map((a) => `[${a}]`);
const port = fc.integer({ min: 1, max: 65_535 });
const candidate = fc
  .tuple(fc.oneof(ipv4, ipv6), port)
  .map(([h, p]) => `${h}:${p}`)
  .filter(isCandidate);
const candidates = fc.array(candidate, { maxLength: SIGNAL_LIMITS.maxCandidates });
const someCandidates = fc.array(candidate, { minLength: 1, maxLength: SIGNAL_LIMITS.maxCandidates });
const id = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/);
const region = fc.stringMatching(/^[a-z0-9-]{1,32}$/);
const jws = fc
  .tuple(bytes(20), bytes(60), bytes(64))
  .map(([a, b, c]) => `${b64url(a)}.${b64url(b)}.${b64url(c)}`);

/** The envelope with an optional id (absent, never `undefined`). */
function env<T extends string, R extends object>(type: T, rest: fc.Arbitrary<R>) {
  return fc
    .tuple(fc.option(id, { nil: undefined }), rest)
    .map(([i, r]) => ({ v: 1 as const, type, ...(i === undefined ? {} : { id: i }), ...r }));
}

const outcome = fc.oneof(
  fc.record({
    result: fc.constant("established" as const),
    path: fc.constantFrom("direct" as const, "relay" as const),
    handshakeMs: fc.integer({ min: 0, max: SIGNAL_LIMITS.maxHandshakeMs }),
  }),
  fc.record({ result: fc.constant("failed" as const), reason: fc.constantFrom(...SESSION_REPORT_FAILURES) }),
);

const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  env(
    "session.request",
    fc.record(
      { to: deviceId, candidates, wantRelay: fc.boolean(), region },
      { requiredKeys: ["to", "candidates"] },
    ),
  ),
  env("session.accept", fc.record({ sessionId, candidates })),
  env("session.reject", fc.record({ sessionId, reason: fc.constantFrom(...SESSION_REJECT_REASONS) })),
  env("session.cancel", fc.record({ sessionId })),
  env("candidates", fc.record({ sessionId, candidates: someCandidates })),
  env("relay.request", fc.record({ sessionId })),
  env("session.report", fc.record({ sessionId, outcome })),
  env(
    "presence.query",
    fc.record({ devices: fc.array(deviceId, { minLength: 1, maxLength: SIGNAL_LIMITS.maxPresenceDevices }) }),
  ),
  env("ping", fc.constant({})),
);

const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  env(
    "session.offer",
    fc.record({ sessionId, from: deviceId, fromX25519PublicKey: key, candidates, wantRelay: fc.boolean() }),
  ),
  env("session.pending", fc.record({ sessionId, host: deviceId })),
  env("session.accepted", fc.record({ sessionId, host: deviceId, hostX25519PublicKey: key, candidates })),
  env("session.rejected", fc.record({ sessionId, reason: fc.constantFrom(...SESSION_REJECT_REASONS) })),
  env(
    "session.failed",
    fc.record(
      { sessionId, reason: fc.constantFrom(...SESSION_FAILURE_REASONS) },
      { requiredKeys: ["reason"] },
    ),
  ),
  env("candidates", fc.record({ sessionId, from: deviceId, candidates: someCandidates })),
  env(
    "relay.assigned",
    fc.record({
      sessionId,
      relayId,
      relayAddr: candidate,
      lease: jws,
      expiresAt: fc.integer({ min: 1, max: 2 ** 40 }),
    }),
  ),
  env("presence", fc.record({ online: fc.array(deviceId, { maxLength: SIGNAL_LIMITS.maxPresenceDevices }) })),
  env(
    "error",
    fc.record(
      { code: fc.constantFrom(...SIGNAL_ERROR_CODES), message: fc.string({ maxLength: 200 }), ref: id },
      { requiredKeys: ["code", "message"] },
    ),
  ),
  env("pong", fc.constant({})),
  env(
    "hello",
    fc.record({
      deviceId,
      limits: fc.constant({
        maxMessageBytes: 65_536,
        messagesPerSecond: 10,
        messageBurst: 40,
        firstMessageTimeoutSecs: 10,
        idleTimeoutSecs: 75,
        pingIntervalSecs: 25,
      }),
    }),
  ),
);

function refused(text: unknown): ParseFailure {
  const result = parseClientMessage(text);
  if (result.ok) throw new Error(`accepted: ${String(text).slice(0, 120)}`);
  return result.code;
}

const DEVICE = "d_aaaaaaaaaaaaaaaaaaaaaaaaaa";
const SESSION = "AAAAAAAAAAAAAAAAAAAAAA";

describe("signaling messages: round trips", () => {
  it("every client message survives encode → parse unchanged", () => {
    fc.assert(
      fc.property(clientMessage, (m) => {
        const result = parseClientMessage(encodeMessage(m));
        expect(result).toEqual({ ok: true, message: m });
      }),
      { numRuns: 2000 },
    );
  });

  it("every server message survives encode → parse unchanged", () => {
    fc.assert(
      fc.property(serverMessage, (m) => {
        expect(parseServerMessage(encodeMessage(m))).toEqual({ ok: true, message: m });
      }),
      { numRuns: 2000 },
    );
  });

  it("the auto-response ping and pong are valid messages of their types", () => {
    expect(parseClientMessage(AUTO_PING_TEXT)).toEqual({ ok: true, message: { v: 1, type: "ping" } });
    expect(parseServerMessage(AUTO_PONG_TEXT)).toEqual({ ok: true, message: { v: 1, type: "pong" } });
  });

  it("the generated ids are the canonical forms the schemas accept", () => {
    fc.assert(fc.property(deviceId, (d) => isDeviceId(d)));
  });
});

describe("signaling messages: refusals", () => {
  it("gives each kind of bad frame its own code, with the id as ref when it is valid", () => {
    expect(refused("{")).toBe("not_json");
    expect(refused("[]")).toBe("invalid_message");
    expect(refused("null")).toBe("invalid_message");
    expect(refused('"ping"')).toBe("invalid_message");
    expect(refused('{"type":"ping"}')).toBe("unsupported_version");
    expect(refused('{"v":2,"type":"ping"}')).toBe("unsupported_version");
    expect(refused('{"v":"1","type":"ping"}')).toBe("unsupported_version");
    expect(refused('{"v":1,"type":"hello"}')).toBe("unknown_type");
    expect(refused('{"v":1,"type":"__proto__"}')).toBe("unknown_type");
    expect(refused('{"v":1,"type":"toString"}')).toBe("unknown_type");
    expect(refused('{"v":1}')).toBe("unknown_type");
    expect(refused('{"v":1,"type":"ping","extra":1}')).toBe("invalid_message");
    expect(refused('{"v":1,"type":"ping","id":""}')).toBe("invalid_message");
    expect(parseClientMessage('{"v":1,"type":"nope","id":"q1"}')).toEqual({
      ok: false,
      code: "unknown_type",
      ref: "q1",
    });
    expect(parseClientMessage('{"v":1,"type":"nope","id":{"x":1}}')).toEqual({
      ok: false,
      code: "unknown_type",
    });
  });

  it("refuses non-strings without throwing", () => {
    for (const value of [undefined, null, 1, {}, new Uint8Array(3), Symbol("x")]) {
      expect(refused(value)).toBe("invalid_message");
    }
  });

  it("bounds every list and field", () => {
    const request = (extra: Record<string, unknown>) =>
      JSON.stringify({ v: 1, type: "session.request", to: DEVICE, candidates: [], ...extra });
    expect(parseClientMessage(request({})).ok).toBe(true);
    const many = Array.from({ length: SIGNAL_LIMITS.maxCandidates + 1 }, (_, i) => `10.0.0.${i}:9000`);
    expect(refused(request({ candidates: many }))).toBe("invalid_message");
    expect(parseClientMessage(request({ candidates: many.slice(1) })).ok).toBe(true);
    expect(refused(request({ to: "d_AAAAAAAAAAAAAAAAAAAAAAAAAA" }))).toBe("invalid_message");
    // Not canonical: the last character carries non-zero padding bits.
    expect(refused(request({ to: "d_aaaaaaaaaaaaaaaaaaaaaaaaab" }))).toBe("invalid_message");
    expect(refused(request({ region: "EU WEST" }))).toBe("invalid_message");
    expect(refused(request({ wantRelay: "yes" }))).toBe("invalid_message");
    const devices = Array.from({ length: SIGNAL_LIMITS.maxPresenceDevices + 1 }, () => DEVICE);
    expect(refused(JSON.stringify({ v: 1, type: "presence.query", devices }))).toBe("invalid_message");
    expect(refused(JSON.stringify({ v: 1, type: "presence.query", devices: [] }))).toBe("invalid_message");
    expect(
      parseClientMessage(JSON.stringify({ v: 1, type: "presence.query", devices: devices.slice(1) })).ok,
    ).toBe(true);
    expect(
      refused(JSON.stringify({ v: 1, type: "session.cancel", sessionId: "AAAAAAAAAAAAAAAAAAAAAB" })),
    ).toBe("invalid_message");
    expect(refused(JSON.stringify({ v: 1, type: "candidates", sessionId: SESSION, candidates: [] }))).toBe(
      "invalid_message",
    );
    const report = (outcome: unknown) =>
      JSON.stringify({ v: 1, type: "session.report", sessionId: SESSION, outcome });
    expect(parseClientMessage(report({ result: "established", path: "direct", handshakeMs: 12 })).ok).toBe(
      true,
    );
    expect(refused(report({ result: "established", path: "carrier-pigeon", handshakeMs: 12 }))).toBe(
      "invalid_message",
    );
    expect(refused(report({ result: "established", path: "relay", handshakeMs: -1 }))).toBe(
      "invalid_message",
    );
    expect(refused(report({ result: "failed", reason: "because" }))).toBe("invalid_message");
    expect(refused(report({ result: "failed", reason: "key_mismatch", path: "direct" }))).toBe(
      "invalid_message",
    );
  });

  it("accepts literal addresses only as candidates", () => {
    for (const good of [
      "192.0.2.1:1",
      "255.255.255.255:65535",
      "[2001:db8::1]:443",
      "[::ffff:192.0.2.1]:9",
    ]) {
      expect(isCandidate(good)).toBe(true);
    }
    for (const bad of [
      "example.com:443",
      "192.0.2.1",
      "192.0.2.1:0",
      "192.0.2.1:65536",
      "192.0.2.1:0443",
      "256.0.0.1:1",
      "01.2.3.4:5",
      "[2001:db8::1]",
      "[zz::1]:5",
      "[1234]:5",
      "2001:db8::1:443",
      " 192.0.2.1:1",
      `[${"1:".repeat(30)}1]:1`,
    ]) {
      expect(isCandidate(bad)).toBe(false);
    }
  });

  it("refuses a frame over 64 KiB by its UTF-8 size, before parsing it", () => {
    const pad = (n: number) =>
      JSON.stringify({ v: 1, type: "ping", id: "x" }).replace('"x"', `"x"${" ".repeat(n)}`);
    const base = pad(0).length;
    expect(parseClientMessage(pad(SIGNAL_LIMITS.maxMessageBytes - base)).ok).toBe(true);
    expect(refused(pad(SIGNAL_LIMITS.maxMessageBytes - base + 1))).toBe("too_large");
    // 3-byte characters: under the limit in UTF-16 units, over it in bytes.
    const wide = `{"v":1,"type":"ping","id":"x","pad":"${"€".repeat(30_000)}"}`;
    expect(wide.length).toBeLessThan(SIGNAL_LIMITS.maxMessageBytes);
    expect(refused(wide)).toBe("too_large");
  });

  it("counts UTF-8 bytes exactly as an encoder does, lone surrogates included", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
        expect(utf8Length(s)).toBe(encoder.encode(s).length);
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), fc.nat(400), (s, limit) => {
        const exact = encoder.encode(s).length;
        expect(utf8Length(s, limit) > limit).toBe(exact > limit);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("signaling messages: arbitrary input", () => {
  it("100,000 arbitrary frames each give a message or a typed error, never an exception", () => {
    const valid = fc.sample(clientMessage, { numRuns: 200, seed: 7 }).map((m) => encodeMessage(m));
    // Mutations of valid frames reach deep into the schemas; raw strings and JSON values cover the rest.
    const mutated = fc
      .tuple(fc.constantFrom(...valid), fc.nat(), fc.nat(), fc.string({ maxLength: 8 }))
      .map(([text, at, len, insert]) => {
        const i = at % (text.length + 1);
        return text.slice(0, i) + insert + text.slice(i + (len % 4));
      });
    const envelopeLike = fc
      .record(
        {
          v: fc.oneof(fc.constant(1), fc.jsonValue()),
          type: fc.oneof(fc.constantFrom(...CLIENT_TYPES), fc.string({ maxLength: 16 })),
          id: fc.oneof(id, fc.jsonValue()),
          sessionId: fc.oneof(sessionId, fc.string({ maxLength: 24 })),
          to: fc.oneof(deviceId, fc.string({ maxLength: 30 })),
          candidates: fc.oneof(candidates, fc.array(fc.string({ maxLength: 20 }), { maxLength: 20 })),
          devices: fc.array(fc.oneof(deviceId, fc.jsonValue()), { maxLength: 70 }),
          outcome: fc.oneof(outcome, fc.jsonValue()),
          reason: fc.oneof(fc.constantFrom(...SESSION_REJECT_REASONS), fc.string({ maxLength: 10 })),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    const input = fc.oneof(
      { weight: 3, arbitrary: mutated },
      { weight: 3, arbitrary: envelopeLike },
      { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
      { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
      { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", maxLength: 200 }) },
    );
    const seen = new Map<string, number>();
    let runs = 0;
    fc.assert(
      fc.property(input, (text) => {
        runs++;
        const result = parseClientMessage(text);
        const key = result.ok ? `ok:${result.message.type}` : result.code;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        if (result.ok) {
          expect(CLIENT_TYPES).toContain(result.message.type);
          // What was accepted is exactly what the schema of its type accepts.
          expect(clientMessageSchemas[result.message.type].safeParse(JSON.parse(text)).success).toBe(true);
        } else {
          expect(FAILURES).toContain(result.code);
        }
      }),
      { numRuns: 100_000, seed: 0x5167 },
    );
    expect(runs).toBeGreaterThanOrEqual(100_000);
    // The generator reached every outcome, so the loop above tested something.
    for (const code of ["not_json", "unsupported_version", "unknown_type", "invalid_message"]) {
      expect(seen.get(code) ?? 0).toBeGreaterThan(100);
    }
    expect([...seen.keys()].filter((k) => k.startsWith("ok:")).length).toBeGreaterThanOrEqual(5);
  });

  it("server frames: arbitrary input never throws either", () => {
    fc.assert(
      fc.property(fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 100 })), (text) => {
        const result = parseServerMessage(text);
        if (!result.ok) expect(FAILURES).toContain(result.code);
      }),
      { numRuns: 10_000 },
    );
    expect(Object.keys(serverMessageSchemas)).toContain("relay.assigned");
  });
});
