import { z } from "zod";
import { type HostPort, isLoopback, parseHostPort } from "./address.ts";

/**
 * The one place `wavry-relay` reads its environment. Everything is validated once at start into a
 * {@link RelayConfig}; a bad setting stops the relay with a message naming the setting (never its value).
 * OPERATIONS.md ("Relay nodes") documents every variable.
 */

export type Environment = "development" | "production";

/** Limits the relay enforces (DESIGN.md: per-IP, per-session and per-peer limits; bounded tables). */
export interface RelayLimits {
  /** Sessions the table holds; a LEASE_PRESENT for a new session beyond it gets SESSION_FULL. */
  readonly maxSessions: number;
  /** Datagrams per second from one source IP, any type (token bucket)... */
  readonly ipPacketsPerSec: number;
  /** ...and the burst it may send at once. */
  readonly ipPacketBurst: number;
  /** HELLO and LEASE_PRESENT per second from one source IP (they cost HMAC and signature checks)... */
  readonly ipHandshakesPerSec: number;
  /** ...and their burst. */
  readonly ipHandshakeBurst: number;
  /** HELLO and LEASE_PRESENT per second from everyone together: the load-shedding budget. */
  readonly handshakesPerSec: number;
  /** Source IPs tracked for rate limits at once (the oldest entry is recycled beyond it). */
  readonly maxTrackedIps: number;
  /** Ceiling on a peer's sustained rate, whatever its lease grants (kilobits per second). */
  readonly sessionMaxKbps: number;
  /** Ceiling on a peer's burst, whatever its lease grants (kilobytes). */
  readonly sessionMaxBurstKb: number;
  /** A session with no traffic for this long is dropped. */
  readonly sessionIdleSecs: number;
}

/** The validated relay configuration (see OPERATIONS.md for each variable). */
export interface RelayConfig {
  readonly environment: Environment;
  /** The edge origin (`https://…` in production), no path. */
  readonly edgeUrl: URL;
  readonly listen: HostPort;
  /** `host:port` peers dial, as registered with the edge. */
  readonly publicAddr: string;
  readonly healthListen: HostPort;
  readonly keyFile: string;
  readonly enrollmentToken: string | null;
  readonly region: string;
  /** The pinned relay master public key (raw Ed25519); null only in insecure development mode. */
  readonly masterPublicKey: Uint8Array | null;
  /** Development only: leases are not verified (refused in production). */
  readonly insecureDev: boolean;
  /**
   * Keys the hashes of peer addresses in the log (`WAVRY_RELAY_LOG_HASH_KEY`); null means a random key per process,
   * so hashes cannot be matched across restarts or with other relays.
   */
  readonly logHashKey: string | null;
  readonly limits: RelayLimits;
  /** Settings that are allowed but unusual (logged at start). */
  readonly warnings: readonly string[];
}

/** A config, or every problem found, each starting with the setting's name. */
export type ConfigResult =
  | { readonly ok: true; readonly config: RelayConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,10}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .optional()
    .transform((v) => v ?? fallback);

const hostPort = (fallback: string | undefined) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const text = v ?? fallback;
      const parsed = text === undefined ? null : parseHostPort(text);
      if (parsed === null) {
        ctx.addIssue({
          code: "custom",
          message:
            text === undefined ? "required (ip:port)" : "must be ip:port (IPv4, or [IPv6] in brackets)",
        });
        return z.NEVER;
      }
      return parsed;
    });

