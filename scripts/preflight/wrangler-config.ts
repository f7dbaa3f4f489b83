import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import type { TargetEnvironment } from "./findings.ts";

/**
 * The deployable edge configuration as wrangler would use it for one environment: `--env production` reads
 * `[env.production]` when the file has it, otherwise the top level (how this repository deploys). Vars and
 * `secrets.required` are not inherited by a named environment in wrangler, so neither is merged here.
 */
export interface WranglerSelection {
  /** Which table was read: "top level" or `[env.NAME]`. */
  readonly section: string;
  /** `[vars]` as strings (wrangler passes other TOML types to the Worker as JSON; the edge reads strings only). */
  readonly vars: Readonly<Record<string, string>>;
  /** Names of vars that are not strings (the edge would not read them). */
  readonly nonStringVars: readonly string[];
  /** `[secrets] required`, or null when the section does not declare it. */
  readonly secretsRequired: readonly string[] | null;
  /** Vars of every table in the file (top level and each environment), for checks that must hold everywhere. */
  readonly allVars: readonly { readonly section: string; readonly vars: Readonly<Record<string, unknown>> }[];
}

type Table = Record<string, unknown>;

const isTable = (value: unknown): value is Table =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);

/** Parses `text` (the file's contents) and selects `environment`. Throws with a readable message on bad TOML. */
export function selectWranglerEnvironment(text: string, environment: TargetEnvironment): WranglerSelection {
  const root = parse(text);
  const envs = isTable(root.env) ? root.env : {};
  const named = envs[environment];
  const table = isTable(named) ? named : root;
  const section = isTable(named) ? `[env.${environment}]` : "top level";
  const vars: Record<string, string> = {};
  const nonStringVars: string[] = [];
  const rawVars = isTable(table.vars) ? table.vars : {};
  for (const [name, value] of Object.entries(rawVars)) {
    if (typeof value === "string") vars[name] = value;
    else nonStringVars.push(name);
  }
  const secrets = isTable(table.secrets) ? table.secrets : null;
  const required = secrets !== null && Array.isArray(secrets.required) ? secrets.required : null;
  const allVars = [{ section: "top level", vars: isTable(root.vars) ? root.vars : {} }];
  for (const [name, env] of Object.entries(envs)) {
    if (isTable(env)) allVars.push({ section: `[env.${name}]`, vars: isTable(env.vars) ? env.vars : {} });
  }
  return {
    section,
    vars,
    nonStringVars,
    secretsRequired: required === null ? null : required.filter((n): n is string => typeof n === "string"),
    allVars,
  };
}

/** Reads and selects; a missing file or bad TOML throws an Error whose message names the file. */
export function readWranglerConfig(file: string, environment: TargetEnvironment): WranglerSelection {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`cannot read ${file}`);
  }
  try {
    return selectWranglerEnvironment(text, environment);
  } catch (error) {
    throw new Error(
      `${file} is not valid TOML: ${error instanceof Error ? error.message.split("\n")[0] : ""}`,
    );
  }
}
