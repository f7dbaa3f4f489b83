import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../protocol/bytes.ts";
import { formatLogLine, isoTime, type LogRecord } from "../../protocol/log/log-line.ts";
import {
  classifyField,
  hashedValue,
  keyedHashHex,
  MAX_FIELDS,
  MAX_VALUE_CHARS,
  REDACTED,
  scrubText,
} from "../../protocol/log/redaction.ts";

/**
 * The shared log-line helper (protocol/log/): the field-name rule, the value scan, the keyed hash, the bounds, and
 * properties: random secrets, emails and addresses placed in random fields or inside free text never reach the line.
 */
const KEY = utf8("test-log-hash-key-0123456789abcdef");
const at = Date.UTC(2026, 0, 2, 3, 4, 5);

function line(
  fields: NonNullable<LogRecord["fields"]>,
  key: Uint8Array | null = KEY,
): Record<string, unknown> {
  return JSON.parse(
    formatLogLine({ timeMs: at, level: "info", component: "test", event: "e", outcome: "ok", fields }, key),
  ) as Record<string, unknown>;
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
/** Random bytes a real key or token would hold (not a degenerate run of one value, which no generator produces). */
const keyBytes = fc
  .uint8Array({ minLength: 24, maxLength: 64 })
  .filter((bytes) => new Set(bytes).size >= bytes.length / 3);
const secretText = fc.oneof(
  keyBytes.map(b64url),
  keyBytes.map((b) => toHex(b)),
  keyBytes.map((b) => Buffer.from(b).toString("base64")),
  keyBytes.map((b) => `wvadm_${b64url(b)}`),
  keyBytes.map((b) => `wvrel_${b64url(b)}`),
  keyBytes.map((b) => `st1.d_abcdefghijklmnopqrstuvwxyz.${b64url(b)}`),
  keyBytes.map((b) => `eyJhbGciOiJFZERTQSJ9.${b64url(b)}.${b64url(b.subarray(0, 16))}`),
  keyBytes.map(
    (b) => `-----BEGIN PRIVATE KEY-----\n${Buffer.from(b).toString("base64")}\n-----END PRIVATE KEY-----`,
  ),
);
const label = fc.stringMatching(/^[a-z]{1,12}$/);
const email = fc
  .tuple(fc.stringMatching(/^[a-z0-9._+-]{1,20}$/), label, fc.constantFrom("com", "org", "example", "co.uk"))
  .map(([local, domain, tld]) => `${local}@${domain}.${tld}`);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join("."));
const ipv6 = fc.ipV6().filter((text) => text.includes("::") || text.split(":").length === 8);
const filler = fc.stringMatching(/^[a-z ,;:()]{0,30}$/);
const plainName = fc.constantFrom("detail", "message", "why", "problem", "error", "note", "route");

/** Each sensitive value, in every form it must not appear in. */
function forms(value: string): string[] {
  return [value, value.toLowerCase(), Buffer.from(value).toString("base64url")].filter((v) => v.length >= 6);
}