const schema = z.object({
  // Safe default, as on the edge: anything not explicitly development is production.
  WAVRY_ENVIRONMENT: z.enum(["development", "production"]).optional().default("production"),
  WAVRY_EDGE_URL: z.string({ message: "required (the edge origin, https://…)" }).max(2000),
  WAVRY_RELAY_LISTEN: hostPort("0.0.0.0:7400"),
  WAVRY_RELAY_PUBLIC_ADDR: z
    .string({ message: "required (host:port peers dial)" })
    .max(64)
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be host:port or [ipv6]:port"),
  WAVRY_RELAY_HEALTH_LISTEN: hostPort("127.0.0.1:9090"),
  WAVRY_RELAY_KEY_FILE: z.string({ message: "required (path of the relay's identity key)" }).min(1).max(4096),
  WAVRY_RELAY_ENROLLMENT_TOKEN: z
    .string()
    .min(16, "must be 16 to 128 characters")
    .max(128, "must be 16 to 128 characters")
    .optional(),
  WAVRY_RELAY_REGION: z
    .string({ message: "required (a region name such as eu-west)" })
    .regex(/^[a-z0-9-]{1,32}$/, "must be 1-32 characters of a-z, 0-9 and -"),
  WAVRY_RELAY_MASTER_PUBLIC_KEY: z.string().max(200).optional(),
  WAVRY_RELAY_LOG_HASH_KEY: z
    .string()
    .min(32, "must be 32 to 512 characters (a random secret)")
    .max(512, "must be 32 to 512 characters (a random secret)")
    .optional(),
  WAVRY_RELAY_INSECURE_DEV: z
    .enum(["0", "1"], { message: "must be 0 or 1" })
    .optional()
    .transform((v) => v === "1"),
  WAVRY_RELAY_MAX_SESSIONS: int(10_000, 1, 1_000_000),
  WAVRY_RELAY_IP_PACKETS_PER_SEC: int(20_000, 1, 100_000_000),
  WAVRY_RELAY_IP_PACKET_BURST: int(40_000, 1, 100_000_000),
  WAVRY_RELAY_IP_HANDSHAKES_PER_SEC: int(10, 1, 1_000_000),
  WAVRY_RELAY_IP_HANDSHAKE_BURST: int(20, 1, 1_000_000),
  WAVRY_RELAY_HANDSHAKES_PER_SEC: int(2_000, 1, 10_000_000),
  WAVRY_RELAY_MAX_TRACKED_IPS: int(100_000, 16, 10_000_000),
  WAVRY_RELAY_SESSION_MAX_KBPS: int(100_000, 64, 100_000_000),
  WAVRY_RELAY_SESSION_MAX_BURST_KB: int(4_000, 16, 10_000_000),
  WAVRY_RELAY_SESSION_IDLE_SECS: int(60, 5, 3_600),
});

/** The variables {@link loadConfig} reads (documented in OPERATIONS.md). */
export const RELAY_ENV_NAMES: readonly string[] = Object.keys(schema.shape);

/** base64url of exactly 32 bytes, canonical (43 characters, the last one carrying 4 zero bits). */
function parseMasterKey(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(text)) return null;
  const bytes = Buffer.from(text, "base64url");
  return bytes.length === 32 ? new Uint8Array(bytes) : null;
}

