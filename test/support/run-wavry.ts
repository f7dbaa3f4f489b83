import { spawn } from "node:child_process";
import path from "node:path";
import { ROOT } from "./vectors.ts";

/** How a `wavry` process ended and everything it wrote. */
export interface WavryRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `bin/wavry.js` with `args` in the repository, with exactly `env` (plus PATH) as its environment, and
 * collects its output; killed after `timeoutMs`. Rejects only when the process cannot be started.
 */
export function runWavry(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<WavryRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin", "wavry.js"), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
