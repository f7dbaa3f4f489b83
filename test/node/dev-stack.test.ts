import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { type DevStack, startDevStack } from "../../scripts/dev-stack.ts";
import { devStackPorts, writeTestDevVars } from "../support/dev-stack-fixture.ts";
import { ROOT } from "../support/vectors.ts";

/**
 * `npm start`'s bootstrap end to end, in a temporary state directory on fresh ports: the edge, the relay, two
 * enrolled device homes pinning each other; then a second run on the same state reuses it; stop() leaves no
 * process behind.
 */
const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), "wavry-dev-stack-"));
const stateDir = path.join(dir, "state");
const stacks: DevStack[] = [];

afterAll(async () => {
  for (const stack of stacks) await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function wavry(stack: DevStack, home: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [path.join(ROOT, "bin/wavry.js"), ...args], {
    env: { ...process.env, ...stack.envFor(home) },
  });
  return stdout;
}

describe("dev stack", () => {
  it("brings up edge, relay and two enrolled, mutually pinned devices; reuses them; stops cleanly", async () => {
    // Settings of our own, so the developer's .dev.vars is neither needed nor touched.
    const devVarsFile = writeTestDevVars(dir).file;
    const lines: string[] = [];
    const first = await startDevStack({
      stateDir,
      devVarsFile,
      ...(await devStackPorts()),
      say: (l) => lines.push(l),
    });
    stacks.push(first);
    expect((await fetch(`${first.edgeUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${first.relayHealthUrl}/ready`)).status).toBe(200);
    for (const [self, peer] of [
      [first.host, first.client],
      [first.client, first.host],
    ] as const) {
      const status = await wavry(first, self.home, ["status"]);
      expect(status).toMatch(/^Enrolled:\s+yes/m);
      expect(status).toMatch(/^Trusted peers: 1$/m);
      expect(await wavry(first, self.home, ["trust", "list"])).toContain(peer.deviceId);
    }
    expect(first.host.deviceId).not.toBe(first.client.deviceId);
    expect(statSync(path.join(stateDir, "relay-master.key")).mode & 0o777).toBe(0o600);
    expect(lines.join("\n")).toMatch(/creating a lease key/);
    await first.stop();
    for (const group of first.processGroups) expect(groupAlive(group)).toBe(false);

    // A second run: same state, other ports; nothing is created again.
    lines.length = 0;
    const second = await startDevStack({
      stateDir,
      devVarsFile,
      ...(await devStackPorts()),
      say: (l) => lines.push(l),
    });
    stacks.push(second);
    expect(second.host).toEqual(first.host);
    expect(second.client).toEqual(first.client);
    expect(lines.join("\n")).not.toMatch(/creating|enrolling|lease key/);
    expect((await fetch(`${second.relayHealthUrl}/ready`)).status).toBe(200);
    await second.stop();
    for (const group of second.processGroups) expect(groupAlive(group)).toBe(false);
  }, 120_000);
});