/** Validates the environment once. An empty value counts as unset (systemd `Environment=X=` clears a value). */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): ConfigResult {
  const raw: Record<string, string> = {};
  for (const name of RELAY_ENV_NAMES) {
    const value = env[name];
    if (typeof value === "string" && value.trim() !== "") raw[name] = value.trim();
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) };
  }
  const v = parsed.data;
  const production = v.WAVRY_ENVIRONMENT === "production";
  const problems: string[] = [];
  const warnings: string[] = [];

  let edgeUrl: URL | null = null;
  try {
    edgeUrl = new URL(v.WAVRY_EDGE_URL);
  } catch {
    problems.push("WAVRY_EDGE_URL: not a URL");
  }
  if (edgeUrl !== null) {
    if (edgeUrl.protocol !== "https:" && edgeUrl.protocol !== "http:") {
      problems.push("WAVRY_EDGE_URL: must be an https URL");
    } else if (production && edgeUrl.protocol !== "https:") {
      problems.push("WAVRY_EDGE_URL: must be https when WAVRY_ENVIRONMENT=production");
    }
    // Requests are signed over their path, so the edge must see exactly the path we sign: an origin, no prefix.
    if (edgeUrl.pathname !== "/" || edgeUrl.search !== "" || edgeUrl.hash !== "" || edgeUrl.username !== "") {
      problems.push(
        "WAVRY_EDGE_URL: must be an origin only (scheme://host[:port]), without path or credentials",
      );
    }
  }

  if (production && v.WAVRY_RELAY_INSECURE_DEV) {
    problems.push(
      "WAVRY_RELAY_INSECURE_DEV: insecure mode (no lease verification) is refused when WAVRY_ENVIRONMENT=production",
    );
  }
  let masterPublicKey: Uint8Array | null = null;
  if (v.WAVRY_RELAY_MASTER_PUBLIC_KEY !== undefined) {
    masterPublicKey = parseMasterKey(v.WAVRY_RELAY_MASTER_PUBLIC_KEY);
    if (masterPublicKey === null) {
      problems.push(
        "WAVRY_RELAY_MASTER_PUBLIC_KEY: malformed (expected the base64url Ed25519 public key printed by wavry-admin, 43 characters)",
      );
    }
  } else if (production || !v.WAVRY_RELAY_INSECURE_DEV) {
    problems.push(
      "WAVRY_RELAY_MASTER_PUBLIC_KEY: required (the relay master public key that certifies lease keys)",
    );
  }
  if (v.WAVRY_RELAY_IP_PACKET_BURST < v.WAVRY_RELAY_IP_PACKETS_PER_SEC / 100) {
    problems.push("WAVRY_RELAY_IP_PACKET_BURST: must be at least 1/100 of WAVRY_RELAY_IP_PACKETS_PER_SEC");
  }
  if (!isLoopback(v.WAVRY_RELAY_HEALTH_LISTEN.host)) {
    warnings.push(
      "WAVRY_RELAY_HEALTH_LISTEN: not a loopback address; firewall the port (metrics reveal load and counters)",
    );
  }
  if (v.WAVRY_RELAY_INSECURE_DEV) warnings.push("WAVRY_RELAY_INSECURE_DEV: leases are NOT verified");

  if (problems.length > 0 || edgeUrl === null) return { ok: false, problems };
  return {
    ok: true,
    config: {
      environment: v.WAVRY_ENVIRONMENT,
      edgeUrl,
      listen: v.WAVRY_RELAY_LISTEN,
      publicAddr: v.WAVRY_RELAY_PUBLIC_ADDR,
      healthListen: v.WAVRY_RELAY_HEALTH_LISTEN,
      keyFile: v.WAVRY_RELAY_KEY_FILE,
      enrollmentToken: v.WAVRY_RELAY_ENROLLMENT_TOKEN ?? null,
      region: v.WAVRY_RELAY_REGION,
      masterPublicKey,
      insecureDev: v.WAVRY_RELAY_INSECURE_DEV,
      logHashKey: v.WAVRY_RELAY_LOG_HASH_KEY ?? null,
      limits: {
        maxSessions: v.WAVRY_RELAY_MAX_SESSIONS,
        ipPacketsPerSec: v.WAVRY_RELAY_IP_PACKETS_PER_SEC,
        ipPacketBurst: v.WAVRY_RELAY_IP_PACKET_BURST,
        ipHandshakesPerSec: v.WAVRY_RELAY_IP_HANDSHAKES_PER_SEC,
        ipHandshakeBurst: v.WAVRY_RELAY_IP_HANDSHAKE_BURST,
        handshakesPerSec: v.WAVRY_RELAY_HANDSHAKES_PER_SEC,
        maxTrackedIps: v.WAVRY_RELAY_MAX_TRACKED_IPS,
        sessionMaxKbps: v.WAVRY_RELAY_SESSION_MAX_KBPS,
        sessionMaxBurstKb: v.WAVRY_RELAY_SESSION_MAX_BURST_KB,
        sessionIdleSecs: v.WAVRY_RELAY_SESSION_IDLE_SECS,
      },
      warnings,
    },
  };
}
