import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RejectReason, RelayFrameType, Role } from "../../protocol/wire/relay-frames.ts";
import { loadConfig, RELAY_ENV_NAMES } from "../../relay-node/config.ts";
import { enrollmentRecordPath } from "../../relay-node/enrollment-record.ts";
import { KeyFileError, loadOrCreateIdentity } from "../../relay-node/identity.ts";
import { RelayStartError } from "../../relay-node/relay-node.ts";
import { FakeEdge } from "../support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  newSessionId,
  newTempDir,
  relayEnv,
  startTestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { ed25519Pair, LeaseAuthority } from "../support/relay-lease-kit.ts";
import { RelayPeer } from "../support/relay-peer.ts";
import { ROOT } from "../support/vectors.ts";

// Configuration and identity (issue 4, Relay node): validated once at start, fail closed in production with a
// message naming the setting; the identity key survives restarts in a 0600 file.

const authority = new LeaseAuthority();
const productionEnv = (overrides: Record<string, string | undefined> = {}) => ({
  WAVRY_ENVIRONMENT: "production",
  WAVRY_EDGE_URL: "https://edge.example.com",
  WAVRY_RELAY_LISTEN: "0.0.0.0:7400",
  WAVRY_RELAY_PUBLIC_ADDR: "relay1.example.com:7400",
  WAVRY_RELAY_KEY_FILE: "/var/lib/wavry-relay/relay.key",
  WAVRY_RELAY_REGION: "eu-west",
  WAVRY_RELAY_MASTER_PUBLIC_KEY: authority.masterPublicKey,
  ...overrides,
});

function problemsOf(env: Record<string, string | undefined>): readonly string[] {
  const result = loadConfig(env);
  return result.ok ? [] : result.problems;
}

describe("relay config", () => {
  it("accepts a complete production config, with safe defaults", () => {
    const result = loadConfig(productionEnv({ WAVRY_ENVIRONMENT: undefined }));
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.config.environment).toBe("production");
    expect(result.config.healthListen).toEqual({ host: "127.0.0.1", port: 9090 });
    expect(result.config.insecureDev).toBe(false);
    expect(result.config.masterPublicKey).toHaveLength(32);
    expect(result.config.limits.maxSessions).toBe(10_000);
    expect(result.config.warnings).toEqual([]);
  });

  it("refuses insecure mode in production, naming the setting", () => {
    const problems = problemsOf(productionEnv({ WAVRY_RELAY_INSECURE_DEV: "1" }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^WAVRY_RELAY_INSECURE_DEV: .*refused when WAVRY_ENVIRONMENT=production/);
  });

  it("refuses a missing or malformed master key in production, naming the setting", () => {
    expect(problemsOf(productionEnv({ WAVRY_RELAY_MASTER_PUBLIC_KEY: undefined }))).toEqual([
      expect.stringMatching(/^WAVRY_RELAY_MASTER_PUBLIC_KEY: required/),
    ]);
    const key = authority.masterPublicKey;
    for (const bad of [
      key.slice(1),
      `${key}A`,
      `${key.slice(0, 42)}B`,
      key.replace(/.$/, "+"),
      "not a key",
    ]) {
      const problems = problemsOf(productionEnv({ WAVRY_RELAY_MASTER_PUBLIC_KEY: bad }));
      expect(problems).toEqual([expect.stringMatching(/^WAVRY_RELAY_MASTER_PUBLIC_KEY: malformed/)]);
      expect(problems.join("")).not.toContain(bad); // the message names the setting, never echoes the value
    }
    // Insecure mode does not excuse a missing master key in production either.
    expect(
      problemsOf(productionEnv({ WAVRY_RELAY_MASTER_PUBLIC_KEY: undefined, WAVRY_RELAY_INSECURE_DEV: "1" })),
    ).toHaveLength(2);
  });

  it("refuses a plain http edge URL in production, and an edge URL with a path anywhere", () => {
    expect(problemsOf(productionEnv({ WAVRY_EDGE_URL: "http://edge.example.com" }))).toEqual([
      "WAVRY_EDGE_URL: must be https when WAVRY_ENVIRONMENT=production",
    ]);
    expect(problemsOf(productionEnv({ WAVRY_EDGE_URL: "https://edge.example.com/api" }))[0]).toMatch(
      /^WAVRY_EDGE_URL: must be an origin only/,
    );
  });

  it("allows http and insecure mode in development only, with a warning", () => {
    const result = loadConfig(
      productionEnv({
        WAVRY_ENVIRONMENT: "development",
        WAVRY_EDGE_URL: "http://127.0.0.1:8787",
        WAVRY_RELAY_INSECURE_DEV: "1",
        WAVRY_RELAY_MASTER_PUBLIC_KEY: undefined,
      }),
    );
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.config.insecureDev).toBe(true);
    expect(result.config.masterPublicKey).toBeNull();
    expect(result.config.warnings).toEqual([expect.stringContaining("WAVRY_RELAY_INSECURE_DEV")]);
    // Without insecure mode the master key is required in development too.
    expect(
      problemsOf(productionEnv({ WAVRY_ENVIRONMENT: "development", WAVRY_RELAY_MASTER_PUBLIC_KEY: "" })),
    ).toEqual([expect.stringMatching(/^WAVRY_RELAY_MASTER_PUBLIC_KEY: required/)]);
  });

  it("names each bad setting", () => {
    const cases: [Record<string, string>, string][] = [
      [{ WAVRY_RELAY_LISTEN: "localhost:7400" }, "WAVRY_RELAY_LISTEN"],
      [{ WAVRY_RELAY_HEALTH_LISTEN: "127.0.0.1:99999" }, "WAVRY_RELAY_HEALTH_LISTEN"],
      [{ WAVRY_RELAY_MAX_SESSIONS: "0" }, "WAVRY_RELAY_MAX_SESSIONS"],
      [{ WAVRY_RELAY_IP_PACKETS_PER_SEC: "fast" }, "WAVRY_RELAY_IP_PACKETS_PER_SEC"],
      [{ WAVRY_RELAY_REGION: "EU West" }, "WAVRY_RELAY_REGION"],
      [{ WAVRY_RELAY_ENROLLMENT_TOKEN: "short" }, "WAVRY_RELAY_ENROLLMENT_TOKEN"],
      [{ WAVRY_RELAY_INSECURE_DEV: "yes" }, "WAVRY_RELAY_INSECURE_DEV"],
      [{ WAVRY_ENVIRONMENT: "staging" }, "WAVRY_ENVIRONMENT"],
    ];
    for (const [overrides, name] of cases) {
      expect(problemsOf(productionEnv(overrides))).toEqual([expect.stringMatching(new RegExp(`^${name}: `))]);
    }
    expect(problemsOf({})).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^WAVRY_EDGE_URL: /),
        expect.stringMatching(/^WAVRY_RELAY_KEY_FILE: /),
        expect.stringMatching(/^WAVRY_RELAY_PUBLIC_ADDR: /),
        expect.stringMatching(/^WAVRY_RELAY_REGION: /),
      ]),
    );
    expect(RELAY_ENV_NAMES.every((name) => name.startsWith("WAVRY_"))).toBe(true);
  });
});

