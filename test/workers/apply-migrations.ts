import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Applies the real migrations in migrations/ to the test D1 before any Workers test runs.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
