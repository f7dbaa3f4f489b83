/**
 * `npm run bench:edge`: the edge's token paths next to a trivial route, against one local worker in one run.
 *
 *  - device-token issuance per second: POST /v1/devices/challenge, then POST /v1/devices/token with the device's
 *    signature over the challenge; one issuance per completed pair;
 *  - token verification per second: GET /v1/devices/me with a device access token (EdDSA JWT, then the device and
 *    its owner in D1);
 *  - GET /healthz per second: the floor, the same middleware stack (config guard, address block, CORS, the global
 *    rate-limit Durable Object) with no route work;
 *  - the CPU time of one Argon2id password hash (register and login run one each).
 *
 * The edge runs in workerd through `wrangler dev`, from a copy of the sources taken at start and with its own
 * temporary persistence dir (D1, rate-limit and audit state), so neither an edit in the checkout nor the developer's
 * .wrangler/state can touch the run; it is stopped and the dir removed at the end, also on an error or Ctrl-C.
 * Each contender keeps CONCURRENCY requests in flight; rounds alternate between contenders and the median round
 * counts, so a busy moment hits all of them alike. Every response is checked: a failure is counted and shown, never
 * counted as throughput, and more than 1% failures aborts the run.
 *
 * On Linux the CPU time of each process is also reported per operation: this client, wrangler's node process and
 * its two workerd (a proxy that owns the port, and the one running the Worker). The rates depend on whatever else
 * the machine runs; CPU per operation much less. Read them as local figures: wrangler dev adds its proxy, a log
 * call per request, and a devtools relay that forwards inspector events for every subrequest (each D1 query is
 * one) to wrangler, none of which exists in production.
 * The last line is one JSON object with every figure.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomFillSync } from "node:crypto";
import {
  closeSync,
  cpSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { hashPassword } from "../edge/security/password.ts";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  type KeyPair,
  type RandomSource,
} from "../protocol/crypto/backend.ts";
import { nodeBackend } from "../protocol/crypto/node-backend.ts";
import { enrollmentProofMessage, tokenChallengeMessage } from "../protocol/identity/device-proofs.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const random: RandomSource = (n) => randomFillSync(new Uint8Array(n));

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}
const ROUNDS = positiveInt("BENCH_ROUNDS", 5);
const ROUND_MS = positiveInt("BENCH_ROUND_MS", 2000);
const CONCURRENCY = positiveInt("BENCH_CONCURRENCY", 16);
// node:http by default: Node 20's fetch costs about four times its CPU per request, and on a small machine the
// client's CPU is taken from the edge under test. BENCH_CLIENT=fetch measures with fetch for comparison.
const CLIENT = process.env.BENCH_CLIENT === "fetch" ? "fetch" : "node:http";
const WARMUP_MS = Math.min(1000, ROUND_MS);
const REQUEST_TIMEOUT_MS = 10_000;
const ARGON2_RUNS = 5;
const READY_TIMEOUT_MS = 60_000;
/** More failed operations than this share of all attempts aborts the run: the figures would be meaningless. */
const MAX_FAILURE_SHARE = 0.01;

// As scripts/start.ts: no telemetry, no prompts, no fetch of Cloudflare's request.cf sample (offline).
const wranglerEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "true",
};

const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const b64url = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64url");

function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const round1 = (value: number) => Math.round(value * 10) / 10;
const round3 = (value: number) => Math.round(value * 1000) / 1000;

// ---------------------------------------------------------------------------------------------------------------
// HTTP. Connections are kept alive, so after the warm-up each in-flight slot reuses its connection and no round
// pays for TCP setup.

interface Reply {
  readonly status: number;
  readonly text: string;
}

interface RequestOptions {
  readonly body?: unknown;
  readonly token?: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function requestHttp(url: URL, method: string, headers: Record<string, string>, body: string | null) {
  // A declared length, not chunked encoding: what a real client of this API sends.
  if (body !== null) headers["content-length"] = String(Buffer.byteLength(body));
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(body ?? undefined);
  });
}

async function requestFetch(url: URL, method: string, headers: Record<string, string>, body: string | null) {
  const response = await fetch(url, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  // Always read the body: an unread one keeps its connection from being reused.
  return { status: response.status, text: await response.text() };
}

function request(base: string, method: "GET" | "POST", route: string, options: RequestOptions = {}) {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | null = null;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] = "application/json";
  }
  const url = new URL(route, base);
  return CLIENT === "fetch"
    ? requestFetch(url, method, headers, body)
    : requestHttp(url, method, headers, body);
}

