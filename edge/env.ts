import { z } from "zod";
import type { AuditLog } from "../durable/audit-log.ts";
import type { Monitor } from "../durable/monitor.ts";
import type { RateLimiter } from "../durable/rate-limiter.ts";
import type { RelayRegistry } from "../durable/relay-registry.ts";
import type { SignalingRoom } from "../durable/signaling-room.ts";
import { type AlertSettings, alertSettings } from "./alert-settings.ts";
import { int } from "./config-fields.ts";
import { DEV_LOG_HASH_KEY, DEV_TOTP_KEYS, DEV_WRAP_KEYS } from "./dev-defaults.ts";
import { parseKeyRing } from "./security/secret-box.ts";
import { base64urlDecode } from "./security/tokens-util.ts";

/**
 * The one place the edge reads its bindings, vars and secrets. Everything is validated once per `env` object
 * (an isolate sees the same object for its lifetime) into an {@link EdgeConfig}; an invalid configuration makes
 * every request fail closed with a `configuration_error` that names the setting (never its value).
 */

/** Bindings as wrangler gives them: D1, Durable Objects, and strings for vars and secrets. */
export interface EdgeBindings {
  readonly DB: D1Database;
  readonly RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  readonly AUDIT_LOG: DurableObjectNamespace<AuditLog>;
  readonly RELAY_REGISTRY: DurableObjectNamespace<RelayRegistry>;
  readonly SIGNALING: DurableObjectNamespace<SignalingRoom>;
  readonly MONITOR: DurableObjectNamespace<Monitor>;
  readonly [name: `WAVRY_${string}`]: string | undefined;
}

export type Environment = "development" | "production";

export interface RateBudget {
  /** Requests allowed per window; 0 disables the limit (refused in production). */
  readonly limit: number;
  readonly windowSecs: number;
}

