/**
 * Runs `wavry host` (in the dev stack's host home) and `wavry connect <host>` (in its client home) as child
 * processes: what `npm start` does after the stack is up, and what test/node/stack-session.test.ts runs. Each
 * child has a process group of its own, so a Ctrl-C on the terminal reaches only the caller, which stops them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { DevStack } from "./dev-stack.ts";
import { DAEMON_NODE_FLAGS } from "./node-flags.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const WAVRY = path.join(ROOT, "bin/wavry.js");
const HOST_READY = /is online; waiting for a session/;

/** What to run. */
export interface SessionPairOptions {
  readonly path: "direct" | "relay";
  /** `connect --record file:PATH`. */
  readonly recordPath?: string;
  /** `connect --duration N`: the pair stops by itself after N seconds. */
  readonly durationSecs?: number;
  readonly viewer: boolean;
  /** Extra `wavry host` arguments, e.g. `["--source", "x11", "--inject", "xdotool"]`. */
  readonly hostArgs?: readonly string[];
  /** Extra environment for the host only, e.g. `{ DISPLAY: ":120" }` for `--source x11`. */
  readonly hostEnv?: Readonly<Record<string, string>>;
  /** Each output line of the children, tagged with the child's name. */
  readonly onLine: (source: "host" | "connect", line: string) => void;
}

/** A running pair. */
export interface SessionPair {
  /** The viewer's URL once the client printed it. */
  viewerUrl(): string | null;
  /** `direct` or `relay` once the client's session is established. */
  sessionPath(): string | null;
  /** Resolves with the client's exit code (with a duration: 0 only if established and frames flowed). */
  readonly clientExited: Promise<number>;
  /** Resolves when the host exits by itself (it only should when stopped). */
  readonly hostExited: Promise<number>;
  /** Stops the client, then the host; resolves when both have exited. Idempotent. */
  stop(): Promise<void>;
}

function start(
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): { child: ChildProcess; exited: Promise<number> } {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, WAVRY, ...args], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let pending = "";
  const take = (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim() !== "") onLine(line);
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    child.once("error", () => resolve(1));
  });
  return { child, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<number>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-pid, name);
    } catch {
      // The group is gone already.
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts the host, waits until it is online, then starts the client. Rejects (after stopping the host) when the
 * host does not come online within 60 s.
 */
export async function startSessionPair(stack: DevStack, options: SessionPairOptions): Promise<SessionPair> {
  // The development edge speaks plain http, so its signaling socket is ws:// (allowed outside production only).
  const envOf = (home: string): NodeJS.ProcessEnv => ({
    ...process.env,
    ...stack.envFor(home),
    WAVRY_ALLOW_INSECURE_SIGNALING: "1",
  });
  let viewerUrl: string | null = null;
  let sessionPath: string | null = null;
  let hostReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    hostReady = resolve;
  });
  const hostEnv = { ...envOf(stack.host.home), ...options.hostEnv };
  const host = start(["host", ...(options.hostArgs ?? [])], hostEnv, (line) => {
    if (HOST_READY.test(line)) hostReady();
    options.onLine("host", line);
  });
  const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 60_000).unref());
  const outcome = await Promise.race([ready.then(() => "ready" as const), host.exited, timeout]);
  if (outcome !== "ready") {
    await stopChild(host.child, host.exited, 3000);
    throw new Error(outcome === "timeout" ? "wavry host did not come online" : "wavry host exited at start");
  }
  const args = ["connect", stack.host.deviceId, "--path", options.path];
  if (options.recordPath !== undefined) args.push("--record", `file:${options.recordPath}`);
  if (options.durationSecs !== undefined) args.push("--duration", String(options.durationSecs));
  if (!options.viewer) args.push("--no-viewer");
  const client = start(args, envOf(stack.client.home), (line) => {
    const viewer = /\bviewer: (\S+)/.exec(line);
    if (viewer?.[1] !== undefined) viewerUrl = viewer[1];
    const established = /session established .* via (direct|relay)/.exec(line);
    if (established?.[1] !== undefined) sessionPath = established[1];
    options.onLine("connect", line);
  });
  let stopping: Promise<void> | null = null;
  return {
    viewerUrl: () => viewerUrl,
    sessionPath: () => sessionPath,
    clientExited: client.exited,
    hostExited: host.exited,
    stop: () => {
      stopping ??= (async () => {
        await stopChild(client.child, client.exited, 5000);
        await stopChild(host.child, host.exited, 5000);
      })();
      return stopping;
    },
  };
}
