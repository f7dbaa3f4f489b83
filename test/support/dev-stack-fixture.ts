import { writeFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "./local-edge.ts";

/** The development secrets a test's own dev stack runs with (fresh for every call). */
export interface TestDevVars {
  /** The 0600 file to pass as `devVarsFile`, so the developer's .dev.vars is neither needed nor touched. */
  readonly file: string;
  /** Each secret's value, as written (tests that look for secrets in output read them here). */
  readonly settings: Readonly<
    Record<
      | "WAVRY_ADMIN_BOOTSTRAP_TOKEN"
      | "WAVRY_TOTP_ENCRYPTION_KEYS"
      | "WAVRY_SIGNING_KEY_WRAP_KEYS"
      | "WAVRY_LOG_HASH_KEY",
      string
    >
  >;
}

/** Writes `dir/dev.vars` with fresh random development secrets. */
export function writeTestDevVars(dir: string): TestDevVars {
  const random = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  const settings = {
    WAVRY_ADMIN_BOOTSTRAP_TOKEN: random(),
    WAVRY_TOTP_ENCRYPTION_KEYS: `t1:${random()}`,
    WAVRY_SIGNING_KEY_WRAP_KEYS: `w1:${random()}`,
    WAVRY_LOG_HASH_KEY: random(),
  };
  const file = path.join(dir, "dev.vars");
  const lines = Object.entries(settings).map(([name, value]) => `${name}=${value}`);
  writeFileSync(file, `WAVRY_ENVIRONMENT=development\n${lines.join("\n")}\n`, { mode: 0o600 });
  return { file, settings };
}

/** Free loopback ports for a dev stack's edge, inspector, relay and relay health endpoint. */
export async function devStackPorts() {
  return {
    edgePort: await freePort(),
    inspectorPort: await freePort(),
    relayPort: await freePort(),
    relayHealthPort: await freePort(),
  };
}
