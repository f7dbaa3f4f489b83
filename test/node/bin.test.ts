import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/vectors.ts";

// The npm bin entries run the TypeScript sources through tsx, as an operator would run them after `npm ci`.
function run(bin: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [path.join(ROOT, "bin", bin), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("npm bin entries", () => {
  it("wavry-relay refuses insecure mode in production, naming the setting, with exit code 2", () => {
    const result = run("wavry-relay.js", [], {
      WAVRY_ENVIRONMENT: "production",
      WAVRY_EDGE_URL: "https://edge.example.com",
      WAVRY_RELAY_PUBLIC_ADDR: "203.0.113.1:7400",
      WAVRY_RELAY_KEY_FILE: "/nonexistent/relay.key",
      WAVRY_RELAY_REGION: "eu-west",
      WAVRY_RELAY_INSECURE_DEV: "1",
    });
    expect(result.status).toBe(2);
    expect(result.stdout).toContain("WAVRY_RELAY_INSECURE_DEV");
    expect(result.stdout).toContain("WAVRY_RELAY_MASTER_PUBLIC_KEY");
  });

  it("wavry-admin prints its help, and refuses an unknown command with exit code 2", () => {
    const help = run("wavry-admin.js", ["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("certify-lease-key");
    const bad = run("wavry-admin.js", ["nope"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown command");
  });
});
