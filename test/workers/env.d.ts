// Bindings visible to Workers tests: the edge's own (wrangler.toml) plus test-only ones from vitest.workers.config.ts.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../edge/index.ts");
    durableNamespaces: "RateLimiter" | "AuditLog" | "RelayRegistry" | "SignalingRoom" | "Monitor";
  }
  interface Env {
    DB: D1Database;
    RATE_LIMITER: DurableObjectNamespace<import("../../durable/rate-limiter.ts").RateLimiter>;
    AUDIT_LOG: DurableObjectNamespace<import("../../durable/audit-log.ts").AuditLog>;
    RELAY_REGISTRY: DurableObjectNamespace<import("../../durable/relay-registry.ts").RelayRegistry>;
    SIGNALING: DurableObjectNamespace<import("../../durable/signaling-room.ts").SignalingRoom>;
    MONITOR: DurableObjectNamespace<import("../../durable/monitor.ts").Monitor>;
    WAVRY_ENVIRONMENT: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    /** The shared cacophony vector file, as text (workerd has no file system). */
    NOISE_VECTORS_JSON: string;
  }
}
