import type { EntryStore } from "./entry-store.ts";
import { addToWindow, isWindowEntry } from "./windows.ts";

/**
 * The detection rules (DESIGN.md: Monitoring and incident response; issue 6). Each event the edge reports is run
 * through the rules it concerns; a rule over its threshold yields a {@link Finding}, which the Monitor Durable Object
 * turns into a stored, de-duplicated alert. Pure: time comes from the events, state from an {@link EntryStore}.
 *
 * Subjects are ids (user, admin token, relay) or keyed hashes of address ranges, never an email or an address.
 */

/** What the edge reports. `at` is the edge's clock when it happened. */
export type MonitorEvent =
  | {
      readonly kind: "auth_failure";
      readonly at: number;
      readonly source: "login" | "device_challenge" | "admin_token";
      /** `user:<id>` or `admin:<tokenId>` when the credential names a known account. */
      readonly account: string | null;
      /** Keyed hash of the client's /24 (IPv4) or /48 (IPv6). */
      readonly range: string | null;
    }
  | { readonly kind: "session_report"; readonly at: number; readonly failed: boolean }
  | {
      readonly kind: "relay_heartbeat";
      readonly at: number;
      readonly relayId: string;
      readonly sessions: number;
      /** Totals since the relay process started at `startedAt`. */
      readonly bytesForwarded: number;
      readonly leaseRejections: number;
      readonly startedAt: number;
    }
  | { readonly kind: "relay_register"; readonly at: number; readonly relayId: string }
  | { readonly kind: "relay_silent"; readonly at: number; readonly relayId: string }
  | {
      readonly kind: "relay_auth_failure";
      readonly at: number;
      readonly what: "bad_signature" | "enrollment";
      readonly range: string | null;
    }
  | { readonly kind: "relay_replay"; readonly at: number; readonly relayId: string }
  | {
      readonly kind: "admin_request";
      readonly at: number;
      /** The admin token presented, when it is a known one (even revoked or out of scope). */
      readonly tokenId: string | null;
      readonly range: string | null;
      readonly method: string;
      readonly status: number;
    };

export type MonitorEventKind = MonitorEvent["kind"];

/** Rule names: the `rule` of an alert. */
export const RULES = [
  "auth_failures_total",
  "auth_failures_account",
  "auth_failures_range",
  "handshake_failures",
  "lease_rejections",
  "relay_usage",
  "relay_silent",
  "relays_at_once",
  "relay_auth_failures",
  "relay_replays",
  "relay_reregistrations",
  "admin_new_address",
  "admin_read_burst",
  "admin_refusals",
  "admin_odd_hour",
] as const;
export type RuleName = (typeof RULES)[number];

export type Severity = "warning" | "critical";

/** A count over a sliding window: the rule fires when the count reaches `count`. */
export interface CountRule {
  readonly count: number;
  readonly windowMs: number;
}

export interface MonitorThresholds {
  readonly authTotal: CountRule;
  readonly authAccount: CountRule;
  readonly authRange: CountRule;
  /** Failed session reports; fires only when failures are also at least `percent` of all reports. */
  readonly handshakeFailures: CountRule & { readonly percent: number };
  /** Lease rejections (`invalid_lease` drops) per relay. */
  readonly leaseRejections: CountRule;
  /**
   * A heartbeat's traffic rate or session count `factor` times above its baseline (an EWMA over heartbeats), or
   * `factor` times below it; only after `minSamples` heartbeats, and only above the floors (a relay that idles at
   * a few bytes a second is not "far below" when it idles at none).
   */
  readonly relayUsage: {
    readonly factor: number;
    readonly minSamples: number;
    readonly minBytesPerSec: number;
    readonly minSessions: number;
  };
  /** Distinct relays gone silent or anomalous within the window. */
  readonly relaysAtOnce: CountRule;
  /** Bad relay signatures and failed enrollments, all relays together. */
  readonly relayAuthFailures: CountRule;
  /** Replayed nonces per relay. */
  readonly relayReplays: CountRule;
  /** Registers per relay (a relay restarting in a loop, or two relays sharing a key). */
  readonly relayReregistrations: CountRule;
  /** Successful admin reads (GET) per token. */
  readonly adminReads: CountRule;
  /** Refused admin requests (401, 403, 429) per address range. */
  readonly adminRefusals: CountRule;
  /**
   * A token used at an hour (UTC) that, with its two neighbours, holds under `percent` of its history, once the
   * history has `minHistory` uses.
   */
  readonly adminHours: { readonly minHistory: number; readonly percent: number };
  /** Keys kept per rule (accounts, ranges, relays, tokens). */
  readonly subjectsPerRule: number;
}