describe("field names", () => {
  it("classifies by the words of the name", () => {
    expect(classifyField("accessToken")).toBe("secret");
    expect(classifyField("refresh_token")).toBe("secret");
    expect(classifyField("password")).toBe("secret");
    expect(classifyField("totpSecret")).toBe("secret");
    expect(classifyField("x25519PrivateKey")).toBe("secret");
    expect(classifyField("Authorization")).toBe("secret");
    expect(classifyField("lease")).toBe("secret");
    expect(classifyField("payload")).toBe("secret");
    expect(classifyField("code")).toBe("code");
    expect(classifyField("enrollmentCode")).toBe("code");
    expect(classifyField("email")).toBe("address");
    expect(classifyField("clientAddress")).toBe("address");
    expect(classifyField("relayAddr")).toBe("address");
    expect(classifyField("ip")).toBe("address");
    expect(classifyField("remote")).toBe("address");
    // Identifiers, counts and states of secret things are plain: their values still go through the scan.
    expect(classifyField("tokenId")).toBe("plain");
    expect(classifyField("leaseKid")).toBe("plain");
    expect(classifyField("keyframe")).toBe("plain");
    expect(classifyField("addressCount")).toBe("plain");
    expect(classifyField("requestId")).toBe("plain");
    expect(classifyField("status")).toBe("plain");
  });

  it("redacts secret fields, keeps error codes, hashes address fields, drops them without a key", () => {
    const out = line({
      password: "hunter2",
      token: "short",
      code: "ABCD-EFGH-IJKL-MNOP-QRST",
      errorCode: "unauthorized",
      socketCode: "EADDRINUSE",
      totpCode: 123456,
      email: "alice@example.com",
      clientAddress: "203.0.113.77",
      addresses: 3,
      hasToken: true,
    });
    expect(out).toMatchObject({
      password: REDACTED,
      token: REDACTED,
      code: REDACTED,
      errorCode: "unauthorized",
      socketCode: "EADDRINUSE",
      totpCode: REDACTED,
      email: hashedValue(KEY, "alice@example.com"),
      clientAddress: hashedValue(KEY, "203.0.113.77"),
      addresses: 3,
      hasToken: true,
    });
    const keyless = line(
      { email: "alice@example.com", clientAddress: "203.0.113.77", note: "from 203.0.113.77" },
      null,
    );
    expect(keyless).not.toHaveProperty("email");
    expect(keyless).not.toHaveProperty("clientAddress");
    expect(keyless.note).toBe("from [address]");
  });

  it("keeps the fixed keys and the context ids first, and lets no field overwrite them", () => {
    const text = formatLogLine(
      {
        timeMs: at,
        level: "warn",
        component: "relay",
        event: "lease_present",
        outcome: "refused",
        context: { sessionId: "abc" },
        fields: { level: "info", component: "x", sessionId: "other", why: "expired" },
      },
      KEY,
    );
    expect(Object.keys(JSON.parse(text))).toEqual([
      "ts",
      "level",
      "component",
      "event",
      "outcome",
      "sessionId",
      "why",
    ]);
    expect(JSON.parse(text)).toMatchObject({
      ts: "2026-01-02T03:04:05.000Z",
      level: "warn",
      sessionId: "abc",
    });
  });
});

describe("the keyed hash", () => {
  it("is HMAC-SHA-256 truncated to 16 bytes, as edge/security/keyed-hash.ts makes it", async () => {
    const key = await crypto.subtle.importKey("raw", KEY, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8("203.0.113.77")));
    expect(keyedHashHex(KEY, "203.0.113.77")).toBe(toHex(mac.subarray(0, 16)));
    expect(hashedValue(KEY, "x")).toMatch(/^h:[0-9a-f]{32}$/);
    expect(hashedValue(utf8("another key for the same value!!"), "x")).not.toBe(hashedValue(KEY, "x"));
  });
});

describe("the value scan", () => {
  it("redacts secrets and hashes addresses inside free text, and leaves ordinary text alone", () => {
    const jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    expect(scrubText(`Bearer ${jwt}`, KEY)).toBe(`Bearer ${REDACTED}`);
    expect(scrubText(`token ${jwt} refused`, KEY)).toBe(`token ${REDACTED} refused`);
    expect(scrubText("peer 10.1.2.3:7400 refused", KEY)).toBe(
      `peer ${hashedValue(KEY, "10.1.2.3")}:7400 refused`,
    );
    expect(scrubText("bound [::1]:9", KEY)).toBe(`bound [${hashedValue(KEY, "::1")}]:9`);
    expect(scrubText("at 12:34:56 the relay stopped", KEY)).toBe("at 12:34:56 the relay stopped");
    expect(scrubText("request 2f1d8c0e-3b0a-4c1e-9d7b-5a6f7e8d9c0b", KEY)).toBe(
      "request 2f1d8c0e-3b0a-4c1e-9d7b-5a6f7e8d9c0b",
    );
    expect(scrubText("device d_abcdefghijklmnopqrstuvwxyz", KEY)).toBe("device d_abcdefghijklmnopqrstuvwxyz");
    expect(scrubText("ERR_SOCKET_DGRAM_IS_CONNECTED_ALREADY_TWICE", KEY)).toBe(
      "ERR_SOCKET_DGRAM_IS_CONNECTED_ALREADY_TWICE",
    );
    expect(scrubText("code ABCD-EFGH-IJKL-MNOP-QRST", KEY)).toBe(`code ${REDACTED}`);
    expect(scrubText("/v1/admin/relays/enrollment-tokens", KEY)).toBe("/v1/admin/relays/enrollment-tokens");
    expect(scrubText("key q83vEjRWeJq83vEjRWeJq8/3vEjRWeJq83vEjRWeJ+=", KEY)).toBe(`key ${REDACTED}`);
  });

  it("bounds every value and the number of fields", () => {
    const long = line({ detail: "a ".repeat(5000) });
    expect(String(long.detail).length).toBeLessThanOrEqual(MAX_VALUE_CHARS);
    const many: Record<string, number> = {};
    for (let i = 0; i < 100; i++) many[`f${i}`] = i;
    expect(Object.keys(line(many)).length).toBe(5 + MAX_FIELDS);
    expect(line({ "bad name!": "x", n: Number.NaN })).toEqual(expect.objectContaining({ n: null }));
    expect(line({ "bad name!": "x" })).not.toHaveProperty("bad name!");
  });

  it("drops the partial word when a value is cut, so no fragment of a secret survives", () => {
    const secret = b64url(new Uint8Array(64).map((_, i) => (i * 37 + 11) & 255));
    const value = `${"x ".repeat(2030)}${secret}`;
    const out = String(line({ detail: value }).detail);
    for (let n = 12; n <= secret.length; n++) expect(out).not.toContain(secret.slice(0, n));
  });
});

