import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { DEV_LOG_HASH_KEY, DEV_TOTP_KEYS, DEV_WRAP_KEYS } from "./edge/dev-defaults.ts";

/** The admin bootstrap secret the Workers tests use (development only). */
export const TEST_BOOTSTRAP_TOKEN = "test-bootstrap-secret-0123456789-abcdefghij";
/** Where the Workers tests' alerts go, and the secret they are signed with (development only). */
export const TEST_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/wavry-alerts";
export const TEST_ALERT_WEBHOOK_SECRET = "test-alert-webhook-secret-0123456789-abcdef";

/** Workers pool: edge and Durable Object tests inside workerd, with the real D1 migrations applied. */
export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  // workerd has no file system: the shared Noise vectors reach the tests as a text binding.
  const vectorFile = path.resolve(
    import.meta.dirname,
    "../shared/vectors/noise/cacophony-25519-ChaChaPoly-BLAKE2s.json",
  );
  if (!existsSync(vectorFile)) {
    throw new Error(`missing ${vectorFile}: check out the shared/ folder beside the repository (see README)`);
  }
  const noiseVectors = readFileSync(vectorFile, "utf8");
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // The alert webhook of every other test file answers here, so deliveries succeed quietly; everything
          // else goes out as usual. test/workers/monitor.test.ts answers (and checks) its own inside the isolate.
          outboundService: (request: Request) =>
            request.url.startsWith(TEST_ALERT_WEBHOOK_URL) ? new Response("ok") : fetch(request),
          bindings: {
            TEST_MIGRATIONS: migrations,
            NOISE_VECTORS_JSON: noiseVectors,
            // Tests run the edge in development mode with a known bootstrap secret; production-mode behaviour is
            // tested by building configurations explicitly (test/workers/config.test.ts).
            WAVRY_ENVIRONMENT: "development",
            WAVRY_ADMIN_BOOTSTRAP_TOKEN: TEST_BOOTSTRAP_TOKEN,
            // Set explicitly, so a local .dev.vars (which `npm start` writes, and the pool would read) cannot
            // change what the tests see: the edge's own development defaults.
            WAVRY_TOTP_ENCRYPTION_KEYS: DEV_TOTP_KEYS,
            WAVRY_SIGNING_KEY_WRAP_KEYS: DEV_WRAP_KEYS,
            WAVRY_LOG_HASH_KEY: DEV_LOG_HASH_KEY,
            // Alerts are signed and posted to a local URL that the outbound service below answers.
            WAVRY_ALERT_WEBHOOK_URL: TEST_ALERT_WEBHOOK_URL,
            WAVRY_ALERT_WEBHOOK_SECRET: TEST_ALERT_WEBHOOK_SECRET,
          },
        },
      }),
    ],
    test: {
      name: "workers",
      include: ["test/workers/**/*.test.ts"],
      setupFiles: ["test/workers/apply-migrations.ts"],
    },
  };
});