/** A string member of a JSON object reply, or null. */
function field(text: string, name: string): string | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return null;
    const member: unknown = Reflect.get(value, name);
    return typeof member === "string" ? member : null;
  } catch {
    return null;
  }
}

const describe = (what: string, reply: Reply) => `${what} -> ${reply.status} ${reply.text.slice(0, 160)}`;

// ---------------------------------------------------------------------------------------------------------------
// The local edge: a wrangler dev of our own, in its own process group so that wrangler and its workerd children
// stop together (and a Ctrl-C in the terminal reaches only us, and we stop them in order).

interface Edge {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly base: string;
  readonly port: number;
  readonly logFile: string;
}

let workDir: string | null = null;
let edge: Edge | null = null;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no output)";
  }
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Stops wrangler and its workerd children (SIGTERM, then SIGKILL after 5 s), then removes the temporary dir. */
async function cleanup(): Promise<void> {
  agent.destroy();
  const running = edge;
  edge = null;
  if (running !== null) {
    signalGroup(running.pid, "SIGTERM");
    const deadline = Date.now() + 5000;
    while (groupAlive(running.pid) && Date.now() < deadline) await sleep(100);
    if (groupAlive(running.pid)) signalGroup(running.pid, "SIGKILL");
  }
  if (workDir !== null) {
    rmSync(workDir, { recursive: true, force: true });
    workDir = null;
  }
}

// Last resort when the process ends some other way: an exit handler cannot wait, so no grace period.
process.on("exit", () => {
  if (edge !== null) signalGroup(edge.pid, "SIGKILL");
  if (workDir !== null) rmSync(workDir, { recursive: true, force: true });
});
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping the edge`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** Top-level entries of the checkout not copied for wrangler: history, dependencies, state, local secrets. */
const NOT_COPIED = new Set([
  ".git",
  "node_modules",
  ".wrangler",
  ".dev.vars",
  "dist",
  "coverage",
  ".wavry",
  ".tmp",
]);

async function startEdge(): Promise<Edge> {
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-bench-edge-"));
  workDir = dir;
  // wrangler runs from a copy of the sources taken now: it watches them and restarts workerd on any change, so an
  // edit made in the checkout while the bench runs would otherwise land in the middle of the rounds. The copy
  // also keeps wrangler's own .wrangler/tmp out of the checkout. Dependencies are linked, not copied.
  const src = path.join(dir, "src");
  cpSync(ROOT, src, { recursive: true, filter: (from) => !NOT_COPIED.has(path.relative(ROOT, from)) });
  symlinkSync(path.join(ROOT, "node_modules"), path.join(src, "node_modules"), "dir");
  // An empty env file of our own: given --env-file, wrangler reads neither .dev.vars nor .env, so the developer's
  // settings cannot change what is measured; the worker's settings all come from the --var flags below.
  const envFile = path.join(dir, "empty.env");
  writeFileSync(envFile, "", { mode: 0o600 });
  const common = ["--persist-to", path.join(dir, "state"), "--env-file", envFile];

  const migrate = spawnSync(
    process.execPath,
    [WRANGLER, "d1", "migrations", "apply", "DB", "--local", ...common],
    { cwd: src, env: wranglerEnv, encoding: "utf8", timeout: 60_000 },
  );
  if (migrate.status !== 0) {
    const output = `${migrate.stdout ?? ""}${migrate.stderr ?? ""}`.trimEnd().split("\n").slice(-25);
    throw new Error(
      `applying the D1 migrations to ${dir} failed (${migrate.status ?? migrate.signal}):\n${output.join("\n")}`,
    );
  }

  const port = await freePort();
  // wrangler opens a devtools port too; its fixed default would collide with an `npm start` already running.
  const inspectorPort = await freePort();
  const vars = {
    WAVRY_ENVIRONMENT: "development",
    WAVRY_ADMIN_BOOTSTRAP_TOKEN: randomBytes(32).toString("base64url"),
    // Raised so the limiter never throttles the bench; it still runs (a Durable Object call per budget).
    WAVRY_GLOBAL_RATE_LIMIT: "1000000",
    WAVRY_TOKEN_RATE_LIMIT: "100000",
    WAVRY_TOKEN_RATE_LIMIT_WINDOW_SECS: "1",
    WAVRY_AUTH_RATE_LIMIT: "100000",
    WAVRY_AUTH_RATE_LIMIT_WINDOW_SECS: "1",
  };
  const args = [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(port)];
  args.push("--inspector-port", String(inspectorPort), ...common);
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);

  // wrangler logs a line per request: to a file, so a full pipe can never stall it, and shown if it fails.
  const logFile = path.join(dir, "wrangler.log");
  const out = openSync(logFile, "a");
  const child = spawn(process.execPath, args, {
    cwd: src,
    env: wranglerEnv,
    stdio: ["ignore", out, out],
    detached: true,
  });
  closeSync(out);
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not start wrangler");
  const started: Edge = { child, pid, base: `http://127.0.0.1:${port}`, port, logFile };
  edge = started;

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `wrangler dev exited (${child.exitCode ?? child.signalCode}) before the edge answered:\n${tail(logFile)}`,
      );
    }
    let reply: Reply | null = null;
    try {
      reply = await request(started.base, "GET", "/healthz");
    } catch {
      // Not listening yet.
    }
    if (reply?.status === 200) return started;
    // A configuration error does not go away by waiting.
    if (reply?.text.includes("configuration_error")) {
      throw new Error(`the edge refuses to serve: ${describe("GET /healthz", reply)}`);
    }
    await sleep(250);
  }
  throw new Error(
    `the edge did not answer GET /healthz within ${READY_TIMEOUT_MS / 1000} s; wrangler said:\n${tail(logFile)}`,
  );
}

