import { type EdgeBindings, type EdgeConfig, loadConfig } from "./env.ts";
import { logEvent, useLogHashKey } from "./log.ts";
import type { AuditEntry } from "./services/audit.ts";
import { rotateSigningKeys } from "./services/signing-keys.ts";

/**
 * The Worker's `scheduled` handler (a Cron Trigger in wrangler.toml, issue 6): rotates the token-signing keys once
 * the current key is older than WAVRY_KEY_ROTATION_PERIOD_SECS. The cron fires often (hourly) and the period
 * decides, so a missed or failed run is simply retried by the next one.
 *
 * No client breaks: the rotation is the same one the admin route runs (next -> current, current -> previous), and
 * the previous key keeps verifying until every access token it signed has expired; verifiers learned the new
 * current key from the JWKS while it was "next".
 */

/** Who the audit log names for what the schedule does. */
export const SYSTEM_ACTOR = "system:cron";
/** The audit row's path for a scheduled rotation (not an HTTP route). */
export const KEY_ROTATION_AUDIT_PATH = "/scheduled/key-rotation";

/** How long a demoted key keeps verifying: the longest access token it may have signed, plus clock skew. */
export function signingKeyGraceMs(config: EdgeConfig): number {
  return (config.accessTokenTtlSecs + 60) * 1000;
}

export type RotationCheck =
  | {
      readonly rotated: false;
      readonly reason: "off" | "not_due" | "no_keys_yet";
      readonly ageMs: number | null;
    }
  | {
      readonly rotated: true;
      readonly current: string;
      readonly next: string;
      readonly previous: string | null;
    };

/** Rotates when the current key is at least the configured period old. */
export async function rotateSigningKeysIfDue(
  db: D1Database,
  config: EdgeConfig,
  now: number,
): Promise<RotationCheck> {
  const current = await db
    .prepare("SELECT activated_at, created_at FROM signing_keys WHERE status = 'current'")
    .first<{ activated_at: number | null; created_at: number }>();
  // Keys are created on first use; there is nothing to rotate before that.
  if (current === null) return { rotated: false, reason: "no_keys_yet", ageMs: null };
  const ageMs = now - (current.activated_at ?? current.created_at);
  if (config.keyRotationPeriodSecs === 0) return { rotated: false, reason: "off", ageMs };
  if (ageMs < config.keyRotationPeriodSecs * 1000) return { rotated: false, reason: "not_due", ageMs };
  // A racing run (an admin rotating at the same moment) makes this batch fail as a whole on the one-next-key
  // index, so the keys never rotate twice in a row.
  const result = await rotateSigningKeys(db, config.signingKeyWrapKeys, now, signingKeyGraceMs(config));
  return { rotated: true, ...result };
}

async function audit(env: EdgeBindings, entry: Omit<AuditEntry, "requestId" | "actor" | "method" | "path">) {
  const log = env.AUDIT_LOG.get(env.AUDIT_LOG.idFromName("audit"));
  await log.append({
    ...entry,
    requestId: crypto.randomUUID(),
    actor: SYSTEM_ACTOR,
    method: "CRON",
    path: KEY_ROTATION_AUDIT_PATH,
  });
}

/** The `scheduled` entry point. Rotations and failures are audited; "not due" only logged. */
export async function scheduled(controller: ScheduledController, env: EdgeBindings): Promise<void> {
  // Cron runs outside any request: hand the log helper its key here too, or address fields would be dropped.
  useLogHashKey(env);
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    // Problems name settings, never values.
    logEvent("error", "cron", "key_rotation", "config_error", { problems: loaded.problems.join("; ") });
    return;
  }
  const now = controller.scheduledTime;
  let check: RotationCheck;
  try {
    check = await rotateSigningKeysIfDue(env.DB, loaded.config, now);
  } catch (error) {
    logEvent("error", "cron", "key_rotation", "failed", {
      cron: controller.cron,
      error: error instanceof Error ? error.name : "unknown",
    });
    await audit(env, {
      at: Date.now(),
      status: 500,
      outcome: "refused",
      reason: "rotation_failed",
      addressHash: null,
      detail: JSON.stringify({ cron: controller.cron }),
    });
    // Rethrown so the platform records the run as failed; the next run tries again.
    throw error;
  }
  if (!check.rotated) {
    logEvent("info", "cron", "key_rotation", check.reason, { cron: controller.cron, ageMs: check.ageMs });
    return;
  }
  const detail = {
    current: check.current,
    next: check.next,
    previous: check.previous,
    periodSecs: loaded.config.keyRotationPeriodSecs,
    cron: controller.cron,
  };
  await audit(env, {
    at: Date.now(),
    status: 200,
    outcome: "allowed",
    reason: null,
    addressHash: null,
    detail: JSON.stringify(detail),
  });
  logEvent("info", "cron", "key_rotation", "rotated", detail);
}
