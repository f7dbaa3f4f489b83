import { defineConfig } from "drizzle-kit";

/** `npm run db:generate` writes SQL migrations for D1 from edge/db/schema.ts. */
export default defineConfig({
  dialect: "sqlite",
  schema: "./edge/db/schema.ts",
  out: "./migrations",
});