/** Runs relay-node/main.ts with tsx; resolves with its exit code and output. */
function runMain(env: Record<string, string>): {
  child: ChildProcess;
  done: Promise<{ code: number | null; out: string }>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "relay-node/main.ts")], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
  });
  const done = new Promise<{ code: number | null; out: string }>((resolve) => {
    child.on("exit", (code) => resolve({ code, out }));
  });
  return { child, done };
}

describe("wavry-relay (relay-node/main.ts) as a process", () => {
  let edge: FakeEdge;
  const dirs: string[] = [];
  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [2, 3, 4, 5].map((n) => `${ENROLLMENT_TOKEN}-${n}`),
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
  });
  afterAll(async () => {
    await edge?.pause();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start in production with insecure mode on: exit 2, a log line naming the setting", async () => {
    const { done } = runMain({ ...productionEnv(), WAVRY_RELAY_INSECURE_DEV: "1" });
    const { code, out } = await done;
    expect(code).toBe(2);
    const lines = out
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        level: "error",
        component: "relay",
        event: "config",
        outcome: "refused",
        problem: expect.stringMatching(/^WAVRY_RELAY_INSECURE_DEV: /),
      }),
    ]);
  });

  it("starts, enrolls, registers, and stops cleanly on SIGTERM", async () => {
    const dir = newTempDir();
    dirs.push(dir);
    const keyFile = path.join(dir, "relay.key");
    const env = relayEnv(edge, authority, keyFile, { WAVRY_RELAY_ENROLLMENT_TOKEN: `${ENROLLMENT_TOKEN}-2` });
    const { child, done } = runMain(env);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    await waitFor(() => output.includes('"event":"edge_register"'), "the child to register", 20_000);
    const start = output
      .split("\n")
      .filter((line) => line.includes('"event":"relay_start"'))
      .map((line) => JSON.parse(line) as { healthPort: number });
    // The log hashes addresses (the relay's own included); the port is plain, and the harness binds loopback.
    const healthPort = start[0]?.healthPort ?? 0;
    expect((await fetch(`http://127.0.0.1:${healthPort}/ready`)).status).toBe(200);
    child.kill("SIGTERM");
    const { code, out } = await done;
    expect(code).toBe(0);
    expect(out).toContain('"event":"relay_stop"');
    expect(out).not.toContain(ENROLLMENT_TOKEN);
    expect(out).not.toContain(readFileSync(keyFile, "utf8").split("\n")[1] ?? "never");
  });

  it("creates the key file 0600, reuses it across restarts, and enrolls only once", async () => {
    const dir = newTempDir();
    dirs.push(dir);
    const env = { WAVRY_RELAY_ENROLLMENT_TOKEN: `${ENROLLMENT_TOKEN}-3` };
    const first = await startTestRelay({ edge, authority, dir, env });
    await waitFor(() => first.node.ready(), "the first registration");
    const relayId = first.node.relayId;
    await first.stop();
    expect(statSync(first.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(first.keyFile)).mode & 0o077).toBe(0);
    expect(existsSync(enrollmentRecordPath(first.keyFile))).toBe(true);
    const enrolls = edge.counts.enroll;

    // Restart with a token already used: the enrollment record sends it straight to register.
    const second = await startTestRelay({ edge, authority, dir, env });
    await waitFor(() => second.node.ready(), "registration after the restart");
    expect(second.node.relayId).toBe(relayId);
    expect(edge.counts.enroll).toBe(enrolls);
    expect(edge.refusals).not.toContain("invalid_token");
    await second.stop();

    // Without the record and without a token there is nothing to enroll with: refused, naming the setting.
    rmSync(enrollmentRecordPath(first.keyFile));
    await expect(
      startTestRelay({ edge, authority, dir, env: { WAVRY_RELAY_ENROLLMENT_TOKEN: "" } }),
    ).rejects.toThrow(RelayStartError);
    await expect(
      startTestRelay({ edge, authority, dir, env: { WAVRY_RELAY_ENROLLMENT_TOKEN: "" } }),
    ).rejects.toThrow(/^WAVRY_RELAY_ENROLLMENT_TOKEN: /);

    // With a token but a key the edge already knows: 409, taken as enrolled, the record is written again.
    const third = await startTestRelay({
      edge,
      authority,
      dir,
      env: { WAVRY_RELAY_ENROLLMENT_TOKEN: `${ENROLLMENT_TOKEN}-5` },
    });
    await waitFor(() => third.node.ready(), "registration after a 409 on enroll");
    expect(edge.refusals).toContain("conflict");
    expect(existsSync(enrollmentRecordPath(first.keyFile))).toBe(true);
    expect(edge.counts.enroll).toBe(enrolls);
    await third.stop();
  });

  it("is not ready until a registration succeeds (the edge is down at start)", async () => {
    const down = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
    await down.pause();
    const relay = await startTestRelay({ edge: down, authority });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(relay.node.ready()).toBe(false);
      expect(await relay.http("/ready")).toEqual({ status: 503, text: '{"status":"not_ready"}' });
      expect((await relay.http("/health")).status).toBe(200);
      await down.resume();
      await waitFor(() => relay.node.ready(), "registration once the edge is up");
      expect((await relay.http("/ready")).status).toBe(200);
      expect(down.counts).toMatchObject({ enroll: 1, register: 1 });
    } finally {
      await relay.dispose();
      await down.pause();
    }
  });

  it("in insecure development mode, is ready at once and binds unverified leases, still behind cookies", async () => {
    const relay = await startTestRelay({
      edge,
      authority: null,
      env: { WAVRY_RELAY_INSECURE_DEV: "1", WAVRY_RELAY_ENROLLMENT_TOKEN: `${ENROLLMENT_TOKEN}-4` },
    });
    const [host, client] = [
      await RelayPeer.open(relay.node.udpAddress),
      await RelayPeer.open(relay.node.udpAddress),
    ];
    try {
      expect(relay.node.ready()).toBe(true);
      expect(relay.logs.some((line) => line.includes("leases are NOT verified"))).toBe(true);
      const sid = newSessionId();
      const key = ed25519Pair();
      expect(await host.present(sid, Role.Host, "anything", key)).toMatchObject({
        type: RelayFrameType.LeaseAck,
      });
      expect(await client.present(sid, Role.Client, "anything", key)).toMatchObject({
        type: RelayFrameType.LeaseAck,
      });
      expect(await host.nextFrame()).toMatchObject({ type: RelayFrameType.LeaseAck, peerBound: true });
      const cookie = await host.hello(sid, Role.Host);
      client.send(host.presentFrame(sid, Role.Host, "anything", key, cookie)); // host's cookie, client's address
      expect(await client.nextFrame()).toMatchObject({ reason: RejectReason.BadCookie });
    } finally {
      await Promise.all([host.close(), client.close()]);
      await relay.dispose();
    }
  });

  it("refuses a key file that group or others can read, and one that is not a key", () => {
    const dir = newTempDir();
    dirs.push(dir);
    const file = path.join(dir, "relay.key");
    const { identity, created } = loadOrCreateIdentity(file);
    expect(created).toBe(true);
    expect(loadOrCreateIdentity(file).identity.relayId).toBe(identity.relayId);
    chmodSync(file, 0o640);
    expect(() => loadOrCreateIdentity(file)).toThrow(KeyFileError);
    expect(() => loadOrCreateIdentity(file)).toThrow(/^WAVRY_RELAY_KEY_FILE: .*mode 0640.*chmod 600/);
    chmodSync(file, 0o600);
    writeFileSync(file, "not a key\n");
    expect(() => loadOrCreateIdentity(file)).toThrow(/does not hold an Ed25519 private key/);
  });
});
