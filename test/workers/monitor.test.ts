import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Alert } from "../../durable/monitor/alert-store.ts";
import { DEFAULT_THRESHOLDS, type MonitorEvent } from "../../durable/monitor/rules.ts";
import { retryDelayMs } from "../../durable/monitor/webhook.ts";
import type { EdgeBindings } from "../../edge/env.ts";
import { base64urlEncode } from "../../edge/security/tokens-util.ts";
import { addressRange, MONITOR_NAME } from "../../edge/services/monitor.ts";
import { RELAY_REGISTRY_NAME } from "../../edge/services/relay-registry.ts";
import { testConfig } from "./fixtures.ts";
import { BOOTSTRAP, call, errorCode, freshAddress, unique } from "./helpers.ts";
import { newRelay, type Relay, signed } from "./relay-kit.ts";

/**
 * The monitor (issue 6) end to end in workerd: every rule driven just under its default threshold (no alert), then
 * over it by a real request through its hook (alert stored, listed by the admin API); de-duplication, ack (audited),
 * bounded storage, and signed webhook delivery with retries from the alarm. History below the threshold is fed to
 * the Monitor object directly, so the tests run at the shipped defaults without thousands of requests.
 */

const _bindings = env as unknown as EdgeBindings;
const th = DEFAULT_THRESHOLDS;
const monitorObject = () => env.MONITOR.get(env.MONITOR.idFromName(MONITOR_NAME));
const registry = () => env.RELAY_REGISTRY.get(env.RELAY_REGISTRY.idFromName(RELAY_REGISTRY_NAME));
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const WEBHOOK_URL = "http://127.0.0.1:9/wavry-alerts";
const WEBHOOK_SECRET = "test-alert-webhook-secret-0123456789-abcdef";

const config = testConfig;

const rangeOf = async (address: string): Promise<string> => {
  const range = await addressRange(config().logHashKey, address);
  if (range === null) throw new Error("not an address");
  return range;
};

const feed = async (events: MonitorEvent[]) => monitorObject().report(events);
const repeat = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));

async function alertsFor(rule: string, subject: string): Promise<Alert[]> {
  const all = (await monitorObject().list("all", 1000)) as Alert[];
  return all.filter((a) => a.rule === rule && a.subject === subject);
}

const figures: [string, number][] = [];

