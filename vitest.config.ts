import { defineConfig } from "vitest/config";

/** `npm test` runs both projects: the Node pool and the Workers pool (workerd). */
export default defineConfig({
  test: {
    projects: ["./vitest.node.config.ts", "./vitest.workers.config.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
