import { createApp } from "./app.ts";

export { AuditLog } from "../durable/audit-log.ts";
export { RateLimiter } from "../durable/rate-limiter.ts";

/** The Worker entry: the Hono app's fetch handler, and the Durable Object classes wrangler binds. */
export default createApp();