const RELOAD_MARKER = "Reloading local server";

/**
 * wrangler dev watches the Worker's sources and restarts workerd when one changes. A restart in the middle of the
 * rounds would measure a cold Worker in some of them and lose the CPU counters, so from now on it aborts the run.
 */
function reloadWatcher(logFile: string, tree: Map<number, CpuPart> | null): () => void {
  let offset = statSync(logFile).size;
  return () => {
    const workerd = [...(tree ?? [])].filter(
      ([, part]) => part === "workerdProxy" || part === "workerdWorker",
    );
    const gone = workerd.some(([pid]) => readStat(pid) === null);
    const fd = openSync(logFile, "r");
    try {
      const size = fstatSync(fd).size;
      // Back up a little: the marker may straddle two checks.
      const from = Math.max(0, offset - RELOAD_MARKER.length);
      const chunk = Buffer.alloc(size - from);
      readSync(fd, chunk, 0, chunk.length, from);
      offset = size;
      if (gone || chunk.includes(RELOAD_MARKER)) {
        throw new Error(
          "wrangler reloaded the Worker during the rounds (a source file changed), so the figures would mix " +
            "a warm and a cold Worker; run again",
        );
      }
    } finally {
      closeSync(fd);
    }
  };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU per process: which part of the local stack a request's time goes to. Linux /proc only; elsewhere omitted.

type CpuPart = "client" | "wranglerNode" | "workerdProxy" | "workerdWorker" | "other";
type CpuSample = Record<CpuPart, number>;
const CPU_PARTS: readonly CpuPart[] = ["client", "wranglerNode", "workerdProxy", "workerdWorker", "other"];
const CPU_LABELS: Record<CpuPart, string> = {
  client: "bench client",
  wranglerNode: "wrangler (node)",
  workerdProxy: "workerd proxy",
  workerdWorker: "workerd worker",
  other: "other",
};

function clockTicksPerSecond(): number {
  const result = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const ticks = Number(result.stdout?.trim());
  return Number.isSafeInteger(ticks) && ticks > 0 ? ticks : 100;
}

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly ticks: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // After the name come state and ppid; utime and stime are fields 14 and 15 of the whole line.
    return { pid, ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** The wrangler process tree, each process labelled with the part of the stack it is; null without /proc. */
function processTree(root: Edge): Map<number, CpuPart> | null {
  let pids: number[];
  try {
    pids = readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return null;
  }
  const children = new Map<number, ProcStat[]>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat === null) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(stat);
    children.set(stat.ppid, list);
  }
  const tree = new Map<number, CpuPart>([[root.pid, "wranglerNode"]]);
  const queue = [root.pid];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      let part: CpuPart = "other";
      if (child.comm === "node") part = "wranglerNode";
      else if (child.comm === "workerd") {
        // wrangler runs two workerd: a proxy that owns our port and forwards to the one running the Worker.
        const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, "utf8");
        part = cmdline.includes(`entry=127.0.0.1:${root.port}`) ? "workerdProxy" : "workerdWorker";
      }
      tree.set(child.pid, part);
      queue.push(child.pid);
    }
  }
  return tree;
}

