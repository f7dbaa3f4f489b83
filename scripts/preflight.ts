/**
 * Release preflight (issue 6; DESIGN.md, "Monitoring and incident response"): checks the deployable configuration
 * and prints one line per finding, `PASS|FAIL|WARN <check>: <what> — fix: <how>`, then a summary line.
 *
 *   npm run preflight -- --env production [--config wrangler.toml] [--root DIR] [--var NAME=VALUE]...
 *       [--relay-env FILE]... [--endpoint-env FILE]... [--secrets-from FILE|-] [--with-tests]
 *
 * Exit codes: 0 no FAIL, 1 at least one FAIL, 2 bad usage. `wavry admin preflight` calls {@link runPreflight}.
 * OPERATIONS.md ("Release preflight") documents every check.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { checkAdminRoutes } from "./preflight/checks/admin-routes.ts";
import { checkEdge, type DeployedSecret, requiredSecretsOf } from "./preflight/checks/edge.ts";
import { checkEndpointEnv } from "./preflight/checks/endpoint.ts";
import { checkRelayEnv } from "./preflight/checks/relay.ts";
import { type CommandRunner, runReleaseGates, spawnRunner } from "./preflight/checks/release-tests.ts";
import { scanForSecrets } from "./preflight/checks/secret-scan.ts";
import { loadEdgeModules } from "./preflight/edge-modules.ts";
import { parseEnvFile } from "./preflight/env-file.ts";
import {
  type Finding,
  fail,
  formatFinding,
  summarize,
  type TargetEnvironment,
  warn,
} from "./preflight/findings.ts";
import { readWranglerConfig, type WranglerSelection } from "./preflight/wrangler-config.ts";

const USAGE = `Usage: npm run preflight -- [--env production|development] [options]
  --env ENV            production (default) or development (relaxes what the parts allow outside production)
  --config FILE        wrangler configuration (default: ROOT/wrangler.toml)
  --root DIR           repository to scan for committed secrets (default: the current directory)
  --var NAME=VALUE     a var as \`wrangler deploy --var NAME:VALUE\` would set it (repeatable)
  --relay-env FILE     a relay environment file as deployed, KEY=VALUE lines (repeatable)
  --endpoint-env FILE  an endpoint environment file as deployed (repeatable)
  --secrets-from FILE  output of \`wrangler secret list --format json\` (- reads stdin): checks deployed secrets
  --with-tests         also run lint, type check and the test suite
Exit: 0 ready, 1 a check failed, 2 bad usage.
`;

/** What the preflight touches outside itself (replaced in tests). */
export interface PreflightIo {
  readonly out: (line: string) => void;
  readonly err: (text: string) => void;
  readonly cwd: string;
  readonly runner: CommandRunner;
  readonly readStdin: () => string;
}

const defaultIo = (): PreflightIo => ({
  out: (line) => process.stdout.write(`${line}\n`),
  err: (text) => process.stderr.write(text),
  cwd: process.cwd(),
  runner: spawnRunner,
  readStdin: () => readFileSync(0, "utf8"),
});

class UsageError extends Error {}

interface Options {
  readonly target: TargetEnvironment;
  readonly root: string;
  readonly config: string;
  readonly vars: Record<string, string>;
  readonly relayEnvs: readonly string[];
  readonly endpointEnvs: readonly string[];
  readonly secretsFrom: string | null;
  readonly withTests: boolean;
}

function parseOptions(argv: string[], cwd: string): Options {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        env: { type: "string", default: "production" },
        config: { type: "string" },
        root: { type: "string" },
        var: { type: "string", multiple: true, default: [] },
        "relay-env": { type: "string", multiple: true, default: [] },
        "endpoint-env": { type: "string", multiple: true, default: [] },
        "secrets-from": { type: "string" },
        "with-tests": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : "bad arguments");
  }
  const v = parsed.values;
  if (v.help) throw new UsageError("");
  if (v.env !== "production" && v.env !== "development") {
    throw new UsageError("--env must be production or development");
  }
  const vars: Record<string, string> = {};
  for (const entry of v.var) {
    const match = /^([A-Z_][A-Z0-9_]*)[=:](.*)$/.exec(entry);
    if (match?.[1] === undefined || match[2] === undefined)
      throw new UsageError(`--var ${entry}: use NAME=VALUE`);
    vars[match[1]] = match[2];
  }
  const root = path.resolve(cwd, v.root ?? ".");
  return {
    target: v.env,
    root,
    config: v.config === undefined ? path.join(root, "wrangler.toml") : path.resolve(cwd, v.config),
    vars,
    relayEnvs: v["relay-env"].map((f) => path.resolve(cwd, f)),
    endpointEnvs: v["endpoint-env"].map((f) => path.resolve(cwd, f)),
    secretsFrom: v["secrets-from"] ?? null,
    withTests: v["with-tests"],
  };
}

