import { z } from "zod";
import { type CountRule, DEFAULT_THRESHOLDS, type MonitorThresholds } from "../durable/monitor/rules.ts";
import { int } from "./config-fields.ts";

/**
 * The monitoring settings (issue 6), read by edge/env.ts as part of the one validated configuration: rule
 * thresholds with safe defaults, the alert store's bounds and the webhook. Problems name the setting, never its
 * value (the webhook URL may carry a token in its path, the secret is a secret).
 */

/** Where and how alerts are delivered. */
export interface AlertWebhook {
  readonly url: string;
  readonly secret: string;
  /** Attempts before delivery gives up (the first included). */
  readonly maxAttempts: number;
}

export interface AlertSettings {
  readonly thresholds: MonitorThresholds;
  /** While an alert for a rule and subject is open and younger than this, new findings update it. */
  readonly cooldownMs: number;
  /** Newest alerts kept; older ones are deleted. */
  readonly maxStored: number;
  readonly webhook: AlertWebhook | null;
}

const DAY_SECS = 86_400;
const secs = (ms: number) => ms / 1000;

type IntSetting = ReturnType<typeof int>;

const d = DEFAULT_THRESHOLDS;
/** Count rules: the setting `<NAME>` (the count) and `<NAME>_WINDOW_SECS`, and the threshold field they fill. */
const COUNT_RULES = [
  ["WAVRY_ALERT_AUTH_FAILURES", "authTotal"],
  ["WAVRY_ALERT_ACCOUNT_AUTH_FAILURES", "authAccount"],
  ["WAVRY_ALERT_RANGE_AUTH_FAILURES", "authRange"],
  ["WAVRY_ALERT_HANDSHAKE_FAILURES", "handshakeFailures"],
  ["WAVRY_ALERT_LEASE_REJECTIONS", "leaseRejections"],
  ["WAVRY_ALERT_RELAYS_AT_ONCE", "relaysAtOnce"],
  ["WAVRY_ALERT_RELAY_AUTH_FAILURES", "relayAuthFailures"],
  ["WAVRY_ALERT_RELAY_REPLAYS", "relayReplays"],
  ["WAVRY_ALERT_RELAY_REREGISTRATIONS", "relayReregistrations"],
  ["WAVRY_ALERT_ADMIN_READS", "adminReads"],
  ["WAVRY_ALERT_ADMIN_REFUSALS", "adminRefusals"],
] as const;

const numericShape: Record<string, IntSetting> = {};
for (const [name, field] of COUNT_RULES) {
  numericShape[name] = int(d[field].count, 1, 1_000_000);
  numericShape[`${name}_WINDOW_SECS`] = int(secs(d[field].windowMs), 10, DAY_SECS);
}
Object.assign(numericShape, {
  WAVRY_ALERT_HANDSHAKE_FAILURE_PERCENT: int(d.handshakeFailures.percent, 1, 100),
  WAVRY_ALERT_RELAY_USAGE_FACTOR: int(d.relayUsage.factor, 2, 1000),
  WAVRY_ALERT_RELAY_USAGE_MIN_SAMPLES: int(d.relayUsage.minSamples, 1, 10_000),
  WAVRY_ALERT_RELAY_MIN_BYTES_PER_SEC: int(d.relayUsage.minBytesPerSec, 1, 1_000_000_000),
  WAVRY_ALERT_RELAY_MIN_SESSIONS: int(d.relayUsage.minSessions, 1, 1_000_000),
  WAVRY_ALERT_ADMIN_HOUR_MIN_HISTORY: int(d.adminHours.minHistory, 1, 100_000),
  WAVRY_ALERT_ADMIN_HOUR_PERCENT: int(d.adminHours.percent, 1, 50),
  WAVRY_ALERT_SUBJECTS_PER_RULE: int(d.subjectsPerRule, 10, 10_000),
  WAVRY_ALERT_COOLDOWN_SECS: int(3600, 60, 7 * DAY_SECS),
  WAVRY_ALERT_MAX_STORED: int(1000, 10, 10_000),
  WAVRY_ALERT_WEBHOOK_ATTEMPTS: int(6, 1, 20),
});
const numeric = z.object(numericShape);
const webhookSchema = z.object({
  WAVRY_ALERT_WEBHOOK_URL: z.string().max(2000).optional(),
  WAVRY_ALERT_WEBHOOK_SECRET: z.string().max(512).optional(),
});

/** Every setting this module reads (documented in OPERATIONS.md: Monitoring and alerts). */
export const ALERT_SETTING_NAMES: readonly string[] = [
  ...Object.keys(numericShape),
  ...Object.keys(webhookSchema.shape),
];

