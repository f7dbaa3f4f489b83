import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { RELAY_DROP_REASONS } from "../protocol/relay/registry-messages.ts";
import { REJECT_LABELS, type RelayStats } from "./relay-stats.ts";

/**
 * Prometheus metrics for `/metrics`, on a registry of our own (never prom-client's global one). The counters are
 * read from {@link RelayStats} at scrape time, so the forwarding path never touches prom-client.
 */
export interface MetricsSources {
  readonly stats: RelayStats;
  readonly sessions: () => number;
  readonly boundPeers: () => number;
  readonly trustedLeaseKeys: () => number;
  readonly blockedRanges: () => number;
  /** 1 while the last register/heartbeat succeeded. */
  readonly edgeConnected: () => number;
  readonly shedding: () => number;
}

/** Builds the registry. `defaults` adds prom-client's process metrics (memory, event-loop lag, CPU). */
export function createMetrics(sources: MetricsSources, defaults = true): Registry {
  const registry = new Registry();
  const { stats } = sources;
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });

  counter("wavry_relay_forwarded_packets_total", "FORWARD datagrams relayed", () => stats.forwardedPackets);
  counter(
    "wavry_relay_forwarded_bytes_total",
    "Bytes of FORWARD datagrams relayed",
    () => stats.forwardedBytes,
  );
  counter(
    "wavry_relay_leases_accepted_total",
    "LEASE_PRESENTs answered with LEASE_ACK",
    () => stats.leasesAccepted,
  );
  new Counter({
    name: "wavry_relay_drops_total",
    help: "Datagrams dropped, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [index, reason] of RELAY_DROP_REASONS.entries())
        this.inc({ reason }, stats.drops[index] ?? 0);
    },
  });
  new Counter({
    name: "wavry_relay_lease_rejects_total",
    help: "LEASE_REJECT frames sent, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, reason] of REJECT_LABELS) this.inc({ reason }, stats.rejects[code] ?? 0);
    },
  });
  new Counter({
    name: "wavry_relay_unbinds_total",
    help: "Peer bindings removed, by cause",
    labelNames: ["cause"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [cause, count] of Object.entries(stats.unbinds)) this.inc({ cause }, count);
    },
  });
  gauge("wavry_relay_sessions", "Sessions in the routing table", sources.sessions);
  gauge("wavry_relay_bound_peers", "Peers bound to a session", sources.boundPeers);
  gauge("wavry_relay_trusted_lease_keys", "Certified, unrevoked lease keys", sources.trustedLeaseKeys);
  gauge("wavry_relay_blocked_ranges", "Address ranges blocked by the edge", sources.blockedRanges);
  gauge(
    "wavry_relay_edge_connected",
    "1 while the last exchange with the edge succeeded",
    sources.edgeConnected,
  );
  gauge("wavry_relay_shedding", "1 while new handshakes are refused to protect forwarding", sources.shedding);
  if (defaults) collectDefaultMetrics({ register: registry, prefix: "wavry_relay_" });
  return registry;
}
