/**
 * `npm start`: runs what exists of the Wavry stack locally, and says plainly what does not exist yet.
 *
 * Through the development bootstrap (scripts/dev-stack.ts): the edge in workerd through wrangler with a local D1
 * (migrations applied), the relay node enrolled with a certified lease key, a development user, and two device
 * homes (host and client), enrolled and pinning each other. Then `wavry host` (host home) and `wavry connect <host>`
 * (client home) run as child processes (scripts/session-pair.ts), and the viewer URL and session path are printed.
 *
 * `npm start -- --duration N --record PATH [--path direct|relay]` stops after N seconds, leaves what the client
 * received in PATH (raw H.264), and exits 0 only if the session was established and frames flowed.
 *
 * State lives in `.wavry/dev-stack/` (git-ignored) and is reused by the next run; delete it to start afresh.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { type DevStack, startDevStack } from "./dev-stack.ts";
import { ensureDevVars } from "./dev-vars.ts";
import { type SessionPair, startSessionPair } from "./session-pair.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const STATE_DIR = path.join(ROOT, ".wavry", "dev-stack");

function say(line: string): void {
  process.stdout.write(`[wavry] ${line}\n`);
}

function port(name: string, fallback: number): number {
  const text = process.env[name];
  const value = text === undefined || text === "" ? fallback : Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 65_535) {
    say(`${name} must be a port number (1-65535)`);
    process.exit(2);
  }
  return value;
}

interface StartArgs {
  readonly durationSecs?: number;
  readonly recordPath?: string;
  readonly path: "direct" | "relay";
}

function startArgs(): StartArgs {
  let values: { duration?: string; record?: string; path?: string };
  try {
    values = parseArgs({
      args: process.argv.slice(2),
      options: { duration: { type: "string" }, record: { type: "string" }, path: { type: "string" } },
      strict: true,
    }).values;
  } catch (error) {
    say(error instanceof Error ? (error.message.split("\n")[0] ?? "bad arguments") : "bad arguments");
    say("usage: npm start -- [--duration N] [--record PATH] [--path direct|relay]");
    process.exit(2);
  }
  const duration = values.duration === undefined ? undefined : Number(values.duration);
  if (duration !== undefined && (!Number.isFinite(duration) || duration <= 0)) {
    say("--duration must be a positive number of seconds");
    process.exit(2);
  }
  const sessionPath = values.path ?? "direct";
  if (sessionPath !== "direct" && sessionPath !== "relay") {
    say("--path must be direct or relay");
    process.exit(2);
  }
  return {
    path: sessionPath,
    ...(duration !== undefined && { durationSecs: duration }),
    ...(values.record !== undefined && { recordPath: path.resolve(values.record) }),
  };
}

const args = startArgs();
const devVarsFile = ensureDevVars();
say(`development settings: ${path.relative(ROOT, devVarsFile)} (generated once, git-ignored)`);
say(
  `state: ${path.relative(ROOT, STATE_DIR)}/ (git-ignored; reused by the next run, delete it to start afresh)`,
);

let stack: DevStack | null = null;
let pair: SessionPair | null = null;
let stopping: Promise<void> | null = null;
/** Stops the session pair, then the stack, then exits; a second caller waits for the first stop to finish. */
async function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    say("stopping");
    await pair?.stop();
    await stack?.stop();
  })();
  await stopping;
  process.exit(code);
}
// The children run in process groups of their own, so Ctrl-C reaches only this process. During start there is
// nothing to stop yet from here: the start finishes (or fails and stops its children itself), then stops.
let interrupted = false;
const onSignal = () => {
  if (stack === null) interrupted = true;
  else void stop(0);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  stack = await startDevStack({
    stateDir: STATE_DIR,
    devVarsFile,
    edgePort: port("WAVRY_EDGE_PORT", 8787),
    inspectorPort: port("WAVRY_EDGE_INSPECTOR_PORT", 9229),
    relayPort: port("WAVRY_RELAY_PORT", 7400),
    relayHealthPort: port("WAVRY_RELAY_HEALTH_PORT", 9090),
    say,
    onOutput: (source, line) => process.stdout.write(`[${source}] ${line}\n`),
  });
} catch (error) {
  say(`the development stack did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
if (interrupted) await stop(0);

const running = stack;
const health = await (await fetch(`${running.edgeUrl}/healthz`)).text();
const cli = (home: string) =>
  Object.entries(running.envFor(home))
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
say("");
say("running:");
say(`  edge     ${running.edgeUrl}  (Hono on workerd via wrangler, local D1) /healthz -> ${health}`);
say(
  `  relay    udp ${running.relayAddr}, health ${running.relayHealthUrl}/ready (enrolled, lease key certified)`,
);
say(
  `  user     ${running.email} (password kept in ${path.relative(ROOT, STATE_DIR)}/user-password, mode 0600)`,
);
say(`  host     device ${running.host.deviceId}, home ${path.relative(ROOT, running.host.home)} (enrolled)`);
say(
  `  client   device ${running.client.deviceId}, home ${path.relative(ROOT, running.client.home)} (enrolled)`,
);
say("  host and client pin each other's keys in their trust stores");
say("try the device homes with the wavry CLI, e.g.:");
say(`  ${cli(running.host.home)} node bin/wavry.js status`);
say("");
say(
  `starting wavry host (host home) and wavry connect ${running.host.deviceId} (client home, ${args.path} path)`,
);
try {
  pair = await startSessionPair(running, {
    path: args.path,
    viewer: true,
    ...(args.durationSecs !== undefined && { durationSecs: args.durationSecs }),
    ...(args.recordPath !== undefined && { recordPath: args.recordPath }),
    onLine: (source, line) => {
      process.stdout.write(`[${source}] ${line}\n`);
      if (source !== "connect") return;
      const viewer = /^viewer: (\S+)/.exec(line)?.[1];
      if (viewer !== undefined) say(`open the viewer: ${viewer}`);
      const established = /^session established .* via (direct|relay)/.exec(line)?.[1];
      if (established !== undefined) say(`session path: ${established}`);
    },
  });
} catch (error) {
  say(`the session did not start: ${error instanceof Error ? error.message : String(error)}`);
  await stop(1);
}
const session = pair;
if (stopping !== null) {
  // Ctrl-C arrived while the pair was starting: the stop in progress could not see it yet.
  await session?.stop();
  await stop(0);
}
if (session === null) await stop(1);
else {
  const summary = async (code: number) => {
    say(`session path: ${session.sessionPath() ?? "not established"}`);
    if (args.recordPath !== undefined) say(`recorded to ${args.recordPath}`);
    say(code === 0 ? "the session was established and frames flowed" : `the client exited with ${code}`);
  };
  if (args.durationSecs === undefined) say("press Ctrl-C to stop");
  const ended = await Promise.race([
    running.ended.then((e) => ({
      kind: "stack" as const,
      text: `${e.source} exited unexpectedly (${e.code})`,
    })),
    session.hostExited.then((code) => ({ kind: "host" as const, text: `wavry host exited (${code})` })),
    session.clientExited.then((code) => ({ kind: "client" as const, code })),
  ]);
  if (ended.kind === "client") {
    await summary(ended.code);
    await stop(args.durationSecs !== undefined ? ended.code : ended.code === 0 ? 0 : 1);
  } else {
    say(`${ended.text}; stopping the rest`);
    await stop(1);
  }
}
