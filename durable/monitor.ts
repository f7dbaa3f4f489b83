import { DurableObject } from "cloudflare:workers";
import type { AlertSettings } from "../edge/alert-settings.ts";
import { type EdgeBindings, loadConfig } from "../edge/env.ts";
import { logEvent } from "../edge/log.ts";
import { randomToken } from "../edge/security/tokens-util.ts";
import { type Alert, type AlertStatus, AlertStore } from "./monitor/alert-store.ts";
import { evaluate, type MonitorEvent } from "./monitor/rules.ts";
import { SqlEntryStore } from "./monitor/sql-entry-store.ts";
import { retryDelayMs, SIGNATURE_HEADER, signatureHeader } from "./monitor/webhook.ts";

/** Events one report may carry (a registry sweep reports every relay it quarantined at once). */
export const MAX_EVENTS_PER_REPORT = 500;
/** Deliveries one alarm attempts; the rest wait for the next alarm, due at once. */
const DELIVERIES_PER_ALARM = 10;
const DELIVERY_TIMEOUT_MS = 10_000;
/** Counters quiet this long are forgotten (the longest window is a day). */
const PRUNE_AFTER_MS = 2 * 86_400_000;
/** Baselines (relay usage, admin token ranges and hours) last longer: a token used monthly keeps its pattern. */
const BASELINE_FAMILIES = ["relay_usage", "admin_pattern"] as const;
const BASELINE_PRUNE_AFTER_MS = 60 * 86_400_000;
const HOUSEKEEPING_MS = 3_600_000;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/**
 * The monitor (issue 6): one object that counts what the edge reports over sliding windows, keeps baselines, and
 * stores alerts (DESIGN.md: Monitoring and incident response). A thin adapter: the rules are pure
 * (monitor/rules.ts), the state lives in this object's SQLite storage (monitor/sql-entry-store.ts,
 * monitor/alert-store.ts), and webhook delivery runs from the alarm, never from a reporting request.
 *
 * One global object: reports are small and rare next to requests (failures, heartbeats, admin calls), and one
 * object sees every subject, which the "overall" and "many relays at once" rules need.
 */
export class Monitor extends DurableObject<EdgeBindings> {
  readonly #entries: SqlEntryStore;
  readonly #alerts: AlertStore;

  constructor(ctx: DurableObjectState, env: EdgeBindings) {
    super(ctx, env);
    this.#entries = new SqlEntryStore(ctx.storage.sql);
    this.#alerts = new AlertStore(ctx.storage.sql);
  }

  /** Runs events through the rules and stores any alert. Returns the ids of alerts created. */
  async report(events: readonly MonitorEvent[]): Promise<{ created: readonly string[] }> {
    const settings = this.#settings();
    if (settings === null) return { created: [] };
    const created: string[] = [];
    for (const event of events.slice(0, MAX_EVENTS_PER_REPORT)) {
      for (const finding of evaluate(this.#entries, event, settings.thresholds)) {
        const now = Date.now();
        const result = this.#alerts.record(finding, now, {
          cooldownMs: settings.cooldownMs,
          maxStored: settings.maxStored,
          deliver: settings.webhook !== null,
          newId: () => `alr_${randomToken(random, 16)}`,
        });
        if (!result.created) continue;
        created.push(result.alert.id);
        logEvent(finding.severity === "critical" ? "error" : "warn", "monitor", "alert", "created", {
          alertId: result.alert.id,
          rule: finding.rule,
          subject: finding.subject,
          count: finding.count,
          threshold: finding.threshold,
          eventToAlertMs: now - finding.at,
        });
      }
    }
    await this.#schedule(Date.now(), created.length > 0 && settings.webhook !== null);
    return { created };
  }

  list(status: AlertStatus | "all", limit: number): Alert[] {
    return this.#alerts.list(status, limit);
  }

  get(id: string): Alert | null {
    return this.#alerts.get(id);
  }

  ack(id: string, by: string, note: string | null): Alert | null {
    return this.#alerts.ack(id, by, note, Date.now());
  }

  /** Stored alerts and counter keys per family (tests and capacity checks). */
  stats(families: readonly string[]): { alerts: number; entries: Record<string, number> } {
    return {
      alerts: this.#alerts.count(),
      entries: Object.fromEntries(families.map((f) => [f, this.#entries.size(f)])),
    };
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    this.#entries.prune(now - PRUNE_AFTER_MS, BASELINE_FAMILIES);
    this.#entries.prune(now - BASELINE_PRUNE_AFTER_MS);
    const settings = this.#settings();
    const webhook = settings?.webhook ?? null;
    for (const alert of this.#alerts.due(now, DELIVERIES_PER_ALARM)) {
      if (webhook === null) {
        this.#alerts.failed(alert.id, alert.delivery.attempts, "no webhook configured", null);
        continue;
      }
      const attempts = alert.delivery.attempts + 1;
      const error = await deliver(webhook.url, webhook.secret, alert, attempts);
      const at = Date.now();
      if (error === null) {
        this.#alerts.delivered(alert.id, attempts, at);
        logEvent("info", "monitor", "alert_delivery", "delivered", { alertId: alert.id, attempts });
      } else {
        const retryAt = attempts >= webhook.maxAttempts ? null : at + retryDelayMs(attempts);
        this.#alerts.failed(alert.id, attempts, error, retryAt);
        logEvent("warn", "monitor", "alert_delivery", retryAt === null ? "gave_up" : "retrying", {
          alertId: alert.id,
          attempts,
          error,
        });
      }
    }
    await this.#schedule(Date.now(), false);
  }

  /** The next alarm: the next due delivery (now, when `deliverNow`), else housekeeping within the hour. */
  async #schedule(now: number, deliverNow: boolean): Promise<void> {
    const due = deliverNow ? now : this.#alerts.nextDue();
    const next = Math.min(due ?? Number.POSITIVE_INFINITY, now + HOUSEKEEPING_MS);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) {
      await this.ctx.storage.setAlarm(Math.max(next, now));
    }
  }

  #settings(): AlertSettings | null {
    const loaded = loadConfig(this.env);
    if (!loaded.ok) {
      logEvent("error", "monitor", "config", "invalid", { problems: loaded.problems.length });
      return null;
    }
    return loaded.config.alerts;
  }
}

/**
 * One signed POST of an alert; null on a 2xx answer, else a short reason (never the URL, which may carry a token).
 */
async function deliver(url: string, secret: string, alert: Alert, attempt: number): Promise<string | null> {
  const body = JSON.stringify({ type: "wavry.alert", alert });
  const signature = await signatureHeader(secret, Math.floor(Date.now() / 1000), body);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        [SIGNATURE_HEADER]: signature,
        "X-Wavry-Alert-Id": alert.id,
        "X-Wavry-Delivery-Attempt": String(attempt),
      },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    // The body is not needed; releasing it frees the connection.
    await response.body?.cancel();
    return response.ok ? null : `http ${response.status}`;
  } catch (error) {
    return `network: ${error instanceof Error ? error.name : "error"}`;
  }
}
