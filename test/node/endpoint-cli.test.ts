import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../support/local-edge.ts";
import { runWavry, type WavryRun } from "../support/run-wavry.ts";

// End to end: the real `wavry` bin (node + tsx, as after `npm ci`) against the real edge in workerd on loopback.

type Run = WavryRun;

const PASSWORD = "correct horse battery staple";
const EMAIL = `cli-${Date.now()}@example.com`;
let edge: LocalEdge;
let scratch: string;

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runWavry(args, { HOME: scratch, ...env }, 30_000);
}

function envFor(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    WAVRY_HOME: home,
    WAVRY_EDGE_URL: edge.url,
    WAVRY_ENVIRONMENT: "development",
    ...extra,
  };
}

async function api(pathname: string, init: { body?: unknown; token?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  return fetch(`${edge.url}${pathname}`, {
    method: "POST",
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
}

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "wavry-cli-"));
  // Every command below spends the per-address auth budget (login, refresh, code enrollment).
  edge = await startLocalEdge({ WAVRY_AUTH_RATE_LIMIT: "1000" });
  const registered = await api("/v1/auth/register", { body: { email: EMAIL, password: PASSWORD } });
  expect(registered.status).toBe(201);
});

afterAll(async () => {
  await edge?.stop();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

describe("wavry CLI", () => {
  it("prints help, and refuses bad flags, unknown commands and bad config with exit code 2", async () => {
    const [help, enrollHelp, badFlag, unknown, badConfig, extra] = await Promise.all([
      run(["--help"]),
      run(["enroll", "--help"]),
      run(["enroll", "--bogus"], envFor(path.join(scratch, "x"))),
      run(["frobnicate"]),
      run(["status"], { WAVRY_HOME: path.join(scratch, "y"), WAVRY_EDGE_URL: "http://edge.example.com" }),
      run(["init", "surplus"], envFor(path.join(scratch, "z"))),
    ]);
    expect(help.status).toBe(0);
    for (const command of ["init", "login", "enroll", "devices", "trust", "status", "host", "connect"]) {
      expect(help.stdout).toContain(`  ${command}`);
    }
    expect(enrollHelp.status).toBe(0);
    expect(enrollHelp.stdout).toContain("--code CODE");
    expect(badFlag.status).toBe(2);
    expect(badFlag.stderr).toContain("--bogus");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(badConfig.status).toBe(2);
    expect(badConfig.stderr).toContain("WAVRY_EDGE_URL must use https:// in production");
    expect(extra.status).toBe(2);
    expect(extra.stderr).toContain("unexpected argument 'surplus'");
  });

  it("host and connect check their flags and configuration before going online", async () => {
    const [host, badSource, connect, connectNoArg, badPath, badRecord, noIdentity] = await Promise.all([
      run(["host"]),
      run(["host", "--source", "webcam"]),
      run(["connect", "d_aaaaaaaaaaaaaaaaaaaaaaaaaa"]),
      run(["connect"]),
      run(["connect", "d_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--path", "carrier-pigeon"]),
      run(["connect", "d_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--record", "out.h264"]),
      run(["host"], envFor(path.join(scratch, "no-identity"))),
    ]);
    expect(host.status).toBe(2);
    expect(host.stderr).toContain("WAVRY_EDGE_URL is not set");
    expect(badSource.status).toBe(2);
    expect(badSource.stderr).toContain("--source must be test, x11 or clip");
    expect(connect.status).toBe(2);
    expect(connectNoArg.status).toBe(2);
    expect(connectNoArg.stderr).toContain("give the host's device id");
    expect(badPath.status).toBe(2);
    expect(badPath.stderr).toContain("--path must be direct or relay");
    expect(badRecord.status).toBe(2);
    expect(badRecord.stderr).toContain("--record must be file:PATH");
    expect(noIdentity.status).toBe(1);
    expect(noIdentity.stderr).toContain("run: wavry init");
  });

  it("init → login → enroll → devices lists it → status says enrolled; the trust store pins it", async () => {
    const home = path.join(scratch, "host-a");
    const env = envFor(home);

    const init = await run(["init"], env);
    expect(init.status).toBe(0);
    const deviceId = /Device id:\s+(d_[a-z2-7]{26})/.exec(init.stdout)?.[1];
    const fingerprint = /Fingerprint: ([0-9a-f ]{49})/.exec(init.stdout)?.[1];
    expect(deviceId).toBeDefined();
    expect(statSync(path.join(home, "identity.json")).mode & 0o777).toBe(0o600);
    const again = await run(["init"], env);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain("already exists");

    const wrong = await run(["login", EMAIL], { ...env, WAVRY_PASSWORD: "wrong password, long enough" });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain("invalid email or password");
    expect(wrong.stderr + wrong.stdout).not.toContain("wrong password, long enough");

    const noPassword = await run(["login", EMAIL], env);
    expect(noPassword.status).toBe(2);
    expect(noPassword.stderr).toContain("WAVRY_PASSWORD");

    const login = await run(["login", EMAIL], { ...env, WAVRY_PASSWORD: PASSWORD });
    expect(login.status, login.stderr).toBe(0);
    expect(statSync(path.join(home, "session.json")).mode & 0o777).toBe(0o600);
    const session = readFileSync(path.join(home, "session.json"), "utf8");
    expect(login.stdout).not.toContain(JSON.parse(session).refreshToken);

    const before = await run(["status"], env);
    expect(before.stdout).toContain("Enrolled:    no");

    const enroll = await run(["enroll", "--name", "host a"], env);
    expect(enroll.status, enroll.stderr).toBe(0);
    expect(enroll.stdout).toContain(`Device id:   ${deviceId}`);

    const devices = await run(["devices"], env);
    expect(devices.status, devices.stderr).toBe(0);
    expect(devices.stdout).toContain(`${deviceId}  host a  (this device)`);
    expect(devices.stdout).toContain(`fingerprint ${fingerprint}`);

    const status = await run(["status"], env);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain('Enrolled:    yes, as "host a"');
    expect(status.stdout).toContain(`Signed in:   ${EMAIL}`);
    // Nothing secret is ever printed.
    const identityFile = JSON.parse(readFileSync(path.join(home, "identity.json"), "utf8"));
    for (const output of [init, enroll, devices, status]) {
      expect(output.stdout).not.toContain(identityFile.ed25519PrivateKey);
      expect(output.stdout).not.toContain(identityFile.x25519PrivateKey);
    }

    // A headless host enrolls with a one-time code minted through the API.
    const signedIn = await api("/v1/auth/login", { body: { email: EMAIL, password: PASSWORD } });
    const { accessToken } = (await signedIn.json()) as { accessToken: string };
    const minted = await api("/v1/devices/enrollment-codes", { token: accessToken });
    expect(minted.status).toBe(201);
    const { code } = (await minted.json()) as { code: string };

    const headless = path.join(scratch, "headless");
    const hEnv = envFor(headless);
    expect((await run(["init"], hEnv)).status).toBe(0);
    const badCode = await run(["enroll", "--code", "not-a-code"], hEnv);
    expect(badCode.status).toBe(2);
    const byCode = await run(["enroll", "--code", code.toLowerCase(), "--name", "headless"], hEnv);
    expect(byCode.status, byCode.stderr).toBe(0);
    const headlessId = /Device id:\s+(d_[a-z2-7]{26})/.exec(byCode.stdout)?.[1] ?? "";
    const reused = await run(["enroll", "--code", code, "--name", "again"], envFor(path.join(scratch, "h2")));
    expect(reused.status).toBe(1);

    const listed = await run(["devices", "--json"], env);
    const names = (JSON.parse(listed.stdout) as { devices: { name: string }[] }).devices.map((d) => d.name);
    expect(names.sort()).toEqual(["headless", "host a"]);

    // Trust: pin the headless host by looking it up among the user's devices, list, forget.
    const pin = await run(["trust", "pin", headlessId], env);
    expect(pin.status, pin.stderr).toBe(0);
    const trusted = await run(["trust", "list"], env);
    expect(trusted.stdout).toContain(`${headlessId}  headless`);
    expect(statSync(path.join(home, "known-peers.json")).mode & 0o777).toBe(0o600);
    const forget = await run(["trust", "forget", headlessId], env);
    expect(forget.stdout).toContain(`Forgot ${headlessId}`);
    expect((await run(["trust", "list"], env)).stdout).toContain("No pinned peers.");
    const badTrust = await run(["trust", "pin", "nope"], env);
    expect(badTrust.status).toBe(2);
  });
});