function readDeployedSecrets(source: string, io: PreflightIo): DeployedSecret[] | string {
  let text: string;
  try {
    text = source === "-" ? io.readStdin() : readFileSync(path.resolve(io.cwd, source), "utf8");
  } catch {
    return `cannot read ${source}`;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return `${source} is not JSON`;
  }
  if (!Array.isArray(json)) return `${source} is not a JSON array`;
  const out: DeployedSecret[] = [];
  for (const item of json) {
    if (typeof item !== "object" || item === null) return `${source}: an entry is not an object`;
    const { name, type } = item as Record<string, unknown>;
    if (typeof name !== "string" || typeof type !== "string") return `${source}: an entry lacks name or type`;
    out.push({ name, type });
  }
  return out;
}

function readEnv(file: string) {
  return parseEnvFile(readFileSync(file, "utf8"));
}

/** Runs every check; returns the findings (printing is the caller's). */
async function collect(options: Options, io: PreflightIo): Promise<Finding[]> {
  const findings: Finding[] = [];
  const edge = await loadEdgeModules();
  const configName = path.relative(io.cwd, options.config) || options.config;

  let config: WranglerSelection | null = null;
  try {
    config = readWranglerConfig(options.config, options.target);
  } catch (error) {
    findings.push(
      fail("wrangler-config", error instanceof Error ? error.message : "unreadable", "pass --config FILE"),
    );
  }
  let deployed: DeployedSecret[] | null = null;
  if (options.secretsFrom !== null) {
    const read = readDeployedSecrets(options.secretsFrom, io);
    if (typeof read === "string") {
      findings.push(
        fail("secrets-deployed", read, "pass the output of `wrangler secret list --format json` unchanged"),
      );
    } else deployed = read;
  }
  if (config !== null) {
    for (const name of config.nonStringVars) {
      findings.push(
        fail(
          "edge-config",
          `[vars] ${name} is not a string`,
          `quote it: ${name} = "…" (the edge reads strings)`,
        ),
      );
    }
    findings.push(
      ...checkEdge(
        {
          target: options.target,
          config,
          configName,
          extraVars: options.vars,
          deployed: options.secretsFrom !== null && deployed === null ? [] : deployed,
        },
        edge,
      ),
    );
  }

  // An empty var counts as unset, as on the edge.
  const edgeMaster =
    (options.vars.WAVRY_RELAY_MASTER_PUBLIC_KEY ?? config?.vars.WAVRY_RELAY_MASTER_PUBLIC_KEY)?.trim() ||
    undefined;
  if (options.relayEnvs.length === 0) {
    findings.push(
      warn(
        "relay-config",
        "no relay environment file given",
        "pass --relay-env FILE for each relay you deploy",
      ),
    );
  }
  for (const file of options.relayEnvs) {
    const name = path.relative(io.cwd, file) || file;
    try {
      findings.push(...checkRelayEnv(name, readEnv(file), options.target, edgeMaster));
    } catch {
      findings.push(fail("relay-config", `cannot read ${name}`, "check the --relay-env path"));
    }
  }
  if (options.endpointEnvs.length === 0) {
    findings.push(
      warn(
        "endpoint-config",
        "no endpoint environment file given",
        "pass --endpoint-env FILE for the endpoint environments you ship",
      ),
    );
  }
  for (const file of options.endpointEnvs) {
    const name = path.relative(io.cwd, file) || file;
    try {
      findings.push(...checkEndpointEnv(name, readEnv(file), options.target));
    } catch {
      findings.push(fail("endpoint-config", `cannot read ${name}`, "check the --endpoint-env path"));
    }
  }

  const secretNames = [...new Set([...requiredSecretsOf(edge), ...(config?.secretsRequired ?? [])])];
  findings.push(
    ...scanForSecrets({
      root: options.root,
      secretNames,
      allowedValues: edge.devDefaults.map((d) => d.value),
    }).findings,
  );

  const app = edge.createApp();
  findings.push(...(await checkAdminRoutes({ app, declared: edge.adminRoutes(), scopes: edge.adminScopes })));

  if (options.withTests) findings.push(...(await runReleaseGates(io.runner, options.root, io.err)));
  return findings;
}

/** The preflight with its outside world passed in (tests stub the command runner and capture output). */
export async function runPreflightWith(argv: string[], io: PreflightIo): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv, io.cwd);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== "") io.err(`preflight: ${error.message}\n`);
    io.err(USAGE);
    return error.message === "" ? 0 : 2;
  }
  const findings = await collect(options, io);
  for (const finding of findings) io.out(formatFinding(finding));
  io.out(summarize(findings, options.target));
  return findings.some((f) => f.status === "FAIL") ? 1 : 0;
}

/** `npm run preflight` and `wavry admin preflight`: exit 0 ready, 1 a check failed, 2 bad usage. */
export function runPreflight(argv: string[]): Promise<number> {
  return runPreflightWith(argv, defaultIo());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runPreflight(process.argv.slice(2));
}
