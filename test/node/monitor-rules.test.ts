import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryEntryStore } from "../../durable/monitor/entry-store.ts";
import { DEFAULT_THRESHOLDS, evaluate, type MonitorEvent } from "../../durable/monitor/rules.ts";
import { retryDelayMs, signatureHeader } from "../../durable/monitor/webhook.ts";
import {
  addToWindow,
  countInWindow,
  WINDOW_BUCKETS,
  type WindowEntry,
} from "../../durable/monitor/windows.ts";

/** The monitor's pure parts (issue 6): window counting, the rules' thresholds and state bounds, webhook signing. */

const th = DEFAULT_THRESHOLDS;
const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

describe("sliding windows", () => {
  it("never counts fewer than the events of the last window, nor more than one bucket's worth beyond it", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 12_000, max: 3_600_000 }),
        fc.array(fc.integer({ min: 0, max: 7_200_000 }), { minLength: 1, maxLength: 200 }),
        (windowMs, offsets) => {
          const times = offsets.map((o) => T0 + o).sort((a, b) => a - b);
          let entry: WindowEntry | undefined;
          let count = 0;
          for (const at of times) ({ entry, count } = addToWindow(entry, at, 1, windowMs));
          const last = times[times.length - 1] ?? T0;
          const exact = times.filter((t) => t > last - windowMs).length;
          const width = Math.ceil(windowMs / WINDOW_BUCKETS);
          const loose = times.filter((t) => t > last - windowMs - 2 * width).length;
          expect(count).toBeGreaterThanOrEqual(exact);
          expect(count).toBeLessThanOrEqual(loose);
          expect(entry?.b.length ?? 0).toBeLessThanOrEqual(WINDOW_BUCKETS + 1);
        },
      ),
    );
  });

  it("empties once the window has passed", () => {
    const { entry } = addToWindow(undefined, T0, 5, 60_000);
    expect(countInWindow(entry, T0, 60_000)).toBe(5);
    expect(countInWindow(entry, T0 + 10 * 60_000, 60_000)).toBe(0);
  });
});

describe("rules", () => {
  const failure = (at: number, account: string | null, range: string | null): MonitorEvent => ({
    kind: "auth_failure",
    at,
    source: "login",
    account,
    range,
  });

  it("fire at the threshold, not one below it, and not for events that left the window", () => {
    const store = new MemoryEntryStore();
    for (let i = 0; i < th.authAccount.count - 1; i++)
      expect(evaluate(store, failure(T0 + i, "user:a", null), th)).toEqual([]);
    // Long after: the old failures have left the window.
    expect(evaluate(store, failure(T0 + th.authAccount.windowMs * 3, "user:a", null), th)).toEqual([]);
    const fresh = new MemoryEntryStore();
    for (let i = 0; i < th.authAccount.count - 1; i++) evaluate(fresh, failure(T0 + i, "user:b", null), th);
    const findings = evaluate(fresh, failure(T0 + 100, "user:b", null), th);
    expect(findings.map((f) => [f.rule, f.subject, f.count])).toEqual([
      ["auth_failures_account", "user:b", th.authAccount.count],
    ]);
  });

  it("keep at most subjectsPerRule keys per rule, evicting the oldest", () => {
    const store = new MemoryEntryStore();
    const small = { ...th, subjectsPerRule: 50 };
    for (let i = 0; i < 500; i++) evaluate(store, failure(T0 + i, `user:${i}`, `r${i}`), small);
    expect(store.size("auth_failures_account")).toBe(50);
    expect(store.size("auth_failures_range")).toBe(50);
    expect(store.get("auth_failures_account|user:499")).toBeDefined();
    expect(store.get("auth_failures_account|user:0")).toBeUndefined();
  });

  it("relay usage: a baseline first, then far above or far below it", () => {
    const beat = (i: number, bytes: number, sessions: number): MonitorEvent => ({
      kind: "relay_heartbeat",
      at: T0 + i * 5000,
      relayId: "r1",
      sessions,
      bytesForwarded: bytes,
      leaseRejections: 0,
      startedAt: 1,
    });
    const store = new MemoryEntryStore();
    let bytes = 0;
    // No baseline yet: even a wild first sample is quiet.
    for (let i = 0; i <= th.relayUsage.minSamples; i++) {
      bytes += i === 1 ? 10_000_000 : 200_000;
      expect(evaluate(store, beat(i, bytes, 20), th)).toEqual([]);
    }
    const rulesOf = (events: MonitorEvent) => evaluate(store, events, th).map((f) => f.rule);
    // Sessions collapse to zero: far below the baseline of 20.
    expect(rulesOf(beat(20, bytes + 200_000, 0))).toEqual(["relay_usage"]);
  });

  it("a restarted relay's totals start again (no negative lease deltas, no false rate)", () => {
    const store = new MemoryEntryStore();
    const beat = (at: number, leases: number, startedAt: number): MonitorEvent => ({
      kind: "relay_heartbeat",
      at,
      relayId: "r2",
      sessions: 0,
      bytesForwarded: 0,
      leaseRejections: leases,
      startedAt,
    });
    expect(evaluate(store, beat(T0, 60, 1), th)).toEqual([]);
    expect(evaluate(store, beat(T0 + 5000, 60, 1), th)).toEqual([]);
    const findings = evaluate(store, beat(T0 + 10_000, 40, 2), th);
    expect(findings.map((f) => [f.rule, f.count])).toEqual([["lease_rejections", 100]]);
  });

  it("admin hours: quiet without enough history, loud far from the usual hours", () => {
    const store = new MemoryEntryStore();
    const use = (at: number): MonitorEvent => ({
      kind: "admin_request",
      at,
      tokenId: "adm_1",
      range: null,
      method: "POST",
      status: 200,
    });
    const night = T0 + 12 * 3_600_000;
    expect(evaluate(store, use(night), th)).toEqual([]);
    for (let d = 1; d <= th.adminHours.minHistory; d++) evaluate(store, use(T0 + d * 86_400_000), th);
    expect(evaluate(store, use(T0 + 40 * 86_400_000 + 3_600_000), th)).toEqual([]);
    const evening = T0 + 6 * 3_600_000 + 50 * 86_400_000;
    expect(evaluate(store, use(evening), th).map((f) => f.rule)).toEqual(["admin_odd_hour"]);
  });
});

describe("webhook", () => {
  it("signs t.body with HMAC-SHA-256, as a Node receiver recomputes it", async () => {
    const secret = "receiver-shared-secret-0123456789abcdef";
    const body = JSON.stringify({ type: "wavry.alert", alert: { id: "alr_x" } });
    const header = await signatureHeader(secret, 1_767_000_000, body);
    const expected = createHmac("sha256", secret).update(`1767000000.${body}`).digest("hex");
    expect(header).toBe(`t=1767000000,v1=${expected}`);
  });

  it("backs off exponentially up to an hour", () => {
    expect([1, 2, 3, 4].map(retryDelayMs)).toEqual([30_000, 60_000, 120_000, 240_000]);
    expect(retryDelayMs(50)).toBe(3_600_000);
  });
});
