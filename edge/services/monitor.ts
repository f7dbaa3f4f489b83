import type { Context } from "hono";
import type { MonitorEvent } from "../../durable/monitor/rules.ts";
import type { Monitor } from "../../durable/monitor.ts";
import type { RelayHeartbeatRequest } from "../../protocol/relay/registry-messages.ts";
import type { AppEnv } from "../app-env.ts";
import { logEvent } from "../log.ts";
import { formatIp, parseIp, unmapIPv4 } from "../net/ip.ts";
import { keyedHash } from "../security/keyed-hash.ts";

/**
 * The edge's side of monitoring (issue 6): one-line reports from routes and Durable Objects to the Monitor object.
 * A report never blocks or fails the request that makes it: the call runs under `waitUntil`, and any error is
 * logged and dropped (monitoring must not become a way to break the service).
 */

/** Name of the one Monitor object. */
export const MONITOR_NAME = "global";

export function monitorStub(env: { readonly MONITOR: DurableObjectNamespace<Monitor> }) {
  return env.MONITOR.get(env.MONITOR.idFromName(MONITOR_NAME));
}

/**
 * The /24 (IPv4, IPv4-mapped included) or /48 (IPv6) holding `address`, as a keyed hash: recognisable across
 * events without being readable. Null for anything that is not an address.
 */
export async function addressRange(logHashKey: string, address: string): Promise<string | null> {
  const parsed = parseIp(address);
  if (parsed === null) return null;
  const bytes = unmapIPv4(parsed);
  const keep = bytes.length === 4 ? 3 : 6;
  const prefix = new Uint8Array(bytes.length);
  prefix.set(bytes.subarray(0, keep));
  return keyedHash(logHashKey, `range:${formatIp(prefix)}/${keep * 8}`);
}

/** Reports events from a Durable Object or other code without a request. Never throws. */
export async function reportEvents(
  env: { readonly MONITOR: DurableObjectNamespace<Monitor> },
  events: readonly MonitorEvent[],
): Promise<void> {
  if (events.length === 0) return;
  try {
    await monitorStub(env).report(events);
  } catch (error) {
    logEvent("warn", "monitor", "report", "failed", {
      error: error instanceof Error ? error.name : "non-error",
      events: events.length,
    });
  }
}

/**
 * Reports events from a request, with the keyed hash of the client's address range passed to `build`. Returns at
 * once; the work runs under the request's `waitUntil`.
 */
export function monitor(
  c: Context<AppEnv>,
  build: (range: string | null) => MonitorEvent | readonly MonitorEvent[],
): void {
  const task = (async () => {
    const address = c.get("clientAddress");
    const range = address === null ? null : await addressRange(c.get("config").logHashKey, address);
    const built = build(range);
    await reportEvents(c.env, "kind" in built ? [built] : built);
  })().catch(() => undefined);
  try {
    c.executionCtx.waitUntil(task);
  } catch {
    // No execution context (a test calling app.request): the task runs on regardless.
  }
}

/**
 * Reports an admin request once its status is known (from the audit middleware): every request feeds the admin
 * rules; a 401 that presented a credential also counts as an auth failure of that token (or of nobody, when the
 * token is unknown).
 */
export function monitorAdminRequest(c: Context<AppEnv>, status: number, tokenId: string | null): void {
  const at = Date.now();
  const method = c.req.method;
  const presented = c.req.header("authorization") !== undefined;
  monitor(c, (range) => {
    const events: MonitorEvent[] = [{ kind: "admin_request", at, tokenId, range, method, status }];
    if (status === 401 && presented) {
      events.push({
        kind: "auth_failure",
        at,
        source: "admin_token",
        account: tokenId === null ? null : `admin:${tokenId}`,
        range,
      });
    }
    return events;
  });
}

/** A relay heartbeat as the monitor counts it: sessions, traffic and lease rejections (`invalid_lease` drops). */
export function heartbeatEvent(relayId: string, report: RelayHeartbeatRequest, at: number): MonitorEvent {
  return {
    kind: "relay_heartbeat",
    at,
    relayId,
    sessions: report.sessions,
    bytesForwarded: report.bytesForwarded,
    leaseRejections: report.drops.invalid_lease ?? 0,
    startedAt: report.startedAt,
  };
}
