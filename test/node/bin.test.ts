import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DAEMON_NODE_FLAGS } from "../../scripts/node-flags.ts";
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

  it("the daemons, the relay and bench:e2e start with the same V8 flags, and they cap the young generation", () => {
    const flags = DAEMON_NODE_FLAGS.join(" ");
    const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");
    for (const bin of ["bin/wavry.js", "bin/wavry-relay.js"])
      expect(read(bin).split("\n")[0], bin).toBe(`#!/usr/bin/env -S node ${flags}`);
    expect(JSON.parse(read("package.json")).scripts["bench:e2e"]).toBe(
      `node ${flags} --import tsx bench/e2e.ts`,
    );
    expect(read("OPERATIONS.md")).toContain(
      `ExecStart=/usr/bin/node ${flags} --import tsx relay-node/main.ts`,
    );
    // The largest young generation a process reaches while it allocates short-lived objects at a high rate.
    const probe = [
      "const v8 = await import('node:v8');",
      "const keep = []; let max = 0;",
      "for (let i = 0; i < 2e6; i++) {",
      "  keep[i % 5000] = { a: i, b: [i, i + 1], c: 'x' + i };",
      "  if (i % 10000 === 0) max = Math.max(max, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);",
      "}",
      "console.log(max);",
    ].join("\n");
    const largest = (nodeFlags: readonly string[]) => {
      const result = spawnSync(process.execPath, [...nodeFlags, "--input-type=module", "-e", probe], {
        encoding: "utf8",
        timeout: 30_000,
      });
      expect(result.status, result.stderr).toBe(0);
      return Number(result.stdout.trim());
    };
    const MiB = 1024 * 1024;
    expect(largest([])).toBeGreaterThanOrEqual(8 * MiB);
    expect(largest(DAEMON_NODE_FLAGS)).toBeLessThanOrEqual(4 * MiB);
  });
});
