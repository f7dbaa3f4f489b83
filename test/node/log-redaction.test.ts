import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { base32Decode, totpCode } from "../../edge/security/totp.ts";
import { utf8 } from "../../protocol/bytes.ts";
import { hashedValue } from "../../protocol/log/redaction.ts";
import { startDevStack } from "../../scripts/dev-stack.ts";
import { type SessionPair, startSessionPair } from "../../scripts/session-pair.ts";
import { devStackPorts, writeTestDevVars } from "../support/dev-stack-fixture.ts";
import { ROOT } from "../support/vectors.ts";

/**
 * Issue 6, "Logs": every line every part writes during an end-to-end run, and not one known secret, token,
 * password, email or address in any of them.
 *
 * The real processes on loopback (the dev stack: wrangler dev with workerd and local D1, the relay, then `wavry`
 * CLI runs and a host/client session forced through the relay), with EVERY stdout and stderr line of each captured:
 * register and login (a wrong password too), token refresh and refresh-token reuse, TOTP enrolment, a one-time
 * enrollment code used by `wavry enroll --code`, admin actions (bootstrap, a second bootstrap refused, a new admin
 * token, a relay enrollment token, list users, block and unblock a range, a request refused for its scope and one for
 * a bad token) and failures (bad tokens, a bad body, a signaling ticket in a query string). API calls carry a
 * documentation address (203.0.113.77) as `CF-Connecting-IP`, as Cloudflare would set it.
 *
 * Afterwards every secret the run made (read back from the state directory, the device homes, the relay's
 * environment and the API answers) is searched for in every line, also in base64url and hex; so are the emails,
 * the client address, this machine's interface addresses (the host's session candidates) and loopback in log lines.
 */
const run = promisify(execFile);
const WAVRY = path.join(ROOT, "bin/wavry.js");
const CLIENT_IP = "203.0.113.77";
const dir = mkdtempSync(path.join(tmpdir(), "wavry-log-redaction-"));
const stateDir = path.join(dir, "state");

interface Line {
  readonly source: string;
  readonly text: string;
}
const captured: Line[] = [];
/** label -> value of every secret the run produced. */
const secrets = new Map<string, string>();
const emails: string[] = [];
let logHashKey = "";
let stopStack: (() => Promise<void>) | null = null;
let pair: SessionPair | null = null;
let sessionCode = -1;
let sessionPath: string | null = null;

function take(source: string, text: string): void {
  for (const line of text.split("\n")) if (line.trim() !== "") captured.push({ source, text: line });
}

function secret(label: string, value: unknown): string {
  if (typeof value !== "string" || value.length < 6) throw new Error(`no ${label} in the run`);
  secrets.set(label, value);
  return value;
}

