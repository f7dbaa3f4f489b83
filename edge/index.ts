import { createApp } from "./app.ts";

export { AuditLog } from "../durable/audit-log.ts";
export { RateLimiter } from "../durable/rate-limiter.ts";
export { RelayRegistry } from "../durable/relay-registry.ts";
export { SignalingRoom } from "../durable/signaling-room.ts";

/** The Worker entry: the Hono app's fetch handler, and the Durable Object classes wrangler binds. */
export default createApp();