describe("properties", () => {
  it("a secret in any field, named or not, never reaches the line", () => {
    fc.assert(
      fc.property(secretText, plainName, filler, filler, (secret, name, before, after) => {
        const text = formatLogLine(
          {
            timeMs: at,
            level: "info",
            component: "test",
            event: "e",
            outcome: "ok",
            fields: { [name]: `${before}${secret}${after}`, token: secret, keyMaterial: secret },
          },
          KEY,
        );
        for (const form of forms(secret)) expect(text).not.toContain(form);
        // And no 16-character piece of it either.
        const compact = secret.replace(/\s/g, "");
        for (let i = 0; i + 16 <= compact.length; i += 8)
          expect(text).not.toContain(compact.slice(i, i + 16));
      }),
      { numRuns: 500 },
    );
  });

  it("an email or an IP address in any field or inside free text appears only as its keyed hash", () => {
    fc.assert(
      fc.property(fc.oneof(email, ipv4, ipv6), plainName, filler, filler, (value, name, before, after) => {
        // The filler may hold colons: "g::" holds the address "::" as text but is no address, and stays as it is.
        fc.pre(!before.includes(value) && !after.includes(value));
        const fields = {
          [name]: `${before} ${value} ${after}`,
          email: value,
          clientAddress: value,
          remote: value,
        };
        for (const key of [KEY, null]) {
          const text = formatLogLine(
            { timeMs: at, level: "info", component: "test", event: "e", outcome: "ok", fields },
            key,
          );
          expect(text).not.toContain(value);
          if (key !== null) expect(text).toContain(hashedValue(key, value));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("any scalar fields give one JSON object line with the fixed keys, bounded", () => {
    const value = fc.oneof(fc.string({ maxLength: 6000 }), fc.double(), fc.boolean(), fc.constant(null));
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 80 }), value, { maxKeys: 60 }), (fields) => {
        const text = formatLogLine(
          { timeMs: at, level: "error", component: "test", event: "e", outcome: "failed", fields },
          KEY,
        );
        expect(text).not.toContain("\n");
        const parsed = JSON.parse(text) as Record<string, unknown>;
        expect(parsed).toMatchObject({ level: "error", component: "test", event: "e", outcome: "failed" });
        expect(Object.keys(parsed).length).toBeLessThanOrEqual(5 + MAX_FIELDS);
        for (const v of Object.values(parsed))
          if (typeof v === "string") expect(v.length).toBeLessThanOrEqual(MAX_VALUE_CHARS);
      }),
      { numRuns: 300 },
    );
  });
});

describe("isoTime", () => {
  it("matches Date's ISO form for any millisecond of years 1970..9999, and clamps outside them", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253_402_300_799_999 }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
    for (const ms of [0, 951_782_400_000, 1_709_164_800_000, 4_107_456_000_000, 253_402_300_799_999]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
    expect(isoTime(-5)).toBe("1970-01-01T00:00:00.000Z");
    expect(isoTime(Number.NaN)).toBe("1970-01-01T00:00:00.000Z");
    expect(isoTime(1e20)).toBe("9999-12-31T23:59:59.999Z");
  });
});
