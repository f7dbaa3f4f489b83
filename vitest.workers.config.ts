import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

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
        miniflare: { bindings: { TEST_MIGRATIONS: migrations, NOISE_VECTORS_JSON: noiseVectors } },
      }),
    ],
    test: {
      name: "workers",
      include: ["test/workers/**/*.test.ts"],
      setupFiles: ["test/workers/apply-migrations.ts"],
    },
  };
});
