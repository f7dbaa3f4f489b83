import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevStack, startDevStack } from "../../scripts/dev-stack.ts";
import { type SessionPair, startSessionPair } from "../../scripts/session-pair.ts";
import { freePort } from "../support/local-edge.ts";

/**
 * The whole stack as `npm start` runs it, in a temporary state directory on fresh ports: the dev-stack bootstrap,
 * then `wavry host` and `wavry connect --duration 6 --record file:…` as child processes (scripts/session-pair.ts),
 * once over the direct path and once through the relay. The recording must decode with ffmpeg and hold about as
 * many frames as the client says it wrote.
 */
const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), "wavry-stack-session-"));
let stack: DevStack;
const pairs: SessionPair[] = [];

beforeAll(async () => {
  const devVarsFile = path.join(dir, "dev.vars");
  const secret = () => crypto.randomUUID() + crypto.randomUUID();
  writeFileSync(
    devVarsFile,
    [
      "WAVRY_ENVIRONMENT=development",
      `WAVRY_ADMIN_BOOTSTRAP_TOKEN=${secret()}`,
      `WAVRY_TOTP_ENCRYPTION_KEYS=t1:${Buffer.from(secret().slice(0, 32)).toString("base64url")}`,
      `WAVRY_SIGNING_KEY_WRAP_KEYS=w1:${Buffer.from(secret().slice(0, 32)).toString("base64url")}`,
      `WAVRY_LOG_HASH_KEY=${secret()}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  stack = await startDevStack({
    stateDir: path.join(dir, "state"),
    devVarsFile,
    edgePort: await freePort(),
    inspectorPort: await freePort(),
    relayPort: await freePort(),
    relayHealthPort: await freePort(),
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
});