const MINUTE = 60_000;

/** Safe defaults: quiet on a small deployment's normal traffic, loud on a real attack or outage. */
export const DEFAULT_THRESHOLDS: MonitorThresholds = {
  authTotal: { count: 100, windowMs: 5 * MINUTE },
  authAccount: { count: 10, windowMs: 15 * MINUTE },
  authRange: { count: 25, windowMs: 15 * MINUTE },
  handshakeFailures: { count: 20, windowMs: 10 * MINUTE, percent: 50 },
  leaseRejections: { count: 100, windowMs: 10 * MINUTE },
  relayUsage: { factor: 10, minSamples: 12, minBytesPerSec: 10_000, minSessions: 5 },
  relaysAtOnce: { count: 3, windowMs: 10 * MINUTE },
  relayAuthFailures: { count: 10, windowMs: 10 * MINUTE },
  relayReplays: { count: 3, windowMs: 10 * MINUTE },
  relayReregistrations: { count: 5, windowMs: 60 * MINUTE },
  adminReads: { count: 100, windowMs: 5 * MINUTE },
  adminRefusals: { count: 5, windowMs: 10 * MINUTE },
  adminHours: { minHistory: 20, percent: 2 },
  subjectsPerRule: 1000,
};

/** A rule over its threshold. */
export interface Finding {
  readonly rule: RuleName;
  readonly severity: Severity;
  /** `all`, `user:<id>`, `admin:<tokenId>`, `relay:<id>` or `range:<keyed hash>`. */
  readonly subject: string;
  readonly summary: string;
  readonly count: number;
  readonly threshold: number;
  readonly windowMs: number;
  readonly at: number;
}

/** Per-relay baseline: last counter totals and EWMAs of traffic rate and sessions. */
interface RelayEntry {
  readonly t: "r";
  readonly startedAt: number;
  readonly lastAt: number;
  readonly bytes: number;
  readonly leases: number;
  /** EWMA of bytes per second, once there is a rate sample. */
  readonly rate: number | null;
  readonly sessions: number | null;
  readonly samples: number;
}

/** Per-admin-token pattern: ranges seen (most recent last) and uses per UTC hour. */
interface AdminEntry {
  readonly t: "a";
  readonly ranges: readonly string[];
  readonly hours: readonly number[];
  readonly total: number;
}

/** Recently anomalous relays: id and when. */
interface RecentEntry {
  readonly t: "s";
  readonly m: readonly (readonly [string, number])[];
}

const RANGES_PER_TOKEN = 16;
/** Hour counts are halved past this many uses, so an old pattern fades. */
const HOUR_HISTORY_CAP = 1000;
/** EWMA weight of a new heartbeat once the baseline has warmed up (about the last 20 heartbeats). */
const EWMA_ALPHA = 0.1;

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function relayEntry(value: unknown): RelayEntry | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Partial<Record<keyof RelayEntry, unknown>>;
  const ok =
    v.t === "r" &&
    isNum(v.startedAt) &&
    isNum(v.lastAt) &&
    isNum(v.bytes) &&
    isNum(v.leases) &&
    (v.rate === null || isNum(v.rate)) &&
    (v.sessions === null || isNum(v.sessions)) &&
    isNum(v.samples);
  return ok ? (value as RelayEntry) : undefined;
}

