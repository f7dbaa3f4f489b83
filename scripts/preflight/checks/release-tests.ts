import { spawn } from "node:child_process";
import { type Finding, fail, pass } from "../findings.ts";

/** Runs a command in `cwd`; resolves with its exit code and the tail of its output. */
export type CommandRunner = (
  command: string,
  args: readonly string[],
  cwd: string,
) => Promise<{ readonly code: number; readonly tail: string }>;

/** `--with-tests`: the same gates `npm test` runs, each its own finding. */
export const RELEASE_GATES = [
  { check: "tests-lint", command: "npm", args: ["run", "-s", "lint"], what: "Biome (format and lint)" },
  {
    check: "tests-typecheck",
    command: "npm",
    args: ["run", "-s", "typecheck"],
    what: "TypeScript, every target",
  },
  {
    check: "tests-suite",
    command: "npx",
    args: ["vitest", "run"],
    what: "vitest, Node and Workers projects",
  },
] as const;

const TAIL_BYTES = 4000;

/** The real runner: output is kept (its last 4000 bytes) rather than interleaved with the finding lines. */
export const spawnRunner: CommandRunner = (command, args, cwd) =>
  new Promise((resolve) => {
    const child = spawn(command, [...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-TAIL_BYTES);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (error) => resolve({ code: 127, tail: error.message }));
    child.on("close", (code) => resolve({ code: code ?? 1, tail }));
  });

/** Runs each gate in turn (all of them, so one report shows every failing gate). */
export async function runReleaseGates(
  runner: CommandRunner,
  cwd: string,
  onFailureOutput: (text: string) => void,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const gate of RELEASE_GATES) {
    const line = `${gate.command} ${gate.args.join(" ")}`;
    const { code, tail } = await runner(gate.command, gate.args, cwd);
    if (code === 0) findings.push(pass(gate.check, `${gate.what}: \`${line}\` passed`));
    else {
      onFailureOutput(`--- last output of \`${line}\` ---\n${tail}\n`);
      findings.push(
        fail(
          gate.check,
          `${gate.what}: \`${line}\` exited ${code}`,
          `run \`${line}\` and fix what it reports`,
        ),
      );
    }
  }
  return findings;
}
