import { defineConfig } from "vitest/config";

/** Node pool: pure protocol code, the relay and endpoint daemons, end-to-end tests on loopback. */
export default defineConfig({
  test: {
    name: "node",
    include: ["test/protocol/**/*.test.ts", "test/node/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
