/**
 * The development stack bootstrap behind `npm start`: brings up, with no hand editing, the edge (wrangler dev on
 * 127.0.0.1 with a persistent local D1), the admin chain (bootstrap token from `.dev.vars` → admin token → relay
 * master key → certified lease key → relay enrollment token), the relay process, a development user and two
 * enrolled device homes (host and client) that pin each other's keys.
 *
 * Everything lives in one git-ignored state directory (default `.wavry/dev-stack/`), secrets with mode 0600, and
 * a second run reuses what exists. Development only: the master key sits next to the stack it certifies, which
 * production must never do (OPERATIONS.md: the master key stays offline). Keys, tokens and the password are
 * never printed.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { LEASE_KEY_CERT_ISSUER, LEASE_KEY_CERT_TYP } from "../protocol/relay/lease.ts";
import { ensureDevVars } from "./dev-vars.ts";
import { DAEMON_NODE_FLAGS } from "./node-flags.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const WAVRY = path.join(ROOT, "bin/wavry.js");
/** Lease-key certificates last 30 days; a new one is made when less than a day is left. */
const CERT_DAYS = 30;
const DAY_SECS = 86_400;
const DEV_EMAIL = "developer@example.com";

/** Where and how to run the stack. */
export interface DevStackOptions {
  /** Absolute state directory (D1, keys, device homes). */
  readonly stateDir: string;
  readonly edgePort: number;
  readonly inspectorPort: number;
  readonly relayPort: number;
  readonly relayHealthPort: number;
  /** The edge's development settings (default: `.dev.vars`, created by {@link ensureDevVars} when missing). */
  readonly devVarsFile?: string;
  /** Progress lines (never secrets). */
  readonly say?: (line: string) => void;
  /** Output of the edge and the relay, a line at a time. */
  readonly onOutput?: (source: "edge" | "relay", line: string) => void;
}

/** One enrolled device home. */
export interface DevDevice {
  readonly home: string;
  readonly deviceId: string;
}

/** A running stack. */
export interface DevStack {
  readonly edgeUrl: string;
  readonly relayAddr: string;
  readonly relayHealthUrl: string;
  readonly email: string;
  readonly host: DevDevice;
  readonly client: DevDevice;
  /** The environment a `wavry` command needs for `home` (WAVRY_HOME, WAVRY_EDGE_URL, WAVRY_ENVIRONMENT). */
  envFor(home: string): Record<string, string>;
  /** Process group ids of the children (the edge's wrangler and workerd, the relay). */
  readonly processGroups: readonly number[];
  /** Resolves when the edge or the relay exits by itself (not through {@link DevStack.stop}). */
  readonly ended: Promise<{ readonly source: "edge" | "relay"; readonly code: string }>;
  /** Stops the relay, then the edge; resolves when their process groups are gone. Idempotent. */
  stop(): Promise<void>;
}

/** What the bootstrap remembers between runs (no secret: those sit in their own 0600 files). */
interface StackState {
  leaseKid?: string;
  leaseCertExp?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
}

function readText(file: string): string | null {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : null;
}

