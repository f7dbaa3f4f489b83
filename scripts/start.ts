/**
 * `npm start`: runs what exists of the Wavry stack locally, and says plainly what does not exist yet.
 *
 * Through the development bootstrap (scripts/dev-stack.ts): the edge in workerd through wrangler with a local D1
 * (migrations applied), the relay node enrolled with a certified lease key, a development user, and two device
 * homes (host and client), enrolled and pinning each other. The endpoint daemons (`wavry host`, `wavry connect`)
 * are not built yet; this script says so instead of pretending to start them.
 *
 * State lives in `.wavry/dev-stack/` (git-ignored) and is reused by the next run; delete it to start afresh.
 */
import path from "node:path";
import { type DevStack, startDevStack } from "./dev-stack.ts";
import { ensureDevVars } from "./dev-vars.ts";

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

const devVarsFile = ensureDevVars();
say(`development settings: ${path.relative(ROOT, devVarsFile)} (generated once, git-ignored)`);
say(
  `state: ${path.relative(ROOT, STATE_DIR)}/ (git-ignored; reused by the next run, delete it to start afresh)`,
);

let stack: DevStack | null = null;
let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say("stopping");
    await stack?.stop();
  }
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
say("not running (not built yet in this build):");
say("  wavry host / wavry connect - the endpoint daemons (capture, encode, inject; viewer, input) are not");
say("  wired to the peer link yet; both commands exit with 'not implemented yet in this build'");
say("try the device homes with the wavry CLI, e.g.:");
say(`  ${cli(running.host.home)} node bin/wavry.js status`);
say("press Ctrl-C to stop");
const ended = await running.ended;
say(`${ended.source} exited unexpectedly (${ended.code}); stopping the rest`);
await stop(1);
