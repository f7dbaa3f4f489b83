import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../edge/app.ts";
import type { EdgeBindings } from "../../edge/env.ts";
import { call, freshAddress } from "./helpers.ts";

// A separate app instance with small budgets; the Durable Object buckets are the real ones.
function appWith(vars: Record<string, string>) {
  const app = createApp();
  const bindings = { ...env, WAVRY_ENVIRONMENT: "development", ...vars } as unknown as EdgeBindings;
  return async (path: string, headers: Record<string, string>): Promise<Response> =>
    await app.fetch(new Request(`https://edge.test${path}`, { headers }), bindings, createExecutionContext());
}

async function burst(n: number, send: (i: number) => Promise<Response>) {
  const responses = await Promise.all(Array.from({ length: n }, (_, i) => send(i)));
  return {
    ok: responses.filter((r) => r.status === 200).length,
    limited: responses.filter((r) => r.status === 429),
  };
}

describe("rate limits (Durable Object token buckets)", () => {
  it("N concurrent requests against a budget of K let exactly K through, the rest get 429 with Retry-After", async () => {
    const fetch = appWith({ WAVRY_GLOBAL_RATE_LIMIT: "7", WAVRY_GLOBAL_RATE_LIMIT_WINDOW_SECS: "600" });
    const address = freshAddress();
    const result = await burst(30, () => fetch("/healthz", { "CF-Connecting-IP": address }));
    expect(result.ok).toBe(7);
    expect(result.limited.length).toBe(23);
    for (const r of result.limited) {
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(await r.json()).toEqual({ error: { code: "rate_limited", message: "too many requests" } });
    }
    // Another address has its own budget.
    expect((await fetch("/healthz", { "CF-Connecting-IP": freshAddress() })).status).toBe(200);
  });

  it("a spoofed X-Forwarded-For does not escape the limit while proxy headers are not trusted", async () => {
    const fetch = appWith({ WAVRY_GLOBAL_RATE_LIMIT: "5", WAVRY_GLOBAL_RATE_LIMIT_WINDOW_SECS: "600" });
    const address = freshAddress();
    const result = await burst(15, (i) =>
      fetch("/healthz", { "CF-Connecting-IP": address, "X-Forwarded-For": `10.9.${i}.1` }),
    );
    expect(result.ok).toBe(5);
  });

  it("with proxy headers trusted, only the entry the proxy added counts, never the client-controlled leftmost", async () => {
    const fetch = appWith({
      WAVRY_GLOBAL_RATE_LIMIT: "4",
      WAVRY_GLOBAL_RATE_LIMIT_WINDOW_SECS: "600",
      WAVRY_TRUST_PROXY_HEADERS: "1",
    });
    const realClient = freshAddress();
    const spoofed = await burst(12, (i) =>
      fetch("/healthz", { "X-Forwarded-For": `10.7.${i}.1, ${realClient}` }),
    );
    expect(spoofed.ok).toBe(4);
    // Different real clients behind the proxy get their own budgets.
    expect((await fetch("/healthz", { "X-Forwarded-For": `10.7.0.1, ${freshAddress()}` })).status).toBe(200);
  });

  it("the default app enforces the global budget per address", async () => {
    const r = await call("/healthz", { address: freshAddress() });
    expect(r.status).toBe(200);
  });
});
