/**
 * Development-only defaults for the edge's key rings and log hash key, so `wrangler dev` and the tests run with no
 * hand editing. They are public (in this file), which is why production refuses to start with them (edge/env.ts).
 * No imports: the Workers test configuration (run by Node) reads them too.
 */
export const DEV_TOTP_KEYS = "dev-totp-1:ZGV2ZWxvcG1lbnQtb25seS10b3RwLWtleS0wMDAwMDA";
export const DEV_WRAP_KEYS = "dev-wrap-1:ZGV2ZWxvcG1lbnQtb25seS13cmFwLWtleS0wMDAwMDA";
export const DEV_LOG_HASH_KEY = "development-only-log-hash-key-not-secret";