export interface EdgeConfig {
  readonly environment: Environment;
  readonly issuer: string;
  readonly rateLimits: {
    /** Every request, per client address. */
    readonly global: RateBudget;
    /** Register, login, refresh, TOTP: per client address. */
    readonly auth: RateBudget;
    /** Login attempts per account, whatever the address (address rotation). */
    readonly account: RateBudget;
    /** Device challenge and device token: per client address. */
    readonly token: RateBudget;
    /** Admin API: per client address. */
    readonly admin: RateBudget;
  };
  readonly lockout: {
    readonly threshold: number;
    readonly durationSecs: number;
    readonly addressFailures: RateBudget;
  };
  readonly trustProxyHeaders: boolean;
  readonly allowedOrigins: readonly string[];
  readonly adminBootstrapToken: string | null;
  /** `kid:base64url,...` rings; the first key seals, all open. */
  readonly totpEncryptionKeys: string;
  readonly signingKeyWrapKeys: string;
  /** HMAC key for the keyed hashes of addresses and emails in logs and the audit trail. */
  readonly logHashKey: string;
  readonly accessTokenTtlSecs: number;
  readonly refreshTokenTtlSecs: number;
  readonly maxBodyBytes: number;
  /** How often relays heartbeat; three missed intervals quarantine a relay. */
  readonly relayHeartbeatIntervalMs: number;
  /** The relay master public key, when set: lease-key certificates are then verified at upload. */
  readonly relayMasterPublicKey: Uint8Array | null;
  /** Detection rules, alert store bounds and the alert webhook (edge/alert-settings.ts; OPERATIONS.md). */
  readonly alerts: AlertSettings;
  /**
   * The Cron Trigger rotates the token-signing keys once the current key is this old; 0 turns scheduled rotation
   * off (refused in production). At least a day, so a rotation never retires a key still inside its grace period.
   */
  readonly keyRotationPeriodSecs: number;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: EdgeConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

// Development-only defaults for the key rings, so `wrangler dev` and tests run with no hand editing. They are
// public (in this file), which is why production refuses to start without real secrets.
const DEV_KEY_MARK = "dev-";
const KEY_ROTATION_DEFAULT_SECS = 30 * 86_400;
const KEY_ROTATION_MIN_SECS = 86_400;

const flag = z
  .enum(["0", "1", "true", "false"], { message: "must be 0 or 1" })
  .optional()
  .transform((v) => v === "1" || v === "true");

const schema = z.object({
  // Safe default: anything not explicitly development is production.
  WAVRY_ENVIRONMENT: z.enum(["development", "production"]).optional().default("production"),
  WAVRY_ISSUER: z.string().min(1).max(200).optional(),
  WAVRY_GLOBAL_RATE_LIMIT: int(600, 0, 1_000_000),
  WAVRY_GLOBAL_RATE_LIMIT_WINDOW_SECS: int(60, 1, 86_400),
  WAVRY_AUTH_RATE_LIMIT: int(10, 0, 100_000),
  WAVRY_AUTH_RATE_LIMIT_WINDOW_SECS: int(60, 1, 86_400),
  WAVRY_ACCOUNT_RATE_LIMIT: int(30, 0, 100_000),
  WAVRY_ACCOUNT_RATE_LIMIT_WINDOW_SECS: int(3600, 1, 86_400),
  WAVRY_TOKEN_RATE_LIMIT: int(30, 0, 100_000),
  WAVRY_TOKEN_RATE_LIMIT_WINDOW_SECS: int(60, 1, 86_400),
  WAVRY_ADMIN_RATE_LIMIT: int(120, 0, 100_000),
  WAVRY_ADMIN_RATE_LIMIT_WINDOW_SECS: int(60, 1, 86_400),
  WAVRY_LOGIN_LOCKOUT_THRESHOLD: int(5, 1, 100),
  WAVRY_LOGIN_LOCKOUT_SECS: int(900, 1, 86_400),
  WAVRY_ADDRESS_LOGIN_FAILURES: int(20, 1, 10_000),
  WAVRY_ADDRESS_LOGIN_FAILURES_WINDOW_SECS: int(900, 1, 86_400),
  WAVRY_TRUST_PROXY_HEADERS: flag,
  WAVRY_ALLOWED_ORIGINS: z.string().max(4000).optional(),
  WAVRY_ADMIN_BOOTSTRAP_TOKEN: z.string().max(512).optional(),
  WAVRY_TOTP_ENCRYPTION_KEYS: z.string().max(4000).optional(),
  WAVRY_SIGNING_KEY_WRAP_KEYS: z.string().max(4000).optional(),
  WAVRY_LOG_HASH_KEY: z.string().max(512).optional(),
  WAVRY_ACCESS_TOKEN_TTL_SECS: int(600, 60, 3600),
  WAVRY_REFRESH_TOKEN_TTL_SECS: int(30 * 86_400, 3600, 90 * 86_400),
  WAVRY_MAX_BODY_BYTES: int(16 * 1024, 1024, 1024 * 1024),
  WAVRY_RELAY_HEARTBEAT_INTERVAL_MS: int(5000, 1000, 60_000),
  WAVRY_RELAY_MASTER_PUBLIC_KEY: z.string().max(100).optional(),
  WAVRY_KEY_ROTATION_PERIOD_SECS: int(KEY_ROTATION_DEFAULT_SECS, 0, 365 * 86_400),
});

const cache = new WeakMap<object, ConfigResult>();

/** Validates the bindings once per env object and caches the result. */
export function loadConfig(env: EdgeBindings): ConfigResult {
  const hit = cache.get(env);
  if (hit !== undefined) return hit;
  const result = validate(env);
  cache.set(env, result);
  return result;
}

function validate(env: EdgeBindings): ConfigResult {
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key as `WAVRY_${string}`];
    // An empty string counts as unset (wrangler vars cannot be deleted per environment).
    if (typeof value === "string" && value.trim() !== "") raw[key] = value.trim();
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
    };
  }
  const v = parsed.data;
  const production = v.WAVRY_ENVIRONMENT === "production";

  if (typeof env.DB !== "object" || env.DB === null) problems.push("DB: the D1 binding is missing");
  if (typeof env.RATE_LIMITER !== "object" || env.RATE_LIMITER === null) {
    problems.push("RATE_LIMITER: the Durable Object binding is missing");
  }
  if (typeof env.AUDIT_LOG !== "object" || env.AUDIT_LOG === null) {
    problems.push("AUDIT_LOG: the Durable Object binding is missing");
  }
  const alerts = alertSettings(env, production, strongSecret);
  if (!alerts.ok) problems.push(...alerts.problems);

  const origins = (v.WAVRY_ALLOWED_ORIGINS ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of origins) {
    if (origin === "*") problems.push("WAVRY_ALLOWED_ORIGINS: a wildcard origin is never allowed");
    else if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(origin)) {
      problems.push("WAVRY_ALLOWED_ORIGINS: each origin is scheme://host[:port] with no path");
    } else if (production && origin.startsWith("http://")) {
      problems.push("WAVRY_ALLOWED_ORIGINS: plain http origins are refused in production");
    }
  }

  const bootstrap = v.WAVRY_ADMIN_BOOTSTRAP_TOKEN ?? null;
  if (bootstrap !== null && !strongSecret(bootstrap)) {
    problems.push(
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN: too weak (at least 32 characters, not one repeated character)",
    );
  }
  const totpKeys = v.WAVRY_TOTP_ENCRYPTION_KEYS ?? (production ? undefined : DEV_TOTP_KEYS);
  const wrapKeys = v.WAVRY_SIGNING_KEY_WRAP_KEYS ?? (production ? undefined : DEV_WRAP_KEYS);
  const issuer = v.WAVRY_ISSUER ?? (production ? undefined : "http://127.0.0.1:8787");
  const logHashKey = v.WAVRY_LOG_HASH_KEY ?? (production ? undefined : DEV_LOG_HASH_KEY);
  if (logHashKey !== undefined && !strongSecret(logHashKey)) {
    problems.push("WAVRY_LOG_HASH_KEY: too weak (at least 32 characters, not one repeated character)");
  }

  if (production) {
    if (bootstrap === null) problems.push("WAVRY_ADMIN_BOOTSTRAP_TOKEN: required in production (a secret)");
    if (totpKeys === undefined)
      problems.push("WAVRY_TOTP_ENCRYPTION_KEYS: required in production (a secret key ring)");
    else if (ringHasDevKey(totpKeys))
      problems.push("WAVRY_TOTP_ENCRYPTION_KEYS: development keys are refused in production");
    if (wrapKeys === undefined)
      problems.push("WAVRY_SIGNING_KEY_WRAP_KEYS: required in production (a secret key ring)");
    else if (ringHasDevKey(wrapKeys))
      problems.push("WAVRY_SIGNING_KEY_WRAP_KEYS: development keys are refused in production");
    if (logHashKey === undefined) problems.push("WAVRY_LOG_HASH_KEY: required in production (a secret)");
    else if (logHashKey === DEV_LOG_HASH_KEY)
      problems.push("WAVRY_LOG_HASH_KEY: the development key is refused in production");
    if (issuer === undefined) problems.push("WAVRY_ISSUER: required in production (the edge's https URL)");
    else if (!issuer.startsWith("https://"))
      problems.push("WAVRY_ISSUER: must be an https URL in production");
    const limits: [string, number][] = [
      ["WAVRY_GLOBAL_RATE_LIMIT", v.WAVRY_GLOBAL_RATE_LIMIT],
      ["WAVRY_AUTH_RATE_LIMIT", v.WAVRY_AUTH_RATE_LIMIT],
      ["WAVRY_ACCOUNT_RATE_LIMIT", v.WAVRY_ACCOUNT_RATE_LIMIT],
      ["WAVRY_TOKEN_RATE_LIMIT", v.WAVRY_TOKEN_RATE_LIMIT],
      ["WAVRY_ADMIN_RATE_LIMIT", v.WAVRY_ADMIN_RATE_LIMIT],
    ];
    for (const [name, limit] of limits)
      if (limit === 0) problems.push(`${name}: rate limiting cannot be disabled in production`);
  }
  for (const [name, ring] of [
    ["WAVRY_TOTP_ENCRYPTION_KEYS", totpKeys],
    ["WAVRY_SIGNING_KEY_WRAP_KEYS", wrapKeys],
  ] as const) {
    // The same parser the code that uses the ring runs, so a ring accepted here always works there.
    const parsed = ring === undefined ? null : parseKeyRing(ring);
    if (parsed !== null && "error" in parsed) problems.push(`${name}: ${parsed.error}`);
  }
  const masterKey =
    v.WAVRY_RELAY_MASTER_PUBLIC_KEY === undefined ? null : base64urlDecode(v.WAVRY_RELAY_MASTER_PUBLIC_KEY);
  if (v.WAVRY_RELAY_MASTER_PUBLIC_KEY !== undefined && (masterKey === null || masterKey.length !== 32)) {
    problems.push(
      "WAVRY_RELAY_MASTER_PUBLIC_KEY: must be the 32-byte Ed25519 key in base64url (`npm run wavry-admin -- master-keygen` prints it)",
    );
  }
  const rotation = v.WAVRY_KEY_ROTATION_PERIOD_SECS;
  if (rotation === 0 && production) {
    problems.push(
      "WAVRY_KEY_ROTATION_PERIOD_SECS: scheduled key rotation cannot be turned off in production",
    );
  } else if (rotation !== 0 && rotation < KEY_ROTATION_MIN_SECS) {
    problems.push(
      `WAVRY_KEY_ROTATION_PERIOD_SECS: at least ${KEY_ROTATION_MIN_SECS} (a day), or 0 (off) in development`,
    );
  }
  if (
    problems.length > 0 ||
    !alerts.ok ||
    totpKeys === undefined ||
    wrapKeys === undefined ||
    issuer === undefined ||
    logHashKey === undefined
  ) {
    return { ok: false, problems };
  }

  return {
    ok: true,
    config: {
      environment: v.WAVRY_ENVIRONMENT,
      issuer,
      rateLimits: {
        global: { limit: v.WAVRY_GLOBAL_RATE_LIMIT, windowSecs: v.WAVRY_GLOBAL_RATE_LIMIT_WINDOW_SECS },
        auth: { limit: v.WAVRY_AUTH_RATE_LIMIT, windowSecs: v.WAVRY_AUTH_RATE_LIMIT_WINDOW_SECS },
        account: { limit: v.WAVRY_ACCOUNT_RATE_LIMIT, windowSecs: v.WAVRY_ACCOUNT_RATE_LIMIT_WINDOW_SECS },
        token: { limit: v.WAVRY_TOKEN_RATE_LIMIT, windowSecs: v.WAVRY_TOKEN_RATE_LIMIT_WINDOW_SECS },
        admin: { limit: v.WAVRY_ADMIN_RATE_LIMIT, windowSecs: v.WAVRY_ADMIN_RATE_LIMIT_WINDOW_SECS },
      },
      lockout: {
        threshold: v.WAVRY_LOGIN_LOCKOUT_THRESHOLD,
        durationSecs: v.WAVRY_LOGIN_LOCKOUT_SECS,
        addressFailures: {
          limit: v.WAVRY_ADDRESS_LOGIN_FAILURES,
          windowSecs: v.WAVRY_ADDRESS_LOGIN_FAILURES_WINDOW_SECS,
        },
      },
      trustProxyHeaders: v.WAVRY_TRUST_PROXY_HEADERS,
      allowedOrigins: origins,
      adminBootstrapToken: bootstrap,
      totpEncryptionKeys: totpKeys,
      signingKeyWrapKeys: wrapKeys,
      logHashKey,
      accessTokenTtlSecs: v.WAVRY_ACCESS_TOKEN_TTL_SECS,
      refreshTokenTtlSecs: v.WAVRY_REFRESH_TOKEN_TTL_SECS,
      maxBodyBytes: v.WAVRY_MAX_BODY_BYTES,
      relayHeartbeatIntervalMs: v.WAVRY_RELAY_HEARTBEAT_INTERVAL_MS,
      relayMasterPublicKey: masterKey,
      alerts: alerts.settings,
      keyRotationPeriodSecs: rotation,
    },
  };
}

function strongSecret(value: string): boolean {
  return value.length >= 32 && new Set(value).size > 4;
}

function ringEntries(ring: string): [string, string][] {
  return ring.split(",").map((entry) => {
    const at = entry.indexOf(":");
    return [entry.slice(0, at).trim(), entry.slice(at + 1).trim()];
  });
}

function ringHasDevKey(ring: string): boolean {
  return ringEntries(ring).some(([kid]) => kid.startsWith(DEV_KEY_MARK));
}