/** The value of `name` in a dotenv-style file. */
function dotenvValue(file: string, name: string): string | null {
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = /^\s*([A-Z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (match?.[1] === name) return (match[2] ?? "").trim().replace(/^"(.*)"$/, "$1");
  }
  return null;
}

/** A child in its own process group, its output forwarded a line at a time and kept (the tail) for errors. */
class Child {
  readonly process: ChildProcess;
  #tail = "";

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void) {
    // detached: a group of its own, so stop() reaches grandchildren (wrangler's workerd) and Ctrl-C on the
    // terminal reaches only us, which then stops the children in order.
    this.process = spawn(command, args, {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      this.#tail = (this.#tail + text).slice(-4000);
      for (const line of text.split("\n")) if (line.trim() !== "") onLine(line);
    };
    this.process.stdout?.on("data", take);
    this.process.stderr?.on("data", take);
  }

  get tail(): string {
    return this.#tail;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`, then waits until the group is gone. */
  async stop(graceMs: number): Promise<void> {
    const pid = this.process.pid;
    if (pid === undefined) return;
    const signal = (name: NodeJS.Signals | 0) => {
      try {
        process.kill(-pid, name);
        return true;
      } catch {
        return false; // the group is gone
      }
    };
    if (!signal("SIGTERM")) return;
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && signal(0)) await sleep(100);
    signal("SIGKILL");
    while (signal(0)) await sleep(50);
  }
}

async function waitFor(what: string, child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${what} exited during start:\n${child.tail}`);
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`${what} did not answer ${url} within ${timeoutMs / 1000} s:\n${child.tail}`);
}

/** The relay master key: generated once, kept 0600 in the state directory. */
function masterKey(stateDir: string): { privateKey: KeyObject; x: string } {
  const file = path.join(stateDir, "relay-master.key");
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync("ed25519");
    writePrivate(file, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  }
  const privateKey = createPrivateKey(readFileSync(file));
  const x = privateKey.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error(`${file} is not an Ed25519 private key`);
  return { privateKey, x };
}

/** The edge origin in a relay's enrollment record (relay-node/enrollment-record.ts), or null. */
function recordedOrigin(text: string | null): string | null {
  if (text === null) return null;
  try {
    const record: unknown = JSON.parse(text);
    return typeof record === "object" && record !== null && "edgeOrigin" in record
      ? String(record.edgeOrigin)
      : null;
  } catch {
    return null;
  }
}

/** A lease-key certificate, as `wavry-admin certify-lease-key` makes it (compact JWS, EdDSA). */
function certify(master: KeyObject, kid: string, publicKey: string, iat: number, exp: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${part({ alg: "EdDSA", typ: LEASE_KEY_CERT_TYP })}.${part({
    iss: LEASE_KEY_CERT_ISSUER,
    sub: kid,
    jwk: { kty: "OKP", crv: "Ed25519", x: publicKey },
    iat,
    exp,
  })}`;
  return `${input}.${sign(null, Buffer.from(input), master).toString("base64url")}`;
}

/** Brings the stack up (or back up, reusing the state directory). On failure, whatever started is stopped. */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const say = options.say ?? (() => undefined);
  const output = options.onOutput ?? (() => undefined);
  const state = options.stateDir;
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const stateFile = path.join(state, "state.json");
  const saved: StackState = existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, "utf8")) as StackState)
    : {};
  const save = () => writeFileSync(stateFile, `${JSON.stringify(saved, null, 2)}\n`);
  const devVars = options.devVarsFile ?? ensureDevVars();
  const bootstrapToken = dotenvValue(devVars, "WAVRY_ADMIN_BOOTSTRAP_TOKEN");
  if (bootstrapToken === null) throw new Error(`${devVars} has no WAVRY_ADMIN_BOOTSTRAP_TOKEN`);
  const master = masterKey(state);
  const edgeUrl = `http://127.0.0.1:${options.edgePort}`;
  const wranglerEnv = {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    CI: "true",
  };
  const children: Child[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // The relay first, so it does not log the edge going away as a failure.
    for (const child of [...children].reverse()) await child.stop(3000);
  };

  try {
    const d1 = path.join(state, "d1");
    say("applying the D1 migrations");
    await run(
      process.execPath,
      [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", d1],
      {
        cwd: ROOT,
        env: wranglerEnv,
      },
    );
    const vars: Record<string, string> = {
      // A var, not .dev.vars: with [secrets] required in wrangler.toml, wrangler dev reads only secrets from there.
      WAVRY_ENVIRONMENT: "development",
      WAVRY_ISSUER: edgeUrl,
      WAVRY_ALLOWED_ORIGINS: edgeUrl,
      WAVRY_RELAY_MASTER_PUBLIC_KEY: master.x,
    };
    const edgeArgs = [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(options.edgePort)];
    edgeArgs.push(
      "--inspector-port",
      String(options.inspectorPort),
      "--persist-to",
      d1,
      "--env-file",
      devVars,
    );
    for (const [name, value] of Object.entries(vars)) edgeArgs.push("--var", `${name}:${value}`);
    say(`starting the edge on ${edgeUrl}`);
    const edge = new Child(process.execPath, edgeArgs, wranglerEnv, (line) => output("edge", line));
    children.push(edge);
    await waitFor("the edge", edge, `${edgeUrl}/healthz`, 60_000);

    const api = async <T>(
      route: string,
      token: string | null,
      body?: unknown,
    ): Promise<{ status: number; json: T }> => {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await fetch(`${edgeUrl}${route}`, {
        method: body === undefined ? "GET" : "POST",
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, json: (text === "" ? null : JSON.parse(text)) as T };
    };

    // The admin token is made once from the bootstrap secret (the edge refuses a second bootstrap) and kept.
    const adminFile = path.join(state, "admin-token");
    let adminToken: string | null = null;
    const admin = async (): Promise<string> => {
      if (adminToken !== null) return adminToken;
      const kept = readText(adminFile);
      if (kept !== null && (await api("/v1/admin/lease-keys", kept)).status === 200) {
        adminToken = kept;
        return kept;
      }
      const made = await api<{ token: string }>("/v1/admin/bootstrap", bootstrapToken, { name: "dev-stack" });
      if (made.status !== 201) {
        throw new Error(
          `admin bootstrap refused (${made.status}) and no valid admin token is kept in ${adminFile}; ` +
            `delete ${state} to start the development stack afresh`,
        );
      }
      writePrivate(adminFile, made.json.token);
      adminToken = made.json.token;
      return adminToken;
    };

    const now = Math.floor(Date.now() / 1000);
    if (saved.leaseKid === undefined || (saved.leaseCertExp ?? 0) < now + DAY_SECS) {
      say("creating a lease key and certifying it with the development master key");
      const token = await admin();
      const key = await api<{ kid: string; publicJwk: { x: string } }>("/v1/admin/lease-keys", token, {});
      if (key.status !== 201) throw new Error(`creating a lease key failed (${key.status})`);
      const exp = now + CERT_DAYS * DAY_SECS;
      const certificate = certify(master.privateKey, key.json.kid, key.json.publicJwk.x, now, exp);
      const uploaded = await api(`/v1/admin/lease-keys/${key.json.kid}/certificate`, token, { certificate });
      if (uploaded.status !== 200)
        throw new Error(`uploading the lease-key certificate failed (${uploaded.status})`);
      saved.leaseKid = key.json.kid;
      saved.leaseCertExp = exp;
      save();
    }

    // The relay: an enrollment token only when its record says it has not enrolled with this edge yet.
    const relayKey = path.join(state, "relay.key");
    const record = readText(`${relayKey}.enrollment.json`);
    const enrolledHere = recordedOrigin(record) === edgeUrl;
    const relayEnv: NodeJS.ProcessEnv = {
      ...process.env,
      WAVRY_ENVIRONMENT: "development",
      WAVRY_EDGE_URL: edgeUrl,
      WAVRY_RELAY_LISTEN: `127.0.0.1:${options.relayPort}`,
      WAVRY_RELAY_PUBLIC_ADDR: `127.0.0.1:${options.relayPort}`,
      WAVRY_RELAY_HEALTH_LISTEN: `127.0.0.1:${options.relayHealthPort}`,
      WAVRY_RELAY_KEY_FILE: relayKey,
      WAVRY_RELAY_REGION: "local-1",
      WAVRY_RELAY_MASTER_PUBLIC_KEY: master.x,
    };
    if (!enrolledHere) {
      const enrollment = await api<{ token: string }>(
        "/v1/admin/relays/enrollment-tokens",
        await admin(),
        {},
      );
      if (enrollment.status !== 201)
        throw new Error(`creating a relay enrollment token failed (${enrollment.status})`);
      relayEnv.WAVRY_RELAY_ENROLLMENT_TOKEN = enrollment.json.token;
    }
    const relayHealthUrl = `http://127.0.0.1:${options.relayHealthPort}`;
    say(`starting the relay on udp 127.0.0.1:${options.relayPort} (health ${relayHealthUrl})`);
    const relay = new Child(
      process.execPath,
      [...DAEMON_NODE_FLAGS, "--import", "tsx", path.join(ROOT, "relay-node/main.ts")],
      relayEnv,
      (line) => output("relay", line),
    );
    children.push(relay);
    await waitFor("the relay", relay, `${relayHealthUrl}/ready`, 30_000);

    // The development user: the password is random, kept 0600, and reaches `wavry login` only by environment.
    const passwordFile = path.join(state, "user-password");
    if (readText(passwordFile) === null) {
      const password = randomBytes(24).toString("base64url");
      const registered = await api("/v1/auth/register", null, { email: DEV_EMAIL, password });
      if (registered.status !== 201) {
        throw new Error(
          `registering ${DEV_EMAIL} failed (${registered.status}); delete ${state} to start afresh`,
        );
      }
      writePrivate(passwordFile, password);
    }
    const password = readText(passwordFile) ?? "";

    const envFor = (home: string): Record<string, string> => ({
      WAVRY_HOME: home,
      WAVRY_EDGE_URL: edgeUrl,
      WAVRY_ENVIRONMENT: "development",
    });
    const wavry = async (
      home: string,
      args: string[],
      extra: Record<string, string> = {},
    ): Promise<string> => {
      try {
        const { stdout } = await run(process.execPath, [WAVRY, ...args], {
          cwd: ROOT,
          env: { ...process.env, ...envFor(home), ...extra },
        });
        return stdout;
      } catch (error) {
        const stderr =
          typeof error === "object" && error !== null && "stderr" in error ? String(error.stderr) : "";
        throw new Error(`wavry ${args[0] ?? ""} failed for ${home}: ${stderr.trim()}`);
      }
    };
    const device = async (name: "host" | "client"): Promise<DevDevice> => {
      const home = path.join(state, name);
      if (!existsSync(path.join(home, "identity.json"))) {
        say(`creating the ${name} device identity`);
        await wavry(home, ["init"]);
      }
      let status = await wavry(home, ["status"]);
      if (!/^Enrolled:\s+yes/m.test(status)) {
        say(`enrolling the ${name} device`);
        await wavry(home, ["login", DEV_EMAIL], { WAVRY_PASSWORD: password });
        await wavry(home, ["enroll", "--name", `dev ${name}`]);
        status = await wavry(home, ["status"]);
      }
      const deviceId = /^Device id:\s+(d_\S+)/m.exec(status)?.[1];
      if (deviceId === undefined || !/^Enrolled:\s+yes/m.test(status)) {
        throw new Error(`the ${name} device in ${home} is not enrolled:\n${status}`);
      }
      return { home, deviceId };
    };
    const host = await device("host");
    const client = await device("client");
    for (const [self, peer] of [
      [host, client],
      [client, host],
    ] as const) {
      if (!(await wavry(self.home, ["trust", "list"])).includes(peer.deviceId)) {
        await wavry(self.home, ["trust", "pin", peer.deviceId]);
      }
    }
    const ended = new Promise<{ source: "edge" | "relay"; code: string }>((resolve) => {
      for (const [source, child] of [
        ["edge", edge],
        ["relay", relay],
      ] as const) {
        child.process.once("exit", (code, signal) => {
          if (!stopped) resolve({ source, code: String(code ?? signal ?? "unknown") });
        });
      }
    });
    return {
      ended,
      edgeUrl,
      relayAddr: `127.0.0.1:${options.relayPort}`,
      relayHealthUrl,
      email: DEV_EMAIL,
      host,
      client,
      envFor,
      processGroups: children.flatMap((child) =>
        child.process.pid === undefined ? [] : [child.process.pid],
      ),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
