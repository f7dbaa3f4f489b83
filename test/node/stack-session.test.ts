import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevStack, startDevStack } from "../../scripts/dev-stack.ts";
import { type SessionPair, startSessionPair } from "../../scripts/session-pair.ts";
import { devStackPorts, writeTestDevVars } from "../support/dev-stack-fixture.ts";

/**
 * The whole stack as `npm start` runs it, in a temporary state directory on fresh ports: the dev-stack bootstrap,
 * then `wavry host` and `wavry connect --duration 6 --record file:…` as child processes (scripts/session-pair.ts),
 * once over the direct path and once through the relay. The recording must decode with ffmpeg and hold about as
 * many frames as the client says it wrote.
 */
const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const WAVRY = path.join(ROOT, "bin/wavry.js");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const dir = mkdtempSync(path.join(tmpdir(), "wavry-stack-session-"));
let stack: DevStack;
const pairs: SessionPair[] = [];

beforeAll(async () => {
  const devVarsFile = writeTestDevVars(dir).file;
  stack = await startDevStack({
    stateDir: path.join(dir, "state"),
    devVarsFile,
    ...(await devStackPorts()),
  });
}, 90_000);

afterAll(async () => {
  for (const pair of pairs) await pair.stop();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function session(
  sessionPath: "direct" | "relay",
  expected: { path: "direct" | "relay"; hostArgs?: string[]; name?: string } = { path: sessionPath },
) {
  const recordPath = path.join(dir, `${expected.name ?? sessionPath}.h264`);
  const lines: string[] = [];
  const pair = await startSessionPair(stack, {
    path: sessionPath,
    ...(expected.hostArgs !== undefined && { hostArgs: expected.hostArgs }),
    viewer: false,
    durationSecs: 6,
    recordPath,
    onLine: (source, line) => lines.push(`[${source}] ${line}`),
  });
  pairs.push(pair);
  const code = await pair.clientExited;
  await pair.stop();
  const log = lines.join("\n");
  expect(code, log).toBe(0);
  expect(pair.sessionPath(), log).toBe(expected.path);
  expect(log).toMatch(/\[host\] .*session established/);
  // Both sides show the same short authentication string (nobody in the middle of this handshake).
  const sas = (who: string) =>
    new RegExp(`\\[${who}\\] .*short authentication string: (\\d{3} \\d{3})`).exec(log)?.[1];
  expect(sas("host"), log).toMatch(/^\d{3} \d{3}$/);
  expect(sas("connect")).toBe(sas("host"));
  const recorded = Number(/recorded=(\d+)/.exec(log)?.[1] ?? "0");
  expect(recorded, log).toBeGreaterThan(0);
  expect(statSync(recordPath).size).toBeGreaterThan(0);

  await run("ffmpeg", ["-v", "error", "-i", recordPath, "-f", "null", "-"]);
  const { stdout } = await run("ffprobe", [
    "-v",
    "error",
    "-count_frames",
    "-select_streams",
    "v:0",
    "-show_entries",
    "stream=nb_read_frames",
    "-of",
    "csv=p=0",
    recordPath,
  ]);
  const frames = Number(stdout.trim());
  expect(frames).toBeGreaterThan(0);
  // One access unit is one picture; allow a little slack for a unit cut at the end of the run.
  expect(Math.abs(frames - recorded)).toBeLessThanOrEqual(Math.max(2, recorded * 0.05));
  return log;
}

/** Runs one `wavry` command in `home` to its end: exit code and all output. */
async function wavry(home: string, args: string[]): Promise<{ code: number; out: string }> {
  const env = { ...process.env, ...stack.envFor(home), WAVRY_ALLOW_INSECURE_SIGNALING: "1" };
  try {
    const { stdout, stderr } = await run(process.execPath, [WAVRY, ...args], {
      cwd: ROOT,
      env,
      timeout: 30_000,
    });
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : 1,
      out: `${failed.stdout}${failed.stderr}`,
    };
  }
}

/** One SQL statement on the running edge's local D1 (what a compromised edge could serve). */
async function d1(sql: string): Promise<void> {
  await run(
    process.execPath,
    [
      WRANGLER,
      "d1",
      "execute",
      "DB",
      "--local",
      "--persist-to",
      path.join(dir, "state", "d1"),
      "--command",
      sql,
    ],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, timeout: 60_000 },
  );
}

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("npm start: host and client through the dev stack", () => {
  it("streams over the direct path into a recording ffmpeg decodes", async () => {
    await session("direct");
  }, 40_000);

  it("streams through the relay into a recording ffmpeg decodes", async () => {
    await session("relay");
  }, 40_000);

  it("falls back to a relay assigned mid-session when the host publishes no direct address", async () => {
    // The client asks for the direct path; the host (--relay-only) offers none, so the client asks for a relay
    // after accepting, and both sides take the relay that signaling assigns after their links started.
    const log = await session("direct", { path: "relay", hostArgs: ["--relay-only"], name: "fallback" });
    expect(log).toMatch(/\[connect\] .*asking for a relay/);
    expect(log).toMatch(/\[host\] .*relay assigned/);
  }, 40_000);

  it("refuses a second session as busy while one runs, and the first carries on", async () => {
    const lines: string[] = [];
    const first = await startSessionPair(stack, {
      path: "direct",
      viewer: false,
      durationSecs: 8,
      onLine: (source, line) => lines.push(`[${source}] ${line}`),
    });
    pairs.push(first);
    await until(() => lines.some((line) => /\[host\] .*session established/.test(line)), "the first session");
    const second = await wavry(stack.client.home, [
      "connect",
      stack.host.deviceId,
      "--duration",
      "4",
      "--no-viewer",
    ]);
    expect(second.code, second.out).not.toBe(0);
    expect(second.out).toMatch(/busy/);
    expect(await first.clientExited, lines.join("\n")).toBe(0);
    await first.stop();
    expect(lines.join("\n")).toMatch(/\[host\] .*busy/);
  }, 60_000);

  it("pins an unpinned client on first contact (development) and knows it afterwards", async () => {
    const forgot = await wavry(stack.host.home, ["trust", "forget", stack.client.deviceId]);
    expect(forgot.code, forgot.out).toBe(0);
    expect((await wavry(stack.host.home, ["trust", "list"])).out).not.toContain(stack.client.deviceId);
    const log = await session("direct", { path: "direct", name: "first-contact" });
    expect(log).toMatch(new RegExp(`\\[host\\] .*first contact with ${stack.client.deviceId}`));
    expect((await wavry(stack.host.home, ["trust", "list"])).out).toContain(stack.client.deviceId);
  }, 60_000);

  it("refuses loudly, before any packet, a host key the edge now publishes differently from the pin", async () => {
    // A lying (compromised) edge: the host's published X25519 key is swapped for another.
    const fake = Buffer.alloc(32, 7).toString("base64url");
    const hostId = stack.host.deviceId;
    const original = (await wavry(stack.client.home, ["trust", "list"])).out;
    expect(original).toContain(hostId);
    await d1(`UPDATE devices SET x25519_public_key = '${fake}' WHERE id = '${hostId}'`);
    try {
      const lines: string[] = [];
      const pair = await startSessionPair(stack, {
        path: "direct",
        viewer: false,
        durationSecs: 5,
        onLine: (source, line) => lines.push(`[${source}] ${line}`),
      });
      pairs.push(pair);
      const code = await pair.clientExited;
      await pair.stop();
      const log = lines.join("\n");
      expect(code, log).not.toBe(0);
      expect(log).toMatch(/\[connect\] .*(changed|CHANGED)/);
      expect(log).not.toMatch(/session established/);
    } finally {
      // Whatever happened, later runs in this state directory need the real key back.
      const real = /x25519PublicKey":\s*"([A-Za-z0-9_-]{43})"/.exec(
        readFileSync(path.join(stack.client.home, "known-peers.json"), "utf8"),
      )?.[1];
      if (real !== undefined)
        await d1(`UPDATE devices SET x25519_public_key = '${real}' WHERE id = '${hostId}'`);
    }
  }, 90_000);
});