function sampleCpu(tree: Map<number, CpuPart> | null, msPerTick: number): CpuSample {
  const usage = process.cpuUsage();
  const sample: CpuSample = {
    client: (usage.user + usage.system) / 1000,
    wranglerNode: 0,
    workerdProxy: 0,
    workerdWorker: 0,
    other: 0,
  };
  for (const [pid, part] of tree ?? []) sample[part] += (readStat(pid)?.ticks ?? 0) * msPerTick;
  return sample;
}

// ---------------------------------------------------------------------------------------------------------------
// Setup: an account and a device, enrolled the way a signed-in user's device enrolls.

interface Device {
  readonly id: string;
  readonly ed25519: KeyPair;
}

/** For setup steps: the reply, or an error naming the step, the status and the body. */
async function expectStatus(what: string, status: number, reply: Promise<Reply>): Promise<Reply> {
  const got = await reply;
  if (got.status !== status) throw new Error(`setup failed: ${describe(what, got)}`);
  return got;
}

async function enrollDevice(base: string): Promise<Device> {
  const email = `bench-${randomBytes(6).toString("hex")}@example.com`;
  const password = randomBytes(18).toString("base64url");
  const credentials = { body: { email, password } };
  await expectStatus("POST /v1/auth/register", 201, request(base, "POST", "/v1/auth/register", credentials));
  const login = await expectStatus(
    "POST /v1/auth/login",
    200,
    request(base, "POST", "/v1/auth/login", credentials),
  );
  const userToken = field(login.text, "accessToken");
  if (userToken === null) throw new Error(`setup failed: no accessToken in ${login.text.slice(0, 160)}`);
  // The enrollment proof binds the keys to the account: the user id, which is the access token's `sub`.
  const userId = field(Buffer.from(userToken.split(".")[1] ?? "", "base64url").toString("utf8"), "sub");
  if (userId === null) throw new Error("setup failed: the user access token has no sub");

  const x25519 = generateX25519KeyPair(nodeBackend, random);
  const ed25519 = generateEd25519KeyPair(nodeBackend, random);
  const name = "bench device";
  const timestampMs = Date.now();
  const proof = nodeBackend.ed25519Sign(
    ed25519.privateKey,
    enrollmentProofMessage({
      userIdOrCode: userId,
      x25519Public: x25519.publicKey,
      ed25519Public: ed25519.publicKey,
      name,
      timestampMs,
    }),
  );
  const enrolled = await expectStatus(
    "POST /v1/devices",
    201,
    request(base, "POST", "/v1/devices", {
      token: userToken,
      body: {
        name,
        x25519PublicKey: b64url(x25519.publicKey),
        ed25519PublicKey: b64url(ed25519.publicKey),
        timestampMs,
        proof: b64url(proof),
      },
    }),
  );
  const id = field(enrolled.text, "deviceId");
  if (id === null) throw new Error(`setup failed: no deviceId in ${enrolled.text.slice(0, 160)}`);
  return { id, ed25519 };
}

/** One challenge/response exchange: a device access token, or why it failed. */
async function issueDeviceToken(
  base: string,
  device: Device,
): Promise<{ token: string } | { failure: string }> {
  const challenge = await request(base, "POST", "/v1/devices/challenge", { body: { deviceId: device.id } });
  const challengeId = field(challenge.text, "challengeId");
  const challengeBytes = field(challenge.text, "challenge");
  if (challenge.status !== 200 || challengeId === null || challengeBytes === null) {
    return { failure: describe("POST /v1/devices/challenge", challenge) };
  }
  const message = tokenChallengeMessage({
    challengeId,
    challenge: new Uint8Array(Buffer.from(challengeBytes, "base64url")),
    deviceId: device.id,
  });
  const signature = b64url(nodeBackend.ed25519Sign(device.ed25519.privateKey, message));
  const issued = await request(base, "POST", "/v1/devices/token", { body: { challengeId, signature } });
  const token = field(issued.text, "accessToken");
  if (issued.status !== 200 || token === null) return { failure: describe("POST /v1/devices/token", issued) };
  return { token };
}

// ---------------------------------------------------------------------------------------------------------------
// The load: CONCURRENCY loops per contender, each starting its next operation when its last one finished, until
// the round's time is up; a round's rate is its completed operations over the time until the last one finished.