export type AlertSettingsResult =
  | { readonly ok: true; readonly settings: AlertSettings }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Validates the monitoring settings. `strongSecret` is the edge's own test for secrets, so the webhook secret
 * meets the same bar as the others.
 */
export function alertSettings(
  env: { readonly [name: `WAVRY_${string}`]: string | undefined },
  production: boolean,
  strongSecret: (value: string) => boolean,
): AlertSettingsResult {
  const raw: Record<string, string> = {};
  for (const key of ALERT_SETTING_NAMES) {
    const value = env[key as `WAVRY_${string}`];
    // An empty string counts as unset, as in env.ts.
    if (typeof value === "string" && value.trim() !== "") raw[key] = value.trim();
  }
  const parsed = numeric.safeParse(raw);
  const hook = webhookSchema.safeParse(raw);
  if (!parsed.success || !hook.success) {
    return {
      ok: false,
      problems: [...(parsed.error?.issues ?? []), ...(hook.error?.issues ?? [])].map(
        (issue) => `${issue.path.join(".")}: ${issue.message}`,
      ),
    };
  }
  const v = parsed.data;
  const num = (name: string): number => {
    const value = v[name];
    if (typeof value !== "number") throw new Error(`alert setting ${name} has no value`);
    return value;
  };
  const problems: string[] = [];
  const url = hook.data.WAVRY_ALERT_WEBHOOK_URL ?? null;
  const secret = hook.data.WAVRY_ALERT_WEBHOOK_SECRET ?? null;
  if (url !== null) {
    let target: URL | null = null;
    try {
      target = new URL(url);
    } catch {
      problems.push("WAVRY_ALERT_WEBHOOK_URL: must be an absolute http(s) URL");
    }
    if (target !== null) {
      if (target.protocol !== "https:" && target.protocol !== "http:")
        problems.push("WAVRY_ALERT_WEBHOOK_URL: must be an absolute http(s) URL");
      else if (production && target.protocol !== "https:")
        problems.push("WAVRY_ALERT_WEBHOOK_URL: must be an https URL in production");
      if (target.username !== "" || target.password !== "")
        problems.push(
          "WAVRY_ALERT_WEBHOOK_URL: credentials in the URL are refused (the secret signs instead)",
        );
    }
    if (secret === null)
      problems.push("WAVRY_ALERT_WEBHOOK_SECRET: required when WAVRY_ALERT_WEBHOOK_URL is set (a secret)");
  }
  if (secret !== null && !strongSecret(secret)) {
    problems.push(
      "WAVRY_ALERT_WEBHOOK_SECRET: too weak (at least 32 characters, not one repeated character)",
    );
  }
  if (problems.length > 0) return { ok: false, problems };

  const rule = (name: string): CountRule => ({
    count: num(name),
    windowMs: num(`${name}_WINDOW_SECS`) * 1000,
  });
  const rules = Object.fromEntries(COUNT_RULES.map(([name, field]) => [field, rule(name)])) as Record<
    (typeof COUNT_RULES)[number][1],
    CountRule
  >;
  return {
    ok: true,
    settings: {
      thresholds: {
        ...rules,
        handshakeFailures: {
          ...rules.handshakeFailures,
          percent: num("WAVRY_ALERT_HANDSHAKE_FAILURE_PERCENT"),
        },
        relayUsage: {
          factor: num("WAVRY_ALERT_RELAY_USAGE_FACTOR"),
          minSamples: num("WAVRY_ALERT_RELAY_USAGE_MIN_SAMPLES"),
          minBytesPerSec: num("WAVRY_ALERT_RELAY_MIN_BYTES_PER_SEC"),
          minSessions: num("WAVRY_ALERT_RELAY_MIN_SESSIONS"),
        },
        adminHours: {
          minHistory: num("WAVRY_ALERT_ADMIN_HOUR_MIN_HISTORY"),
          percent: num("WAVRY_ALERT_ADMIN_HOUR_PERCENT"),
        },
        subjectsPerRule: num("WAVRY_ALERT_SUBJECTS_PER_RULE"),
      },
      cooldownMs: num("WAVRY_ALERT_COOLDOWN_SECS") * 1000,
      maxStored: num("WAVRY_ALERT_MAX_STORED"),
      webhook:
        url === null || secret === null
          ? null
          : { url, secret, maxAttempts: num("WAVRY_ALERT_WEBHOOK_ATTEMPTS") },
    },
  };
}
