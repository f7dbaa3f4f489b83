import { exports } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { freshAddress } from "./helpers.ts";

// Hundreds of malformed bodies against every JSON route: each must get a 4xx, never a 5xx, and never echo a
// stack or SQL text.
const ROUTES = [
  "/v1/auth/register",
  "/v1/auth/login",
  "/v1/auth/refresh",
  "/v1/devices/challenge",
  "/v1/devices/token",
  "/v1/devices/enroll",
  "/v1/admin/bootstrap",
];

const nasty = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom(
    "",
    "{",
    "null",
    "[]",
    '{"email": 5}',
    '{"email": "a@b.c", "password": {"$gt": ""}}',
    `{"email": "x' OR 1=1 --@example.com", "password": "'; DROP TABLE users; --aaaa"}`,
    `{"email": "${"a".repeat(100_000)}@x.y", "password": "p"}`,
    `${"[".repeat(20_000)}${"]".repeat(20_000)}`,
    `{"a":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}`,
    '{"deviceId": "\\u0000\\ud800"}',
    '{"challengeId": 1e999, "signature": true}',
  ),
  fc.json().map((j) => j),
  fc.dictionary(fc.string({ maxLength: 10 }), fc.anything({ maxDepth: 3 })).map((d) => JSON.stringify(d)),
);

// A pool of client addresses, used round robin: enough that no per-address budget is spent (each address sends
// fewer requests than the smallest budget), few enough that the test does not create a limiter object per request.
const ADDRESSES = Array.from({ length: 48 }, () => freshAddress());
let sent = 0;

async function send(path: string, body: string | Uint8Array, contentType = "application/json") {
  const response = await exports.default.fetch(`https://edge.test${path}`, {
    method: "POST",
    headers: {
      "Content-Type": contentType,
      "CF-Connecting-IP": ADDRESSES[sent++ % ADDRESSES.length] as string,
    },
    body,
  });
  return { status: response.status, text: await response.text() };
}

describe("malformed bodies", () => {
  it("hundreds of malformed bodies on every JSON route give a 4xx and never a 5xx", async () => {
    const samples = fc.sample(nasty, { numRuns: 60, seed: 42 });
    let count = 0;
    for (const route of ROUTES) {
      for (const body of samples) {
        const r = await send(route, body);
        expect(r.status, `${route} <- ${body.slice(0, 80)}`).toBeGreaterThanOrEqual(400);
        expect(r.status, `${route} <- ${body.slice(0, 80)}`).toBeLessThan(500);
        expect(r.text).not.toMatch(/at .*\.ts:\d+|SQLITE|D1_ERROR|stack/i);
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(400);
  }, 120_000);

  it("invalid UTF-8, a wrong content type and an oversized body are refused with 400, 415 and 413", async () => {
    expect((await send("/v1/auth/login", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]))).status).toBe(
      400,
    );
    expect((await send("/v1/auth/login", '{"email":"a@b.c"}', "text/plain")).status).toBe(415);
    expect((await send("/v1/auth/login", `{"email":"${"a".repeat(40_000)}"}`)).status).toBe(413);
  });
});