interface Contender {
  readonly label: string;
  /** One operation: null when it succeeded, else why it failed. */
  readonly op: () => Promise<string | null>;
  readonly rps: number[];
  readonly latencyMs: number[];
  ok: number;
  failed: number;
  readonly failures: Map<string, number>;
  readonly cpuMs: CpuSample;
  countedOps: number;
}

function contender(label: string, op: () => Promise<string | null>): Contender {
  const cpuMs: CpuSample = { client: 0, wranglerNode: 0, workerdProxy: 0, workerdWorker: 0, other: 0 };
  return { label, op, rps: [], latencyMs: [], ok: 0, failed: 0, failures: new Map(), cpuMs, countedOps: 0 };
}

interface RoundContext {
  readonly tree: Map<number, CpuPart> | null;
  readonly msPerTick: number;
}

async function runRound(c: Contender, ms: number, context: RoundContext, counted: boolean): Promise<void> {
  let ok = 0;
  const latencies: number[] = [];
  const cpuBefore = sampleCpu(context.tree, context.msPerTick);
  const start = performance.now();
  const deadline = start + ms;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      let failure: string | null;
      try {
        failure = await c.op();
      } catch (error) {
        const cause =
          error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
        failure = error instanceof Error ? `${error.name}: ${error.message}${cause}` : String(error);
      }
      if (failure === null) {
        ok++;
        latencies.push(performance.now() - t0);
      } else {
        c.failed++;
        c.failures.set(failure, (c.failures.get(failure) ?? 0) + 1);
        // A refused connection fails at once: do not spin on it.
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  const seconds = (performance.now() - start) / 1000;
  const cpuAfter = sampleCpu(context.tree, context.msPerTick);
  c.ok += ok;
  if (counted) {
    c.rps.push(ok / seconds);
    c.latencyMs.push(median(latencies));
    c.countedOps += ok;
    for (const part of CPU_PARTS) c.cpuMs[part] += cpuAfter[part] - cpuBefore[part];
  }
  const attempts = c.ok + c.failed;
  if (c.failed > attempts * MAX_FAILURE_SHARE) {
    throw new Error(
      `${c.label}: ${c.failed} of ${attempts} operations failed (more than ${MAX_FAILURE_SHARE * 100}%):\n` +
        failureSummary(c),
    );
  }
}

function failureSummary(c: Contender): string {
  return [...c.failures.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([reason, count]) => `    ${count} x ${reason}`)
    .join("\n");
}

// ---------------------------------------------------------------------------------------------------------------

/** CPU (user + system) of hashPassword in this process: the same module and @noble/hashes code the Worker runs. */
function argon2idCpu(): { cpuMs: number; wallMs: number } {
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < ARGON2_RUNS; i++) {
    const before = process.cpuUsage();
    const t0 = performance.now();
    hashPassword("correct horse battery staple", random);
    wall.push(performance.now() - t0);
    const used = process.cpuUsage(before);
    cpu.push((used.user + used.system) / 1000);
  }
  return { cpuMs: median(cpu), wallMs: median(wall) };
}