/** Polls until the alert lands; records the time from `t0` (just before the triggering request) to its storage. */
async function alertAfter(rule: string, subject: string, t0: number): Promise<Alert> {
  for (let i = 0; i < 300; i++) {
    const found = (await alertsFor(rule, subject))[0];
    if (found !== undefined) {
      figures.push([rule, found.createdAt - t0]);
      console.log(`monitor: ${rule} event→alert ${found.createdAt - t0} ms`);
      return found;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no ${rule} alert for ${subject}`);
}

/** The alert as the admin API lists it. */
async function listed(id: string, status = "all"): Promise<Alert | undefined> {
  const r = await call<{ alerts: Alert[] }>(`/v1/admin/alerts?status=${status}&limit=500`, {
    token: root,
    address: freshAddress(),
  });
  expect(r.status).toBe(200);
  return r.json.alerts.find((a) => a.id === id);
}

// ---- Webhook receiver: outbound fetch to the webhook URL is answered here; everything else passes through. ----

interface Received {
  readonly body: string;
  readonly headers: Headers;
}
const received: Received[] = [];
let answer: () => Promise<Response> = async () => new Response("ok");
const realFetch = globalThis.fetch;

let root: string;
let rootId: string;

beforeAll(async () => {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    if (!request.url.startsWith(WEBHOOK_URL)) return realFetch(input, init);
    received.push({ body: await request.text(), headers: request.headers });
    return answer();
  });
  const r = await call<{ token: string; id: string }>("/v1/admin/bootstrap", {
    body: { name: "monitor-tests" },
    headers: { Authorization: `Bearer ${BOOTSTRAP}` },
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  root = r.json.token;
  rootId = r.json.id;
});

afterAll(() => {
  vi.restoreAllMocks();
  const rows = figures.map(([rule, ms]) => `  ${rule.padEnd(24)} ${ms} ms`).join("\n");
  console.log(`monitor: event→alert times (request sent → alert stored)\n${rows}`);
});

async function mint(scopes: string[]): Promise<{ token: string; id: string }> {
  const r = await call<{ token: string; id: string }>("/v1/admin/tokens", {
    token: root,
    body: { name: unique("mon"), scopes },
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  return r.json;
}

describe("auth failure spikes", () => {
  it("overall: one under the threshold stays quiet; the login failure that reaches it raises an alert", async () => {
    const now = Date.now();
    await feed(
      repeat(th.authTotal.count - 1, () => ({
        kind: "auth_failure",
        at: now,
        source: "login",
        account: null,
        range: null,
      })),
    );
    expect(await alertsFor("auth_failures_total", "all")).toHaveLength(0);
    const t0 = Date.now();
    const r = await call("/v1/auth/login", {
      body: { email: `${unique("nobody")}@example.com`, password: "wrong-password-123" },
      address: freshAddress(),
    });
    expect(r.status).toBe(401);
    const alert = await alertAfter("auth_failures_total", "all", t0);
    expect(alert).toMatchObject({
      severity: "critical",
      count: th.authTotal.count,
      threshold: th.authTotal.count,
    });
    expect((await listed(alert.id))?.rule).toBe("auth_failures_total");
  });

  it("per account: by user id (never the email); de-duplicated while open", async () => {
    const email = `${unique("victim")}@example.com`;
    const reg = await call<{ userId: string }>("/v1/auth/register", {
      body: { email, password: "correct horse battery" },
      address: freshAddress(),
    });
    expect(reg.status).toBe(201);
    const subject = `user:${reg.json.userId}`;
    const now = Date.now();
    await feed(
      repeat(th.authAccount.count - 1, () => ({
        kind: "auth_failure",
        at: now,
        source: "login",
        account: subject,
        range: null,
      })),
    );
    expect(await alertsFor("auth_failures_account", subject)).toHaveLength(0);
    const t0 = Date.now();
    const wrong = () =>
      call("/v1/auth/login", { body: { email, password: "wrong-password-123" }, address: freshAddress() });
    expect((await wrong()).status).toBe(401);
    const alert = await alertAfter("auth_failures_account", subject, t0);
    expect(alert.summary).not.toContain(email);
    // One more failure folds into the open alert instead of raising a second one.
    expect((await wrong()).status).toBe(401);
    for (let i = 0; i < 100 && (await alertsFor("auth_failures_account", subject))[0]?.occurrences !== 2; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const after = await alertsFor("auth_failures_account", subject);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ id: alert.id, occurrences: 2, count: th.authAccount.count + 1 });
  });

  it("per address range: device-token failures from one /24, keyed by a hash of the range", async () => {
    const address = "100.64.5.7";
    const range = await rangeOf(address);
    expect(await rangeOf("100.64.5.200")).toBe(range);
    expect(await rangeOf("100.64.6.7")).not.toBe(range);
    expect(range).not.toContain("100.64");
    const now = Date.now();
    await feed(
      repeat(th.authRange.count - 1, () => ({
        kind: "auth_failure",
        at: now,
        source: "device_challenge",
        account: null,
        range,
      })),
    );
    expect(await alertsFor("auth_failures_range", `range:${range}`)).toHaveLength(0);
    const t0 = Date.now();
    const r = await call("/v1/devices/token", {
      body: { challengeId: "A".repeat(22), signature: "B".repeat(86) },
      address,
    });
    expect(r.status).toBe(401);
    await alertAfter("auth_failures_range", `range:${range}`, t0);
  });
});

describe("handshake failure surges", () => {
  it("fires on enough failed session reports that are also a large share of all reports", async () => {
    const now = Date.now();
    const report = (failed: boolean): MonitorEvent => ({ kind: "session_report", at: now, failed });
    // Plenty of failures, but most sessions succeed: not a surge.
    await feed([
      ...repeat(th.handshakeFailures.count * 3, () => report(false)),
      ...repeat(25, () => report(true)),
    ]);
    expect(await alertsFor("handshake_failures", "all")).toHaveLength(0);
    const t0 = Date.now();
    await feed(repeat(th.handshakeFailures.count * 2, () => report(true)));
    const alert = await alertAfter("handshake_failures", "all", t0);
    expect(alert.severity).toBe("critical");
  });
});

// ---- Relays: enrolled with real signed requests, as relay-registry.test.ts does. ----

const STARTED = 1_700_000_000_000;
const heartbeatBody = (sessions: number, bytes: number, invalidLease = 0) => ({
  load: 0.1,
  sessions,
  bytesForwarded: bytes,
  packetsForwarded: 10,
  drops: invalidLease === 0 ? {} : { invalid_lease: invalidLease },
  startedAt: STARTED,
});
const register = (relay: Relay) =>
  signed(relay, "/v1/relays/register", {
    region: "eu-west",
    publicAddr: "192.0.2.10:4500",
    version: "0.1.0",
    maxSessions: 100,
  });

async function liveRelay(): Promise<Relay> {
  const token = await call<{ token: string }>("/v1/admin/relays/enrollment-tokens", {
    token: root,
    body: {},
    address: freshAddress(),
  });
  expect(token.status).toBe(201);
  const relay = newRelay();
  const enrolled = await signed(relay, "/v1/relays/enroll", {
    enrollmentToken: token.json.token,
    publicKey: relay.publicKey,
  });
  expect(enrolled.status, JSON.stringify(enrolled.json)).toBe(201);
  expect((await register(relay)).status).toBe(200);
  return relay;
}

describe("relay anomalies", () => {
  it("a relay going silent alerts; three at once raise the many-relays alert, two do not", async () => {
    const relays = [await liveRelay(), await liveRelay(), await liveRelay()];
    const silence = (ids: string[]) =>
      env.DB.prepare(`UPDATE relays SET last_heartbeat_at = ? WHERE id IN (${ids.map(() => "?").join(",")})`)
        .bind(Date.now() - 60_000, ...ids)
        .run();
    const [a, b, c] = relays.map((r) => r.id) as [string, string, string];
    await silence([a, b]);
    const t0 = Date.now();
    await registry().sweep(Date.now());
    await alertAfter("relay_silent", `relay:${a}`, t0);
    expect(await alertsFor("relay_silent", `relay:${b}`)).toHaveLength(1);
    expect(await alertsFor("relays_at_once", "all")).toHaveLength(0);
    await silence([c]);
    const t1 = Date.now();
    await registry().sweep(Date.now());
    const many = await alertAfter("relays_at_once", "all", t1);
    expect(many).toMatchObject({ severity: "critical", count: 3 });
  });

  it("traffic far above its baseline alerts; five times above does not", async () => {
    const relay = await liveRelay();
    const now = Date.now();
    // 13 heartbeats 5 s apart at 20 kB/s and 10 sessions: the baseline.
    const beat = (i: number, bytes: number): MonitorEvent => ({
      kind: "relay_heartbeat",
      at: now - (14 - i) * 5000,
      relayId: relay.id,
      sessions: 10,
      bytesForwarded: bytes,
      leaseRejections: 0,
      startedAt: STARTED,
    });
    await feed(repeat(13, (i) => beat(i, i * 100_000)));
    // Five times the baseline rate: within the factor of ten.
    await feed([beat(13, 12 * 100_000 + 500_000)]);
    expect(await alertsFor("relay_usage", `relay:${relay.id}`)).toHaveLength(0);
    const t0 = Date.now();
    const r = await signed(relay, "/v1/relays/heartbeat", heartbeatBody(10, 500_000_000));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const alert = await alertAfter("relay_usage", `relay:${relay.id}`, t0);
    expect(alert.summary).toContain("above");
  });

  it("lease rejections reported in heartbeats: counted as deltas of the relay's totals", async () => {
    const relay = await liveRelay();
    await feed([
      {
        kind: "relay_heartbeat",
        at: Date.now() - 1000,
        relayId: relay.id,
        sessions: 0,
        bytesForwarded: 0,
        leaseRejections: th.leaseRejections.count - 1,
        startedAt: STARTED,
      },
    ]);
    expect(await alertsFor("lease_rejections", `relay:${relay.id}`)).toHaveLength(0);
    const t0 = Date.now();
    const r = await signed(relay, "/v1/relays/heartbeat", heartbeatBody(0, 1000, th.leaseRejections.count));
    expect(r.status).toBe(200);
    const alert = await alertAfter("lease_rejections", `relay:${relay.id}`, t0);
    expect(alert.count).toBe(th.leaseRejections.count);
  });

  it("a relay re-registering repeatedly", async () => {
    const relay = await liveRelay();
    const subject = `relay:${relay.id}`;
    await feed(
      repeat(th.relayReregistrations.count - 2, () => ({
        kind: "relay_register",
        at: Date.now(),
        relayId: relay.id,
      })),
    );
    expect(await alertsFor("relay_reregistrations", subject)).toHaveLength(0);
    const t0 = Date.now();
    expect((await register(relay)).status).toBe(200);
    await alertAfter("relay_reregistrations", subject, t0);
  });

  it("replayed nonces", async () => {
    const relay = await liveRelay();
    const subject = `relay:${relay.id}`;
    await feed(
      repeat(th.relayReplays.count - 1, () => ({ kind: "relay_replay", at: Date.now(), relayId: relay.id })),
    );
    const nonce = base64urlEncode(random(16));
    expect((await signed(relay, "/v1/relays/heartbeat", heartbeatBody(0, 0), { nonce })).status).toBe(200);
    expect(await alertsFor("relay_replays", subject)).toHaveLength(0);
    const t0 = Date.now();
    const replay = await signed(relay, "/v1/relays/heartbeat", heartbeatBody(0, 0), { nonce });
    expect(replay.status).toBe(401);
    await alertAfter("relay_replays", subject, t0);
  });

  it("bad signatures and failed enrollments", async () => {
    await feed(
      repeat(th.relayAuthFailures.count - 2, () => ({
        kind: "relay_auth_failure",
        at: Date.now(),
        what: "bad_signature",
        range: null,
      })),
    );
    const stranger = newRelay();
    const enroll = await signed(stranger, "/v1/relays/enroll", {
      enrollmentToken: "not-a-real-enrollment-token",
      publicKey: stranger.publicKey,
    });
    expect(errorCode(enroll)).toBe("invalid_token");
    for (
      let i = 0;
      i < 100 && (await monitorCount("relay_auth_failures|all")) < th.relayAuthFailures.count - 1;
      i++
    )
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await alertsFor("relay_auth_failures", "all")).toHaveLength(0);
    const relay = await liveRelay();
    const t0 = Date.now();
    const forged = await signed(relay, "/v1/relays/heartbeat", heartbeatBody(0, 0), { seed: random(32) });
    expect(forged.status).toBe(401);
    await alertAfter("relay_auth_failures", "all", t0);
  });
});

/** The current count of a window counter (reads the object's storage directly). */
async function monitorCount(key: string): Promise<number> {
  return runInDurableObject(monitorObject(), (_instance, state) => {
    const row = state.storage.sql
      .exec<{ value: string }>("SELECT value FROM entries WHERE key = ?", key)
      .toArray()[0];
    if (row === undefined) return 0;
    const entry = JSON.parse(row.value) as { b: [number, number][] };
    return entry.b.reduce((sum, [, n]) => sum + n, 0);
  });
}

describe("unusual admin access", () => {
  it("refused admin requests from one address range", async () => {
    const address = "100.65.9.9";
    const range = await rangeOf(address);
    await feed(
      repeat(th.adminRefusals.count - 1, () => ({
        kind: "admin_request",
        at: Date.now(),
        tokenId: null,
        range,
        method: "GET",
        status: 401,
      })),
    );
    expect(await alertsFor("admin_refusals", `range:${range}`)).toHaveLength(0);
    const t0 = Date.now();
    const r = await call("/v1/admin/users", { token: "wvadm_not-a-real-token", address });
    expect(r.status).toBe(401);
    await alertAfter("admin_refusals", `range:${range}`, t0);
  });

  it("a burst of reads by one token", async () => {
    const token = await mint(["read"]);
    const subject = `admin:${token.id}`;
    await feed(
      repeat(th.adminReads.count - 2, () => ({
        kind: "admin_request",
        at: Date.now(),
        tokenId: token.id,
        range: null,
        method: "GET",
        status: 200,
      })),
    );
    // Writes and refusals are not reads.
    await feed([
      { kind: "admin_request", at: Date.now(), tokenId: token.id, range: null, method: "POST", status: 200 },
      { kind: "admin_request", at: Date.now(), tokenId: token.id, range: null, method: "GET", status: 403 },
    ]);
    expect(await alertsFor("admin_read_burst", subject)).toHaveLength(0);
    const t0 = Date.now();
    expect((await call("/v1/admin/users", { token: token.token, address: freshAddress() })).status).toBe(200);
    expect(await alertsFor("admin_read_burst", subject)).toHaveLength(0);
    expect((await call("/v1/admin/users", { token: token.token, address: freshAddress() })).status).toBe(200);
    await alertAfter("admin_read_burst", subject, t0);
  });

  it("a token used from a new address range; the same range again is quiet", async () => {
    const token = await mint(["read"]);
    const subject = `admin:${token.id}`;
    const home = await rangeOf("100.66.1.1");
    const use = (range: string): MonitorEvent => ({
      kind: "admin_request",
      at: Date.now(),
      tokenId: token.id,
      range,
      method: "GET",
      status: 200,
    });
    await feed([use(home), use(home), use(await rangeOf("100.66.1.250"))]);
    expect(await alertsFor("admin_new_address", subject)).toHaveLength(0);
    const t0 = Date.now();
    expect((await call("/v1/admin/users", { token: token.token, address: "100.67.1.1" })).status).toBe(200);
    await alertAfter("admin_new_address", subject, t0);
  });

  it("a token used far outside its usual hours", async () => {
    const token = await mint(["read"]);
    const subject = `admin:${token.id}`;
    const now = Date.now();
    // Its history: every day, twelve hours away from now.
    const use = (at: number): MonitorEvent => ({
      kind: "admin_request",
      at,
      tokenId: token.id,
      range: null,
      method: "GET",
      status: 200,
    });
    await feed(repeat(th.adminHours.minHistory, (i) => use(now - 12 * 3_600_000 - (i + 1) * 86_400_000)));
    // A use at its usual hour is quiet.
    await feed([use(now - 12 * 3_600_000)]);
    expect(await alertsFor("admin_odd_hour", subject)).toHaveLength(0);
    const t0 = Date.now();
    expect((await call("/v1/admin/users", { token: token.token, address: freshAddress() })).status).toBe(200);
    await alertAfter("admin_odd_hour", subject, t0);
  });
});

describe("alerts through the admin API", () => {
  it("lists by status, reads one, acknowledges it (audited), and refuses unknown ids", async () => {
    const [alert] = (await monitorObject().list("open", 1)) as Alert[];
    if (alert === undefined) throw new Error("no open alert to acknowledge");
    const one = await call<{ alert: Alert }>(`/v1/admin/alerts/${alert.id}`, {
      token: root,
      address: freshAddress(),
    });
    expect(one.status).toBe(200);
    expect(one.json.alert.id).toBe(alert.id);
    const ack = await call<{ alert: Alert }>(`/v1/admin/alerts/${alert.id}/ack`, {
      token: root,
      body: { note: "looked into it" },
      address: freshAddress(),
    });
    expect(ack.status).toBe(200);
    expect(ack.json.alert).toMatchObject({ status: "acked", ackedBy: rootId, ackNote: "looked into it" });
    expect(await listed(alert.id, "open")).toBeUndefined();
    expect((await listed(alert.id, "acked"))?.status).toBe("acked");
    const audit = await env.DB.prepare(
      "SELECT actor, outcome, detail FROM audit_log WHERE path = ? ORDER BY seq DESC LIMIT 1",
    )
      .bind(`/v1/admin/alerts/${alert.id}/ack`)
      .first<{ actor: string; outcome: string; detail: string }>();
    expect(audit).toMatchObject({ actor: rootId, outcome: "allowed" });
    expect(audit?.detail).toContain(alert.id);
    const missing = await call("/v1/admin/alerts/alr_missing/ack", {
      token: root,
      body: {},
      address: freshAddress(),
    });
    expect(missing.status).toBe(404);
    const bad = await call("/v1/admin/alerts?status=bogus", { token: root, address: freshAddress() });
    expect(bad.status).toBe(400);
  });

  it("a finding after the ack opens a new alert", async () => {
    const relayId = `r_${unique("ack")}`;
    await feed([{ kind: "relay_silent", at: Date.now(), relayId }]);
    const [first] = await alertsFor("relay_silent", `relay:${relayId}`);
    if (first === undefined) throw new Error("no alert");
    await monitorObject().ack(first.id, rootId, null);
    await feed([{ kind: "relay_silent", at: Date.now(), relayId }]);
    const both = await alertsFor("relay_silent", `relay:${relayId}`);
    expect(both.map((a) => a.status).sort()).toEqual(["acked", "open"]);
  });
});

describe("webhook delivery", () => {
  async function freshAlert(): Promise<Alert> {
    const relayId = `r_${unique("hook")}`;
    const { created } = await feed([{ kind: "relay_silent", at: Date.now(), relayId }]);
    const id = created[0];
    if (id === undefined) throw new Error("no alert created");
    const alert = await monitorObject().get(id);
    if (alert === null) throw new Error("alert missing");
    return alert as Alert;
  }

  /** Makes every pending delivery due and runs the alarm. */
  async function runDeliveries(): Promise<void> {
    await runInDurableObject(monitorObject(), (_instance, state) => {
      state.storage.sql.exec("UPDATE alerts SET next_attempt_at = 0 WHERE delivery_status = 'pending'");
    });
    await runDurableObjectAlarm(monitorObject());
  }

  const deliveriesOf = (id: string) => received.filter((r) => r.headers.get("X-Wavry-Alert-Id") === id);

  it("POSTs the alert signed with HMAC-SHA-256 over t.body; the receiver can verify it", async () => {
    answer = async () => new Response("ok");
    const alert = await freshAlert();
    expect(alert.delivery.status).toBe("pending");
    await runDeliveries();
    const [delivery] = deliveriesOf(alert.id);
    if (delivery === undefined) throw new Error("not delivered");
    // The receiver's side: parse the header, recompute the MAC with the shared secret, compare, check freshness.
    const header = delivery.headers.get("X-Wavry-Signature") ?? "";
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
    if (match === null) throw new Error(`bad signature header ${header}`);
    const [, t, mac] = match as unknown as [string, string, string];
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(WEBHOOK_SECRET),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    const macBytes = new Uint8Array(mac.match(/../g)?.map((h) => Number.parseInt(h, 16)) ?? []);
    const data = new TextEncoder().encode(`${t}.${delivery.body}`);
    expect(await crypto.subtle.verify("HMAC", key, macBytes, data)).toBe(true);
    expect(
      await crypto.subtle.verify("HMAC", key, macBytes, new TextEncoder().encode(`${t}.${delivery.body} `)),
    ).toBe(false);
    expect(Math.abs(Number(t) - Date.now() / 1000)).toBeLessThan(300);
    const body = JSON.parse(delivery.body) as { type: string; alert: Alert };
    expect(body).toMatchObject({ type: "wavry.alert", alert: { id: alert.id, rule: "relay_silent" } });
    const stored = await monitorObject().get(alert.id);
    expect(stored?.delivery).toMatchObject({ status: "delivered", attempts: 1 });
  });

  it("retries with growing delays and gives up after the maximum attempts", async () => {
    answer = async () => new Response("down", { status: 503 });
    const alert = await freshAlert();
    // The object's own alarm may already have made the first attempt: whatever the start, each retry waits
    // retryDelayMs(attempts) (30 s, 60 s, 120 s, ...).
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = Date.now();
      await runDeliveries();
      const now = (await monitorObject().get(alert.id)) as Alert | null;
      if (now === null) throw new Error("alert missing");
      if (now.delivery.status === "failed") break;
      expect(now.delivery.status).toBe("pending");
      const delay = (now.delivery.nextAttemptAt ?? 0) - before;
      expect(delay).toBeGreaterThanOrEqual(retryDelayMs(now.delivery.attempts) - 1000);
      expect(delay).toBeLessThanOrEqual(retryDelayMs(now.delivery.attempts) + 1000);
      seen.push(now.delivery.attempts);
    }
    const done = (await monitorObject().get(alert.id)) as Alert;
    const maxAttempts = config().alerts.webhook?.maxAttempts ?? 0;
    expect(done.delivery).toMatchObject({ status: "failed", attempts: maxAttempts, nextAttemptAt: null });
    expect(done.delivery.lastError).toBe("http 503");
    expect(deliveriesOf(alert.id).map((r) => r.headers.get("X-Wavry-Delivery-Attempt"))).toEqual(
      repeat(maxAttempts, (i) => String(i + 1)),
    );
    expect(seen.length).toBeGreaterThanOrEqual(maxAttempts - 2);
    expect(retryDelayMs(2)).toBe(2 * retryDelayMs(1));
    answer = async () => new Response("ok");
  });

  it("never blocks the request: a hanging receiver does not delay the request or the stored alert", async () => {
    // Every attempt takes the receiver 500 ms to answer (a timer inside the object: a promise resolved from the
    // test's context would cross Durable Object I/O contexts).
    const HANG_MS = 500;
    answer = () => new Promise<Response>((resolve) => setTimeout(() => resolve(new Response("ok")), HANG_MS));
    const address = "100.68.3.3";
    const range = await rangeOf(address);
    await feed(
      repeat(th.adminRefusals.count - 1, () => ({
        kind: "admin_request",
        at: Date.now(),
        tokenId: null,
        range,
        method: "GET",
        status: 403,
      })),
    );
    const t0 = Date.now();
    const r = await call("/v1/admin/users", { token: "wvadm_still-not-a-token", address });
    const requestMs = Date.now() - t0;
    expect(r.status).toBe(401);
    const alert = await alertAfter("admin_refusals", `range:${range}`, t0);
    // The alarm delivers it; with the receiver hanging, the attempt stays in flight and nothing else waits.
    const alarm = runDurableObjectAlarm(monitorObject());
    for (let i = 0; i < 200 && deliveriesOf(alert.id).length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(deliveriesOf(alert.id).length).toBeGreaterThanOrEqual(1);
    // While that attempt is in flight, the alert is stored (pending) and requests are answered at once.
    const inFlight = (await monitorObject().get(alert.id)) as Alert | null;
    expect(inFlight?.delivery.status).toBe("pending");
    const t1 = Date.now();
    const second = await call("/v1/admin/users", { token: "wvadm_still-not-a-token", address });
    expect(second.status).toBe(401);
    expect(requestMs).toBeLessThan(HANG_MS);
    expect(Date.now() - t1).toBeLessThan(HANG_MS);
    console.log(
      `monitor: requests with a hanging webhook answered in ${requestMs} and ${Date.now() - t1} ms`,
    );
    await alarm;
    answer = async () => new Response("ok");
  });
});

describe("bounds", () => {
  it("keeps the newest alerts only, and caps subjects per rule", async () => {
    const maxStored = config().alerts.maxStored;
    const now = Date.now();
    await feed(repeat(500, (i) => ({ kind: "relay_silent", at: now, relayId: `r_bound_a${i}` })));
    await feed(repeat(500, (i) => ({ kind: "relay_silent", at: now, relayId: `r_bound_b${i}` })));
    await feed(repeat(100, (i) => ({ kind: "relay_silent", at: now, relayId: `r_bound_c${i}` })));
    const stats = await monitorObject().stats(["auth_failures_account"]);
    expect(stats.alerts).toBe(maxStored);
    expect(await alertsFor("relay_silent", "relay:r_bound_c99")).toHaveLength(1);
    await feed(
      repeat(400, (i) => ({
        kind: "auth_failure",
        at: now,
        source: "login",
        account: `user:bound-${i}`,
        range: null,
      })),
    );
    for (let k = 0; k < 2; k++)
      await feed(
        repeat(400, (i) => ({
          kind: "auth_failure",
          at: now,
          source: "login",
          account: `user:bound-${k}-${i}`,
          range: null,
        })),
      );
    const after = await monitorObject().stats(["auth_failures_account"]);
    expect(after.entries.auth_failures_account).toBe(th.subjectsPerRule);
  });
});
