import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { RelayControlResponse, RelayHeartbeatRequest } from "../protocol/relay/registry-messages.ts";
import { AddressBlocks } from "./address-blocks.ts";
import { type Clock, systemClock } from "./clock.ts";
import { ed25519PublicKey } from "./compact-jws.ts";
import type { RelayConfig } from "./config.ts";
import { ControlLoop } from "./control-loop.ts";
import { CookieJar } from "./cookie.ts";
import { EdgeClient } from "./edge-client.ts";
import { readEnrollmentRecord, writeEnrollmentRecord } from "./enrollment-record.ts";
import { Handshakes } from "./handshakes.ts";
import { startHealthServer } from "./health-server.ts";
import { loadOrCreateIdentity } from "./identity.ts";
import { IpTable } from "./ip-table.ts";
import { LeaseKeyStore } from "./lease-keys.ts";
import { LeaseVerifier } from "./lease-verifier.ts";
import { LoadMonitor } from "./load-monitor.ts";
import { type Logger, silentLogger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { RelayStats } from "./relay-stats.ts";
import { SessionTable } from "./session-table.ts";
import { UdpRelay } from "./udp-relay.ts";

/**
 * Starts a relay node from a validated config: identity, UDP loop, health listener, and the edge conversation.
 * `wavry-relay` (main.ts) calls it once; tests and the benchmark call it in-process with their own clock, logger
 * and backoff.
 */
export interface RelayNodeOptions {
  readonly config: RelayConfig;
  readonly clock?: Clock;
  readonly log?: Logger;
  readonly fetch?: typeof fetch;
  /** Register/enroll retry backoff (default 1 s doubling to 60 s). */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
  /** How often expiry, idle and load are checked (default 1 s). */
  readonly sweepIntervalMs?: number;
  /** prom-client's process metrics on /metrics (default true). */
  readonly processMetrics?: boolean;
}

/** A running relay node. */
export interface RelayNode {
  readonly relayId: string;
  readonly udpAddress: AddressInfo;
  readonly healthAddress: AddressInfo;
  readonly stats: RelayStats;
  /** Registered at least once (or insecure development mode). */
  ready(): boolean;
  sessionCount(): number;
  stop(): Promise<void>;
}

/** Why the relay refused to start after the config was valid. */
export type RelayStartErrorCode = "enrollment-token-required" | "master-key";

/** A start-up refusal whose message names the setting to fix. */
export class RelayStartError extends Error {
  override readonly name = "RelayStartError";
  constructor(
    readonly code: RelayStartErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Reported to the registry at register (at most 32 characters). */
export const RELAY_VERSION = "wavry-relay/0.1.0";
/** Event-loop lag (p99 over a sweep interval) above which new handshakes are refused. */
const SHED_LAG_MS = 250;

/** Starts a relay node; resolves once the UDP and health listeners are bound. */
export async function startRelayNode(options: RelayNodeOptions): Promise<RelayNode> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? silentLogger;
  const { identity, created } = loadOrCreateIdentity(config.keyFile);
  log.log("info", "identity", created ? "created" : "loaded", { relayId: identity.relayId });
  const edgeOrigin = config.edgeUrl.origin;
  const enrolled = readEnrollmentRecord(config.keyFile, identity.relayId, edgeOrigin) !== null;
  const token = config.enrollmentToken;
  if (!enrolled && token === null) {
    throw new RelayStartError(
      "enrollment-token-required",
      "WAVRY_RELAY_ENROLLMENT_TOKEN: required until this relay has enrolled with this edge " +
        "(mint one with the admin API; it is used once)",
    );
  }
  for (const warning of config.warnings) log.log("warn", "config", "warning", { detail: warning });

  // Fail closed: outside insecure development mode there is always a key store, so leases are always verified.
  let keys: LeaseKeyStore | null = null;
  if (!config.insecureDev) {
    const master = config.masterPublicKey === null ? null : ed25519PublicKey(config.masterPublicKey);
    if (master === null) {
      throw new RelayStartError("master-key", "WAVRY_RELAY_MASTER_PUBLIC_KEY: not an Ed25519 public key");
    }
    keys = new LeaseKeyStore(master);
  }
  const { limits } = config;
  const stats = new RelayStats(clock.nowMs());
  const sessions = new SessionTable(limits.maxSessions);
  const blocks = new AddressBlocks();
  const load = new LoadMonitor();
  // Until the edge says "active", only insecure development mode takes sessions (there are no lease keys anyway).
  let edgeState: RelayControlResponse["state"] | "unregistered" = config.insecureDev
    ? "active"
    : "unregistered";
  const handshakes = new Handshakes({
    cookies: new CookieJar((n) => randomBytes(n)),
    verifier: new LeaseVerifier({
      relayId: identity.relayId,
      keys,
      insecureBandwidth: { kbps: limits.sessionMaxKbps, burstKb: limits.sessionMaxBurstKb },
    }),
    sessions,
    stats,
    limits,
    log,
    acceptingNewSessions: (): boolean => edgeState === "active" && !udp.shedding,
  });
  const udp = new UdpRelay({
    clock,
    log,
    stats,
    limits,
    sessions,
    ips: new IpTable(limits),
    blocks,
    handshakes,
  });

  let lastBlocks = "";
  const apply = (response: RelayControlResponse): void => {
    if (response.state !== edgeState) log.log("info", "relay_state", response.state, { previous: edgeState });
    edgeState = response.state;
    if (keys !== null) {
      const update = keys.apply(
        response.leaseKeys,
        response.revokedLeaseKeyIds,
        Math.floor(clock.nowMs() / 1000),
      );
      if (update.refused.length > 0) {
        log.log("warn", "lease_keys", "certificate_refused", {
          kids: update.refused.join(",").slice(0, 500),
        });
      }
      if (update.newlyRevoked.length > 0) {
        const unbound = udp.unbindWhere((binding) => keys.isRevoked(binding.lease.kid), "revoked");
        log.log("info", "lease_keys", "revoked", {
          kids: update.newlyRevoked.join(",").slice(0, 500),
          unbound,
        });
      }
    }
    const blockText = response.blockedCidrs.join(",");
    if (blockText !== lastBlocks) {
      lastBlocks = blockText;
      const result = blocks.apply(response.blockedCidrs);
      const unbound = udp.unbindWhere((binding) => blocks.has(binding.address, binding.family), "blocked");
      log.log("info", "address_blocks", "applied", { ...result, unbound });
    }
  };

  const heartbeat = (): RelayHeartbeatRequest => {
    const sample = load.latest;
    const tableUse = sessions.size / limits.maxSessions;
    return {
      load: Math.min(1, Math.max(0, tableUse, sample.utilization)),
      sessions: sessions.size,
      bytesForwarded: stats.forwardedBytes,
      packetsForwarded: stats.forwardedPackets,
      drops: stats.dropsByReason(),
      startedAt: stats.startedAtMs,
    };
  };

  const control = new ControlLoop({
    client: new EdgeClient({
      edgeUrl: config.edgeUrl,
      identity,
      clock,
      random: (n) => randomBytes(n),
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    }),
    log,
    jitter: Math.random,
    registration: {
      region: config.region,
      publicAddr: config.publicAddr,
      version: RELAY_VERSION,
      maxSessions: limits.maxSessions,
    },
    enrollment:
      enrolled || token === null
        ? null
        : {
            token,
            done: () =>
              writeEnrollmentRecord(config.keyFile, {
                relayId: identity.relayId,
                edgeOrigin,
                enrolledAt: new Date(clock.nowMs()).toISOString(),
              }),
          },
    heartbeat,
    apply,
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
  });

  const ready = () => config.insecureDev || control.registered;
  const registry = createMetrics(
    {
      stats,
      sessions: () => sessions.size,
      boundPeers: () => {
        let peers = 0;
        for (const session of sessions)
          peers += (session.host === null ? 0 : 1) + (session.client === null ? 0 : 1);
        return peers;
      },
      trustedLeaseKeys: () => keys?.size ?? 0,
      blockedRanges: () => blocks.size,
      edgeConnected: () => (control.edgeConnected ? 1 : 0),
      shedding: () => (udp.shedding ? 1 : 0),
    },
    options.processMetrics ?? true,
  );

  const udpAddress = await udp.listen(config.listen.host, config.listen.port);
  let health: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    health = await startHealthServer(config.healthListen.host, config.healthListen.port, ready, registry);
  } catch (error) {
    await udp.close();
    load.stop();
    throw error;
  }
  const sweep = setInterval(() => {
    const sample = load.sample();
    const shedding = sample.lagP99Ms > SHED_LAG_MS;
    if (shedding !== udp.shedding)
      log.log("warn", "load_shedding", shedding ? "on" : "off", { lagMs: sample.lagP99Ms });
    udp.shedding = shedding;
    udp.sweep(clock.nowMs());
  }, options.sweepIntervalMs ?? 1000);
  sweep.unref();
  control.start();
  // The listen addresses go through the log helper like every address (hashed); the ports stay readable.
  log.log("info", "relay_start", "listening", {
    relayId: identity.relayId,
    udp: `${udpAddress.address}:${udpAddress.port}`,
    udpPort: udpAddress.port,
    health: `${health.address.address}:${health.address.port}`,
    healthPort: health.address.port,
    insecureDev: config.insecureDev,
  });

  let stopped: Promise<void> | null = null;
  return {
    relayId: identity.relayId,
    udpAddress,
    healthAddress: health.address,
    stats,
    ready,
    sessionCount: () => sessions.size,
    stop() {
      stopped ??= (async () => {
        control.stop();
        clearInterval(sweep);
        load.stop();
        await Promise.all([udp.close(), health.close()]);
        log.log("info", "relay_stop", "stopped", { sessions: sessions.size });
      })();
      return stopped;
    },
  };
}