async function api(
  edgeUrl: string,
  route: string,
  options: { method?: string; token?: string; body?: unknown; raw?: string } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { "CF-Connecting-IP": CLIENT_IP };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${edgeUrl}${route}`, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    ...(body !== undefined && { body }),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    // not JSON
  }
  return { status: response.status, json };
}

/** Runs one `wavry` command, capturing both streams; resolves with the exit code. */
async function wavry(source: string, env: NodeJS.ProcessEnv, args: string[]): Promise<number> {
  try {
    const { stdout, stderr } = await run(process.execPath, [WAVRY, ...args], {
      cwd: ROOT,
      env,
      timeout: 30_000,
    });
    take(source, stdout);
    take(source, stderr);
    return 0;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; code?: number };
    take(source, failed.stdout ?? "");
    take(source, failed.stderr ?? "");
    return typeof failed.code === "number" ? failed.code : 1;
  }
}

function readSecretFile(label: string, file: string): void {
  if (!existsSync(file)) throw new Error(`${file} is missing`);
  const text = readFileSync(file, "utf8").trim();
  // A PEM file: its base64 body lines (the key material) are the secret.
  if (text.startsWith("-----BEGIN")) {
    const body = text
      .split("\n")
      .filter((l) => !l.startsWith("-----"))
      .join("");
    secret(label, body);
  } else secret(label, text);
}

function readJsonSecrets(label: string, file: string, names: readonly string[]): void {
  const data = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  for (const name of names) secret(`${label}.${name}`, data[name]);
}

beforeAll(async () => {
  const random = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  const { file: devVarsFile, settings } = writeTestDevVars(dir);
  for (const [name, value] of Object.entries(settings)) secret(name, value.replace(/^[tw]1:/, ""));
  logHashKey = settings.WAVRY_LOG_HASH_KEY;
  const stack = await startDevStack({
    stateDir,
    devVarsFile,
    ...(await devStackPorts()),
    onOutput: (source, line) => take(source, line),
  });
  stopStack = () => stack.stop();
  const edge = stack.edgeUrl;
  emails.push(stack.email);

  // The relay's one-time enrollment token reached it by environment; read it back from there.
  const relayPid = stack.processGroups[1];
  const environ = relayPid === undefined ? "" : readFileSync(`/proc/${relayPid}/environ`, "utf8");
  secret(
    "relay enrollment token (dev stack)",
    /(?:^|\0)WAVRY_RELAY_ENROLLMENT_TOKEN=([^\0]+)/.exec(environ)?.[1],
  );

  // Accounts: register, a wrong password, login, refresh, reuse of the spent refresh token, TOTP enrolment.
  const email = `Log.Redaction+${crypto.randomUUID().slice(0, 8)}@example.org`;
  emails.push(email, email.toLowerCase());
  const password = secret("password", `pw-${random()}`);
  expect((await api(edge, "/v1/auth/register", { body: { email, password } })).status).toBe(201);
  expect((await api(edge, "/v1/auth/login", { body: { email, password: `${password}x` } })).status).toBe(401);
  const login = await api(edge, "/v1/auth/login", { body: { email, password } });
  expect(login.status).toBe(200);
  const refresh1 = secret("refresh token 1", login.json.refreshToken);
  secret("access token 1", login.json.accessToken);
  const refreshed = await api(edge, "/v1/auth/refresh", { body: { refreshToken: refresh1 } });
  expect(refreshed.status).toBe(200);
  secret("refresh token 2", refreshed.json.refreshToken);
  secret("access token 2", refreshed.json.accessToken);
  expect((await api(edge, "/v1/auth/refresh", { body: { refreshToken: refresh1 } })).status).toBe(401);
  const again = await api(edge, "/v1/auth/login", { body: { email, password } });
  const access = secret("access token 3", again.json.accessToken);
  secret("refresh token 3", again.json.refreshToken);
  const code = await api(edge, "/v1/devices/enrollment-codes", { token: access, body: {} });
  expect(code.status).toBe(201);
  const enrollmentCode = secret("enrollment code", code.json.code);
  secrets.set("enrollment code (compact)", enrollmentCode.replace(/-/g, ""));
  const totp = await api(edge, "/v1/auth/totp/enroll", { token: access, body: { password } });
  expect(totp.status).toBe(200);
  const totpSecret = secret("totp secret", totp.json.secret);
  secret("totp uri", totp.json.otpauthUri);
  const totpBytes = base32Decode(totpSecret);
  if (totpBytes === null) throw new Error("the TOTP secret is not base32");
  const totpNow = totpCode(totpBytes, Math.floor(Date.now() / 30_000));
  expect((await api(edge, "/v1/auth/totp/confirm", { token: access, body: { code: totpNow } })).status).toBe(
    204,
  );

  // Failures: a bad bearer token, a bad body, a signaling ticket in a query string.
  const badToken = secret("bad bearer token", `garbage-${random()}`);
  expect((await api(edge, "/v1/devices", { token: badToken })).status).toBe(401);
  expect((await api(edge, "/v1/auth/login", { raw: `{"email": "${email}", "password": ` })).status).toBe(400);
  const ticket = secret("signaling ticket", `st1.d_abcdefghijklmnopqrstuvwxyz.${random()}`);
  expect((await api(edge, `/v1/signal?ticket=${encodeURIComponent(ticket)}`)).status).toBeGreaterThanOrEqual(
    400,
  );

  // Admin: the dev stack bootstrapped; a second bootstrap is refused; a token, a relay enrollment token, users,
  // a range blocked and unblocked, a refusal for scope and one for a bad token.
  const admin = secret("admin token", readFileSync(path.join(stateDir, "admin-token"), "utf8").trim());
  expect(
    (
      await api(edge, "/v1/admin/bootstrap", {
        token: settings.WAVRY_ADMIN_BOOTSTRAP_TOKEN,
        body: { name: "again" },
      })
    ).status,
  ).toBeGreaterThanOrEqual(400);
  const reader = await api(edge, "/v1/admin/tokens", {
    token: admin,
    body: { name: "reader", scopes: ["read"] },
  });
  expect(reader.status).toBe(201);
  const readerToken = secret("admin token (read)", reader.json.token);
  const relayToken = await api(edge, "/v1/admin/relays/enrollment-tokens", { token: admin, body: {} });
  expect(relayToken.status).toBe(201);
  secret("relay enrollment token (new)", relayToken.json.token);
  expect((await api(edge, "/v1/admin/users", { token: readerToken })).status).toBe(200);
  const block = await api(edge, "/v1/admin/address-blocks", {
    token: admin,
    body: { cidr: "198.51.100.0/24", reason: "log redaction test" },
  });
  expect(block.status).toBe(201);
  const blockId = String(block.json.id ?? "");
  expect(
    (await api(edge, `/v1/admin/address-blocks/${blockId}`, { token: admin, method: "DELETE" })).status,
  ).toBe(204);
  expect(
    (
      await api(edge, "/v1/admin/tokens", {
        token: readerToken,
        body: { name: "escalate", scopes: ["users"] },
      })
    ).status,
  ).toBe(403);
  const forged = secret("forged admin token", `wvadm_${random()}`);
  expect((await api(edge, "/v1/admin/users", { token: forged })).status).toBe(401);

  // The CLI: a third device home enrolled with the one-time code; a sign-in with a wrong password.
  const third = path.join(dir, "third");
  const env = { ...process.env, ...stack.envFor(third) };
  expect(await wavry("cli", env, ["init"])).toBe(0);
  expect(await wavry("cli", env, ["enroll", "--code", enrollmentCode, "--name", "third"])).toBe(0);
  expect(
    await wavry("cli", { ...env, WAVRY_PASSWORD: `wrong-${password}` }, ["login", stack.email]),
  ).not.toBe(0);

  // A session forced through the relay.
  const started = await startSessionPair(stack, {
    path: "relay",
    viewer: false,
    durationSecs: 3,
    onLine: (source, line) => take(source, line),
  });
  pair = started;
  sessionCode = await started.clientExited;
  sessionPath = started.sessionPath();
  await started.stop();

  // Secrets kept on disk by the run: the dev user's password, keys, device keys and session tokens.
  secret("dev user password", readFileSync(path.join(stateDir, "user-password"), "utf8").trim());
  readSecretFile("relay master key", path.join(stateDir, "relay-master.key"));
  readSecretFile("relay identity key", path.join(stateDir, "relay.key"));
  for (const name of ["host", "client", "third"]) {
    const home = name === "third" ? third : path.join(stateDir, name);
    readJsonSecrets(name, path.join(home, "identity.json"), ["x25519PrivateKey", "ed25519PrivateKey"]);
  }
  for (const name of ["host", "client"]) {
    readJsonSecrets(name, path.join(stateDir, name, "session.json"), ["refreshToken", "accessToken"]);
  }
  // Stop the stack inside the run, so its shutdown lines are inspected too.
  await stack.stop();
}, 150_000);

afterAll(async () => {
  await pair?.stop();
  await stopStack?.();
  rmSync(dir, { recursive: true, force: true });
});

/** A value in the forms a careless log line might hold it. */
function forms(value: string): string[] {
  const out = new Set([value, Buffer.from(value).toString("base64url"), Buffer.from(value).toString("hex")]);
  if (/^[A-Za-z0-9_-]+$/.test(value) && value.length >= 16) {
    const bytes = Buffer.from(value, "base64url");
    out.add(bytes.toString("hex"));
    out.add(bytes.toString("base64"));
  }
  return [...out];
}

function isJson(text: string): Record<string, unknown> | null {
  if (!text.startsWith("{")) return null;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

describe("log redaction over an end-to-end run", () => {
  it("ran what it set out to: a relayed session and lines from every part", () => {
    const all = captured.map((l) => `[${l.source}] ${l.text}`).join("\n");
    expect(sessionCode, all.slice(-4000)).toBe(0);
    expect(sessionPath).toBe("relay");
    const json = captured.map((l) => ({ source: l.source, record: isJson(l.text) }));
    const bySource = (source: string) => json.filter((j) => j.source === source && j.record !== null).length;
    expect(bySource("edge")).toBeGreaterThan(20);
    expect(bySource("relay")).toBeGreaterThan(3);
    expect(bySource("host") + bySource("connect")).toBeGreaterThan(5);
    console.log(`redaction: inspected ${captured.length} lines`);
    expect(captured.length).toBeGreaterThan(50);
  });

  it("writes every JSON line with a component, an event and an outcome; request lines name route patterns", () => {
    const records = captured.map((l) => isJson(l.text)).filter((r) => r !== null);
    const requests = records.filter((r) => r.component === "edge" && r.event === "request");
    expect(requests.length).toBeGreaterThan(30);
    for (const r of requests) expect(String(r.route)).toMatch(/^(\*|\/[a-z0-9/:.*-]*)$/);
    expect(requests.map((r) => r.route)).toEqual(
      expect.arrayContaining([
        "/v1/admin/relays/enrollment-tokens",
        "/v1/admin/address-blocks/:id",
        "/v1/signal",
      ]),
    );
    for (const record of records) {
      // The log injector (`--inject log`) prints input kinds in its own shape; no input is sent in this run.
      expect(record, JSON.stringify(record)).toEqual(
        expect.objectContaining({
          component: expect.any(String),
          event: expect.any(String),
          outcome: expect.any(String),
        }),
      );
    }
  });

  it("never writes a secret, a token, a password or a key, in any form", () => {
    expect(secrets.size).toBeGreaterThan(25);
    for (const [label, value] of secrets) {
      for (const form of forms(value)) {
        const hit = captured.find((l) => l.text.includes(form));
        expect(hit === undefined ? null : `${label} in [${hit.source}]`).toBe(null);
      }
    }
    for (const line of captured) {
      expect(line.text, line.source).not.toMatch(/eyJ[A-Za-z0-9_-]{10}/);
      expect(line.text, line.source).not.toMatch(/wv(?:adm|rel)_[A-Za-z0-9_-]{6}/);
    }
  });

  it("never writes an email or an IP address; they appear as keyed hashes", () => {
    const addresses = [CLIENT_IP];
    for (const list of Object.values(networkInterfaces())) {
      for (const address of list ?? []) if (!address.internal) addresses.push(address.address);
    }
    for (const value of [...emails, ...addresses]) {
      const hit = captured.find((l) => l.text.includes(value));
      expect(hit === undefined ? null : `${value} in [${hit.source}] ${hit.text}`).toBe(null);
    }
    // Loopback is every peer's and client's address here: no log line may carry it either.
    for (const line of captured) {
      if (isJson(line.text) !== null) expect(line.text, line.source).not.toMatch(/\b127\.0\.0\.1\b|::1\b/);
    }
    const key = utf8(logHashKey);
    const all = captured.map((l) => l.text).join("\n");
    expect(all).toContain(hashedValue(key, CLIENT_IP));
    expect(all).toContain(hashedValue(key, emails[2] ?? ""));
  });
});