async function main(): Promise<void> {
  log(
    `node ${process.version}, client ${CLIENT}, ${CONCURRENCY} requests in flight, ${ROUNDS} rounds of ` +
      `${ROUND_MS} ms per contender (alternating), medians reported`,
  );

  // First, before the edge exists, so that nothing of ours competes for the CPU.
  const argon2 = argon2idCpu();
  log(
    `argon2id hash (m=19456 KiB, t=2, p=1): ${argon2.cpuMs.toFixed(1)} ms CPU (user+system, median of ` +
      `${ARGON2_RUNS}; ${argon2.wallMs.toFixed(1)} ms wall)`,
  );
  log(
    "    measured in Node, running the code the Worker runs (hashPassword from edge/security/password.ts, " +
      "@noble/hashes); workerd's V8 is a different build",
  );

  const started = await startEdge();
  const base = started.base;
  log(`edge: wrangler dev (workerd) on ${base}, temporary state in ${workDir ?? "?"}`);
  const device = await enrollDevice(base);
  const first = await issueDeviceToken(base, device);
  if ("failure" in first) throw new Error(`setup failed: ${first.failure}`);
  const deviceToken = first.token;

  const trivial = contender("GET /healthz", async () => {
    const reply = await request(base, "GET", "/healthz");
    return reply.status === 200 ? null : describe("GET /healthz", reply);
  });
  const verify = contender("token verify (GET /v1/devices/me)", async () => {
    const reply = await request(base, "GET", "/v1/devices/me", { token: deviceToken });
    const ok = reply.status === 200 && field(reply.text, "deviceId") === device.id;
    return ok ? null : describe("GET /v1/devices/me", reply);
  });
  const issue = contender("token issue (challenge + token)", async () => {
    const result = await issueDeviceToken(base, device);
    return "failure" in result ? result.failure : null;
  });
  const contenders = [trivial, verify, issue];

  const context: RoundContext = { tree: processTree(started), msPerTick: 1000 / clockTicksPerSecond() };
  const checkReload = reloadWatcher(started.logFile, context.tree);
  // Warm-up: the JIT in workerd and here, connections opened, the Worker's key and block-list caches filled.
  for (const c of contenders) await runRound(c, WARMUP_MS, context, false);
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate who goes first, so that no contender always runs right after the same neighbour.
    for (let i = 0; i < contenders.length; i++) {
      const c = contenders[(round + i) % contenders.length];
      if (c !== undefined) await runRound(c, ROUND_MS, context, true);
      checkReload();
    }
  }
  await cleanup();

  const trivialRps = median(trivial.rps);
  const cpuPerOp = (c: Contender) => {
    const out: Partial<CpuSample & { total: number }> = {};
    let total = 0;
    for (const part of CPU_PARTS) {
      if (part !== "client" && context.tree === null) continue;
      const ms = c.cpuMs[part] / Math.max(1, c.countedOps);
      out[part] = round3(ms);
      total += ms;
    }
    out.total = round3(total);
    return out;
  };
  for (const c of contenders) {
    const rps = median(c.rps);
    log(
      `${c.label.padEnd(34)} ${rps.toFixed(0).padStart(6)} /s  ${(rps / trivialRps).toFixed(3)} x trivial   ` +
        `median latency ${median(c.latencyMs).toFixed(1)} ms   failures ${c.failed} of ${c.ok + c.failed}`,
    );
    log(`    per round /s: ${c.rps.map((r) => r.toFixed(0)).join(" ")}`);
    const perOp = cpuPerOp(c);
    const parts = CPU_PARTS.filter((part) => (perOp[part] ?? 0) > 0).map(
      (part) => `${CPU_LABELS[part]} ${(perOp[part] ?? 0).toFixed(2)}`,
    );
    log(`    CPU ms per op: ${parts.join(", ")}; total ${(perOp.total ?? 0).toFixed(2)}`);
    if (c.failed > 0) log(`    failures:\n${failureSummary(c)}`);
  }

  const figures = {
    trivialRps: Math.round(trivialRps),
    tokenVerifyRps: Math.round(median(verify.rps)),
    deviceTokenIssueRps: Math.round(median(issue.rps)),
    tokenVerifyToTrivialRatio: round3(median(verify.rps) / trivialRps),
    deviceTokenIssueToTrivialRatio: round3(median(issue.rps) / trivialRps),
    trivialMedianLatencyMs: round1(median(trivial.latencyMs)),
    tokenVerifyMedianLatencyMs: round1(median(verify.latencyMs)),
    deviceTokenIssueMedianLatencyMs: round1(median(issue.latencyMs)),
    argon2idCpuMs: round1(argon2.cpuMs),
    argon2idWallMs: round1(argon2.wallMs),
    failures: { trivial: trivial.failed, tokenVerify: verify.failed, deviceTokenIssue: issue.failed },
    roundsRps: {
      trivial: trivial.rps.map(Math.round),
      tokenVerify: verify.rps.map(Math.round),
      deviceTokenIssue: issue.rps.map(Math.round),
    },
    cpuMsPerOp: {
      trivial: cpuPerOp(trivial),
      tokenVerify: cpuPerOp(verify),
      deviceTokenIssue: cpuPerOp(issue),
    },
    client: CLIENT,
    concurrency: CONCURRENCY,
    roundMs: ROUND_MS,
    rounds: ROUNDS,
  };
  log(JSON.stringify(figures));
}

try {
  await main();
} catch (error) {
  // After Ctrl-C the signal handler is already stopping the edge; what failed then is only its shutdown.
  if (!stopping) {
    process.stderr.write(`bench:edge failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await cleanup();
    process.exit(1);
  }
}
