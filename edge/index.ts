import { createApp } from "./app.ts";
import type { EdgeBindings } from "./env.ts";
import { scheduled } from "./scheduled.ts";

export { AuditLog } from "../durable/audit-log.ts";
export { Monitor } from "../durable/monitor.ts";
export { RateLimiter } from "../durable/rate-limiter.ts";
export { RelayRegistry } from "../durable/relay-registry.ts";
export { SignalingRoom } from "../durable/signaling-room.ts";

const app = createApp();

/**
 * The Worker entry: the Hono app's fetch handler, the Cron Trigger's scheduled handler (key rotation), and the
 * Durable Object classes wrangler binds.
 */
export default {
  fetch: app.fetch,
  scheduled,
} satisfies ExportedHandler<EdgeBindings>;
