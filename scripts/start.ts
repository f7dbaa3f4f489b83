/**
 * `npm start`: runs what exists of the Wavry stack locally, and says plainly what does not exist yet.
 *
 * Today: the edge skeleton in workerd through wrangler, with a local D1 whose migrations are applied first.
 * The relay node and the endpoint daemons (host and client) arrive with their issues; this script will start
 * them too, enrolled and connected, with no hand editing.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { ensureDevVars } from "./dev-vars.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const PORT = Number(process.env.WAVRY_EDGE_PORT ?? 8787);
// No telemetry, no prompts, and no fetch of Cloudflare's request.cf sample (this stack runs offline).
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "true",
};

function say(line: string): void {
  process.stdout.write(`[wavry] ${line}\n`);
}

say("starting the local stack. What runs today:");
say(
  "  edge     - Hono on workerd via wrangler, local D1 (migrations applied): accounts, devices, tokens, admin API",
);
say("Not started yet:");
say(
  "  relay    - relay-node/ exists (npx tsx relay-node/main.ts, see OPERATIONS.md); npm start will enroll and",
);
say("             start one once the endpoint issue adds the development bootstrap (master key, lease key)");
say("  host     - endpoint/ as host (capture, encode, inject)");
say("  client   - endpoint/ as client (viewer, input)");

say(`development settings: ${path.relative(ROOT, ensureDevVars())} (generated once, git-ignored)`);

const migrate = spawnSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local"], {
  cwd: ROOT,
  env,
  stdio: "inherit",
});
if (migrate.status !== 0) {
  say("applying the D1 migrations failed; see the output above");
  process.exit(1);
}

const children: ChildProcess[] = [];
const edge = spawn(process.execPath, [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(PORT)], {
  cwd: ROOT,
  env,
  stdio: ["ignore", "inherit", "inherit"],
});
children.push(edge);

function stop(code: number): never {
  for (const child of children) child.kill("SIGTERM");
  process.exit(code);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
edge.on("exit", (code) => {
  say(`edge exited (${code ?? "signal"})`);
  stop(code ?? 1);
});

const deadline = Date.now() + 60_000;
async function waitForEdge(): Promise<void> {
  const url = `http://127.0.0.1:${PORT}/healthz`;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.ok) {
        say(`edge ready: ${url} -> ${await response.text()}`);
        say("press Ctrl-C to stop");
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  say("the edge did not answer /healthz within 60 s");
  stop(1);
}
void waitForEdge();
