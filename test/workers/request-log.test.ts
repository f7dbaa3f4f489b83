import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type EdgeBindings, loadConfig } from "../../edge/env.ts";
import { utf8 } from "../../protocol/bytes.ts";
import { hashedValue } from "../../protocol/log/redaction.ts";
import { call, freshAddress, unique } from "./helpers.ts";

/**
 * The edge's log lines inside workerd: one `request` line per request with the route pattern (never the raw path),
 * and `auth` lines for register and login; the email, the password and the client address never appear, the
 * address and the email only as keyed hashes under the configured WAVRY_LOG_HASH_KEY.
 */
let lines: string[] = [];

beforeEach(() => {
  lines = [];
  const take = (...args: unknown[]) => {
    lines.push(args.map(String).join(" "));
  };
  vi.spyOn(console, "log").mockImplementation(take);
  vi.spyOn(console, "error").mockImplementation(take);
});

afterEach(() => {
  vi.restoreAllMocks();
});

function parsed(): Record<string, unknown>[] {
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("edge log lines", () => {
  it("log a request line per request and auth events, with addresses and emails only as keyed hashes", async () => {
    const config = loadConfig(env as unknown as EdgeBindings);
    if (!config.ok) throw new Error(config.problems.join("; "));
    const key = utf8(config.config.logHashKey);
    const email = `${unique("log")}@example.com`;
    const password = `pw-${unique("secret")}-long-enough`;
    const address = freshAddress();
    expect((await call("/v1/auth/register", { body: { email, password }, address })).status).toBe(201);
    expect(
      (await call("/v1/auth/login", { body: { email, password: `${password}-wrong` }, address })).status,
    ).toBe(401);
    const secretPath = "wvadm_AAAAbbbbCCCCddddEEEEffffGGGGhhhh1234";
    expect(
      (
        await call(`/v1/devices/${secretPath}`, {
          method: "DELETE",
          token: "eyJhbGciOiJub25lIn0.e30.",
          address,
        })
      ).status,
    ).toBe(401);

    const all = lines.join("\n");
    for (const secret of [email, password, address, secretPath, "eyJhbGciOiJub25lIn0"])
      expect(all).not.toContain(secret);
    const records = parsed();
    for (const record of records) {
      expect(record).toEqual(
        expect.objectContaining({
          ts: expect.any(String),
          component: expect.any(String),
          event: expect.any(String),
        }),
      );
    }
    const requests = records.filter((r) => r.event === "request");
    expect(requests.map((r) => [r.method, r.route, r.status, r.outcome])).toEqual([
      ["POST", "/v1/auth/register", 201, "ok"],
      ["POST", "/v1/auth/login", 401, "refused"],
      ["DELETE", "/v1/devices/:id", 401, "refused"],
    ]);
    for (const r of requests) {
      expect(r.clientAddress).toBe(hashedValue(key, address));
      expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(typeof r.durationMs).toBe("number");
    }
    expect(records).toContainEqual(
      expect.objectContaining({
        component: "auth",
        event: "register",
        outcome: "ok",
        email: hashedValue(key, email),
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        component: "auth",
        event: "login",
        outcome: "failed",
        reason: "password",
        email: hashedValue(key, email),
        clientAddress: hashedValue(key, address),
      }),
    );
  });
});