function adminEntry(value: unknown): AdminEntry | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Partial<Record<keyof AdminEntry, unknown>>;
  const ok =
    v.t === "a" &&
    Array.isArray(v.ranges) &&
    v.ranges.every((r) => typeof r === "string") &&
    Array.isArray(v.hours) &&
    v.hours.length === 24 &&
    v.hours.every(isNum) &&
    isNum(v.total);
  return ok ? (value as AdminEntry) : undefined;
}

function recentEntry(value: unknown): RecentEntry | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as { t?: unknown; m?: unknown };
  const ok =
    v.t === "s" &&
    Array.isArray(v.m) &&
    v.m.every((p) => Array.isArray(p) && typeof p[0] === "string" && isNum(p[1]));
  return ok ? (value as RecentEntry) : undefined;
}

const minutes = (ms: number) => `${Math.round(ms / MINUTE)} min`;

/** Runs `event` through the rules it concerns, updating their state in `store`. */
export function evaluate(store: EntryStore, event: MonitorEvent, th: MonitorThresholds): Finding[] {
  const ctx = new Context(store, th, event.at);
  switch (event.kind) {
    case "auth_failure":
      ctx.count("auth_failures_total", "all", th.authTotal, "critical", "auth failures (all)");
      if (event.account !== null)
        ctx.count("auth_failures_account", event.account, th.authAccount, "warning", "auth failures");
      if (event.range !== null)
        ctx.count(
          "auth_failures_range",
          `range:${event.range}`,
          th.authRange,
          "warning",
          "auth failures from one address range",
        );
      break;
    case "session_report":
      ctx.handshake(event.failed);
      break;
    case "relay_heartbeat":
      ctx.heartbeat(event);
      break;
    case "relay_register":
      ctx.count(
        "relay_reregistrations",
        `relay:${event.relayId}`,
        th.relayReregistrations,
        "warning",
        "registers",
      );
      break;
    case "relay_silent":
      ctx.push({
        rule: "relay_silent",
        severity: "warning",
        subject: `relay:${event.relayId}`,
        summary: "relay missed its heartbeats and was quarantined",
        count: 1,
        threshold: 1,
        windowMs: 0,
        at: event.at,
      });
      ctx.relayAnomaly(event.relayId);
      break;
    case "relay_auth_failure":
      ctx.count(
        "relay_auth_failures",
        "all",
        th.relayAuthFailures,
        "warning",
        "bad relay signatures and failed enrollments",
      );
      break;
    case "relay_replay":
      ctx.count("relay_replays", `relay:${event.relayId}`, th.relayReplays, "critical", "replayed nonces");
      break;
    case "admin_request":
      ctx.admin(event);
      break;
    default:
      return assertNever(event);
  }
  return ctx.findings;
}

function assertNever(value: never): never {
  throw new Error(`unexpected event ${String(value)}`);
}

class Context {
  readonly findings: Finding[] = [];

  constructor(
    readonly store: EntryStore,
    readonly th: MonitorThresholds,
    readonly at: number,
  ) {}

  push(finding: Finding): void {
    this.findings.push(finding);
  }

  /** Adds `n` to the window of `rule`/`subject`; a finding when it reaches the threshold. */
  count(rule: RuleName, subject: string, limit: CountRule, severity: Severity, what: string, n = 1): number {
    const key = `${rule}|${subject}`;
    const stored = this.store.get(key);
    const { entry, count } = addToWindow(
      isWindowEntry(stored) ? stored : undefined,
      this.at,
      n,
      limit.windowMs,
    );
    this.store.put(rule, key, entry, this.at, this.th.subjectsPerRule);
    if (count >= limit.count) {
      this.push({
        rule,
        severity,
        subject,
        summary: `${count} ${what} in ${minutes(limit.windowMs)} (threshold ${limit.count})`,
        count,
        threshold: limit.count,
        windowMs: limit.windowMs,
        at: this.at,
      });
    }
    return count;
  }

