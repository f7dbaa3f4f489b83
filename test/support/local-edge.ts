import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "./vectors.ts";

/**
 * The real edge for end-to-end tests: `wrangler dev` (workerd) on 127.0.0.1 with a throwaway local D1 (real
 * migrations applied), development settings and the given overrides. Always `stop()` it (kills the process group).
 */
export interface LocalEdge {
  readonly url: string;
  readonly bootstrapToken: string;
  stop(): Promise<void>;
}

const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const ENV = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "true",
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startLocalEdge(vars: Record<string, string> = {}): Promise<LocalEdge> {
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-edge-"));
  const migrate = spawnSync(
    process.execPath,
    [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", dir],
    {
      cwd: ROOT,
      env: ENV,
      encoding: "utf8",
    },
  );
  if (migrate.status !== 0) throw new Error(`applying migrations failed: ${migrate.stderr.slice(-500)}`);
  // An empty env file keeps the developer's .dev.vars and .env out of the run.
  writeFileSync(path.join(dir, "none.env"), "");
  const port = await freePort();
  const inspector = await freePort();
  const bootstrapToken = `e2e-bootstrap-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  const settings: Record<string, string> = {
    WAVRY_ENVIRONMENT: "development",
    WAVRY_ISSUER: `http://127.0.0.1:${port}`,
    WAVRY_ADMIN_BOOTSTRAP_TOKEN: bootstrapToken,
    ...vars,
  };
  const args = [
    WRANGLER,
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspector),
  ];
  args.push("--persist-to", dir, "--env-file", path.join(dir, "none.env"));
  for (const [name, value] of Object.entries(settings)) args.push("--var", `${name}:${value}`);
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    env: ENV,
    detached: true,
    stdio: "pipe",
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return { url, bootstrapToken, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  await stop();
  const why =
    child.exitCode !== null ? `exited with ${child.exitCode}` : "did not answer /healthz within 60 s";
  throw new Error(`the local edge ${why}:\n${output}`);
}

/** Options of one JSON call to the edge. */
export interface EdgeCallOptions {
  readonly method?: string;
  readonly token?: string;
  readonly body?: unknown;
}

/** One JSON call to a running edge: POST when there is a body, GET otherwise; the answer parsed. */
export async function callEdge<T = Record<string, unknown>>(
  baseUrl: string,
  route: string,
  options: EdgeCallOptions = {},
): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${baseUrl}${route}`, {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    headers,
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, json: (text === "" ? null : JSON.parse(text)) as T };
}
