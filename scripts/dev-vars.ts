/**
 * Dev bootstrap: writes `.dev.vars` (git-ignored) with fresh random development secrets when it is missing, so
 * `npm start` works with no hand editing. Never used for production: there, secrets come from
 * `wrangler secret put` and the edge refuses development values.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

/** Ensures `.dev.vars` exists; returns its path. Existing files are never overwritten. */
export function ensureDevVars(): string {
  const file = path.join(ROOT, ".dev.vars");
  if (existsSync(file)) return file;
  const template = readFileSync(path.join(ROOT, ".dev.vars.example"), "utf8");
  const key = () => randomBytes(32).toString("base64url");
  const filled = template
    .replace(
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN=change-me",
      `WAVRY_ADMIN_BOOTSTRAP_TOKEN=${randomBytes(32).toString("base64url")}`,
    )
    .replace(
      "WAVRY_TOTP_ENCRYPTION_KEYS=local-totp-1:change-me",
      `WAVRY_TOTP_ENCRYPTION_KEYS=local-totp-1:${key()}`,
    )
    .replace(
      "WAVRY_SIGNING_KEY_WRAP_KEYS=local-wrap-1:change-me",
      `WAVRY_SIGNING_KEY_WRAP_KEYS=local-wrap-1:${key()}`,
    )
    .replace("WAVRY_LOG_HASH_KEY=change-me", `WAVRY_LOG_HASH_KEY=${randomBytes(32).toString("base64url")}`);
  writeFileSync(file, filled, { mode: 0o600 });
  return file;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${ensureDevVars()}\n`);
}