  handshake(failed: boolean): void {
    const limit = this.th.handshakeFailures;
    const all = this.#bump("handshake_reports|all", limit.windowMs, 1);
    if (!failed) return;
    const failures = this.#bump("handshake_failures|all", limit.windowMs, 1);
    if (failures >= limit.count && failures * 100 >= limit.percent * all) {
      this.push({
        rule: "handshake_failures",
        severity: "critical",
        subject: "all",
        summary: `${failures} of ${all} session reports failed in ${minutes(limit.windowMs)} (threshold ${limit.count} and ${limit.percent}%)`,
        count: failures,
        threshold: limit.count,
        windowMs: limit.windowMs,
        at: this.at,
      });
    }
  }

  #bump(key: string, windowMs: number, n: number): number {
    const stored = this.store.get(key);
    const { entry, count } = addToWindow(isWindowEntry(stored) ? stored : undefined, this.at, n, windowMs);
    this.store.put("handshake_failures", key, entry, this.at, this.th.subjectsPerRule);
    return count;
  }

  heartbeat(event: Extract<MonitorEvent, { kind: "relay_heartbeat" }>): void {
    const key = `relay|${event.relayId}`;
    const prev = relayEntry(this.store.get(key));
    const sameRun =
      prev !== undefined &&
      prev.startedAt === event.startedAt &&
      event.at > prev.lastAt &&
      event.bytesForwarded >= prev.bytes &&
      event.leaseRejections >= prev.leases;
    // A restarted relay counts from zero again: its totals are all new.
    const leaseDelta = sameRun ? event.leaseRejections - prev.leases : event.leaseRejections;
    if (leaseDelta > 0) {
      this.count(
        "lease_rejections",
        `relay:${event.relayId}`,
        this.th.leaseRejections,
        "warning",
        "lease rejections",
        leaseDelta,
      );
    }
    const rate = sameRun ? ((event.bytesForwarded - prev.bytes) * 1000) / (event.at - prev.lastAt) : null;
    const usage = this.th.relayUsage;
    const samples = prev?.samples ?? 0;
    if (prev !== undefined && samples >= usage.minSamples) {
      const reasons: string[] = [];
      if (rate !== null && prev.rate !== null) {
        const r = anomaly(rate, prev.rate, usage.factor, usage.minBytesPerSec);
        if (r !== null)
          reasons.push(`traffic ${Math.round(rate)} B/s is ${r} its baseline ${Math.round(prev.rate)} B/s`);
      }
      if (prev.sessions !== null) {
        const s = anomaly(event.sessions, prev.sessions, usage.factor, usage.minSessions);
        if (s !== null)
          reasons.push(`${event.sessions} sessions is ${s} its baseline ${prev.sessions.toFixed(1)}`);
      }
      if (reasons.length > 0) {
        this.push({
          rule: "relay_usage",
          severity: "warning",
          subject: `relay:${event.relayId}`,
          summary: reasons.join("; "),
          count: rate === null ? event.sessions : Math.round(rate),
          threshold: usage.factor,
          windowMs: 0,
          at: event.at,
        });
        this.relayAnomaly(event.relayId);
      }
    }
    // Warm up fast (a plain mean of the first samples), then weigh recent heartbeats more.
    const alpha = Math.max(EWMA_ALPHA, 1 / (samples + 1));
    const ewma = (old: number | null, value: number) => (old === null ? value : old + alpha * (value - old));
    const next: RelayEntry = {
      t: "r",
      startedAt: event.startedAt,
      lastAt: event.at,
      bytes: event.bytesForwarded,
      leases: event.leaseRejections,
      rate: rate === null ? (prev?.rate ?? null) : ewma(prev?.rate ?? null, rate),
      sessions: ewma(prev?.sessions ?? null, event.sessions),
      samples: samples + 1,
    };
    this.store.put("relay_usage", key, next, event.at, this.th.subjectsPerRule);
  }

  /** Records a relay as anomalous now; a finding when enough distinct relays are within the window. */
  relayAnomaly(relayId: string): void {
    const limit = this.th.relaysAtOnce;
    const key = "relays_at_once|all";
    const prev = recentEntry(this.store.get(key))?.m ?? [];
    const since = this.at - limit.windowMs;
    const recent = new Map(prev.filter(([, at]) => at > since));
    recent.set(relayId, Math.max(this.at, recent.get(relayId) ?? 0));
    const kept = [...recent].sort((a, b) => a[1] - b[1]).slice(-this.th.subjectsPerRule);
    this.store.put("relays_at_once", key, { t: "s", m: kept }, this.at, 1);
    if (kept.length >= limit.count) {
      this.push({
        rule: "relays_at_once",
        severity: "critical",
        subject: "all",
        summary: `${kept.length} relays silent or anomalous in ${minutes(limit.windowMs)} (threshold ${limit.count})`,
        count: kept.length,
        threshold: limit.count,
        windowMs: limit.windowMs,
        at: this.at,
      });
    }
  }

  admin(event: Extract<MonitorEvent, { kind: "admin_request" }>): void {
    const th = this.th;
    const refused = event.status === 401 || event.status === 403 || event.status === 429;
    if (refused && event.range !== null)
      this.count(
        "admin_refusals",
        `range:${event.range}`,
        th.adminRefusals,
        "warning",
        "refused admin requests",
      );
    if (event.tokenId === null || event.status >= 400) return;
    const subject = `admin:${event.tokenId}`;
    if (event.method === "GET")
      this.count("admin_read_burst", subject, th.adminReads, "warning", "admin reads");

    const key = `admin|${event.tokenId}`;
    const prev = adminEntry(this.store.get(key));
    const hour = new Date(event.at).getUTCHours();
    let ranges = [...(prev?.ranges ?? [])];
    if (event.range !== null) {
      if (ranges.length > 0 && !ranges.includes(event.range)) {
        this.push({
          rule: "admin_new_address",
          severity: "warning",
          subject,
          summary: `admin token used from an address range it has not used before (${ranges.length} known)`,
          count: 1,
          threshold: 1,
          windowMs: 0,
          at: event.at,
        });
      }
      ranges = [...ranges.filter((r) => r !== event.range), event.range].slice(-RANGES_PER_TOKEN);
    }
    let hours = [...(prev?.hours ?? new Array<number>(24).fill(0))];
    let total = prev?.total ?? 0;
    if (total >= th.adminHours.minHistory) {
      const near = [23, 0, 1].reduce((sum, d) => sum + (hours[(hour + d) % 24] ?? 0), 0);
      if (near * 100 < th.adminHours.percent * total) {
        this.push({
          rule: "admin_odd_hour",
          severity: "warning",
          subject,
          summary: `admin token used at ${hour}:00 UTC, an hour that with its neighbours holds ${near} of its ${Math.round(total)} uses`,
          count: Math.round(near),
          threshold: th.adminHours.percent,
          windowMs: 0,
          at: event.at,
        });
      }
    }
    hours[hour] = (hours[hour] ?? 0) + 1;
    total += 1;
    if (total > HOUR_HISTORY_CAP) {
      hours = hours.map((h) => h / 2);
      total /= 2;
    }
    const next: AdminEntry = { t: "a", ranges, hours, total };
    this.store.put("admin_pattern", key, next, event.at, th.subjectsPerRule);
  }
}

/** "above" or "below" when `value` is `factor` times off `baseline`, with `floor` as the smallest baseline that counts. */
function anomaly(value: number, baseline: number, factor: number, floor: number): "above" | "below" | null {
  if (value > factor * Math.max(baseline, floor)) return "above";
  if (baseline >= floor && value * factor < baseline) return "below";
  return null;
}
