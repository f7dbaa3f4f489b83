import { randomBytes } from "node:crypto";
import type { EdgeModules } from "../edge-modules.ts";
import { type Finding, fail, failInProduction, pass, type TargetEnvironment, warn } from "../findings.ts";
import type { WranglerSelection } from "../wrangler-config.ts";

/**
 * Checks of the edge's deployable configuration (wrangler.toml): environment, advertised signaling URL, secrets
 * declared and kept out of [vars], rate limits, and the Worker's own configuration parser run over it.
 */

/** A deployed secret as `wrangler secret list --format json` prints it. */
export interface DeployedSecret {
  readonly name: string;
  readonly type: string;
}

export interface EdgeCheckInput {
  readonly target: TargetEnvironment;
  readonly config: WranglerSelection;
  /** Which file was read, for messages. */
  readonly configName: string;
  /** `--var NAME=VALUE` overrides, as `wrangler deploy --var` would apply them. */
  readonly extraVars: Readonly<Record<string, string>>;
  /** From `--secrets-from`, or null when not given. */
  readonly deployed: readonly DeployedSecret[] | null;
}

/** Fake bindings: the parser checks only that they are objects. */
const BINDINGS = { DB: {}, RATE_LIMITER: {}, AUDIT_LOG: {}, RELAY_REGISTRY: {}, SIGNALING: {} };
const PLACEHOLDER_ISSUER = "https://preflight.invalid";
const SECRET_LIKE = /SECRET|PASSWORD|TOKEN|PRIVATE|_KEYS?$/;

/**
 * The secrets the edge refuses to run without in production, as its own parser reports them: the parser is run
 * with no secrets and every "required in production (a secret…)" problem names one. No list is kept by hand.
 */
export function requiredSecretsOf(edge: EdgeModules): string[] {
  const result = edge.loadConfig({
    ...BINDINGS,
    WAVRY_ENVIRONMENT: "production",
    WAVRY_ISSUER: PLACEHOLDER_ISSUER,
  });
  if (result.ok) return [];
  return result.problems.flatMap((problem) => {
    const match = /^(WAVRY_[A-Z0-9_]+): required in production \(a secret/.exec(problem);
    return match?.[1] === undefined ? [] : [match[1]];
  });
}

/** Strong random stand-ins for the secrets, in the format each expects (`kid:key` rings for `…_KEYS`). */
export function placeholderSecrets(names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const key = randomBytes(32).toString("base64url");
    out[name] = name.endsWith("_KEYS") ? `preflight-1:${key}` : key;
  }
  return out;
}

/** Is `name` a setting whose value must be a secret (never a plain var)? */
export function isSecretName(name: string, known: readonly string[]): boolean {
  return known.includes(name) || (SECRET_LIKE.test(name) && !name.includes("PUBLIC"));
}

export function checkEdge(input: EdgeCheckInput, edge: EdgeModules): Finding[] {
  const { target, config } = input;
  const vars: Record<string, string> = { ...config.vars, ...input.extraVars };
  const where = `${input.configName} ${config.section}`;
  const findings: Finding[] = [];

  // environment
  const environment = vars.WAVRY_ENVIRONMENT;
  if (target === "development") {
    findings.push(
      warn(
        "environment",
        `checking for development: settings the parts accept outside production are reported as warnings`,
        "run `npm run preflight -- --env production` before a release",
      ),
    );
  } else if (environment === "production") {
    findings.push(pass("environment", `WAVRY_ENVIRONMENT = "production" in ${where}`));
  } else {
    findings.push(
      fail(
        "environment",
        environment === undefined
          ? `WAVRY_ENVIRONMENT is not set in ${where} (the edge would default to production, but a release states it)`
          : `WAVRY_ENVIRONMENT is "${environment}" in ${where}`,
        `set WAVRY_ENVIRONMENT = "production" under [vars] in ${input.configName}`,
      ),
    );
  }

  // signaling URL advertised to endpoints (edge/services/signaling.ts signalUrl, built from the issuer)
  const issuer = vars.WAVRY_ISSUER;
  const issuerFix = `set WAVRY_ISSUER = "https://<edge host>" under [vars] in ${input.configName} (or pass --var WAVRY_ISSUER=… if you deploy with wrangler deploy --var)`;
  if (issuer === undefined || issuer.trim() === "") {
    findings.push(
      failInProduction(
        target,
        "signaling-url",
        "WAVRY_ISSUER is not set: no signaling URL to advertise",
        issuerFix,
      ),
    );
  } else {
    let url: string | null = null;
    try {
      url = edge.signalUrl({ issuer: issuer.trim(), environment: target });
    } catch {
      url = null;
    }
    if (url?.startsWith("wss://")) findings.push(pass("signaling-url", `signaling advertised as ${url}`));
    else if (url?.startsWith("ws://")) {
      findings.push(
        failInProduction(target, "signaling-url", `signaling advertised as plain ${url}`, issuerFix),
      );
    } else {
      findings.push(
        fail("signaling-url", "WAVRY_ISSUER is not an https URL: signaling would not be wss://", issuerFix),
      );
    }
  }

  // no insecure signaling override anywhere in the edge configuration
  const overrides = config.allVars.filter((t) => "WAVRY_ALLOW_INSECURE_SIGNALING" in t.vars);
  if (overrides.length === 0) {
    findings.push(pass("insecure-signaling", `no WAVRY_ALLOW_INSECURE_SIGNALING in ${input.configName}`));
  } else {
    for (const table of overrides) {
      findings.push(
        failInProduction(
          target,
          "insecure-signaling",
          `WAVRY_ALLOW_INSECURE_SIGNALING is set in ${input.configName} ${table.section}`,
          "remove it: endpoints must use wss:// signaling",
        ),
      );
    }
  }

  // secrets: declared, never plain vars, never development defaults, deployed
  const required = requiredSecretsOf(edge);
  const declared = config.secretsRequired;
  if (required.length === 0) {
    findings.push(
      fail(
        "secrets-declared",
        "could not read the required secrets from edge/env.ts (its messages changed?)",
        "update requiredSecretsOf in scripts/preflight/checks/edge.ts",
      ),
    );
  } else if (declared === null) {
    findings.push(
      fail(
        "secrets-declared",
        `${where} declares no [secrets] required (the edge needs ${required.join(", ")})`,
        `add [secrets] required = [${required.map((n) => `"${n}"`).join(", ")}] to ${input.configName}: wrangler deploy then refuses to deploy without them`,
      ),
    );
  } else {
    const missing = required.filter((n) => !declared.includes(n));
    if (missing.length === 0) {
      findings.push(pass("secrets-declared", `[secrets] required declares ${required.join(", ")}`));
    } else {
      findings.push(
        fail(
          "secrets-declared",
          `[secrets] required in ${where} lacks ${missing.join(", ")}`,
          `add ${missing.map((n) => `"${n}"`).join(", ")} to [secrets] required in ${input.configName}`,
        ),
      );
    }
  }
  const secretNames = [...new Set([...required, ...(declared ?? [])])];
  const plain: string[] = [];
  for (const table of config.allVars) {
    for (const name of Object.keys(table.vars)) {
      if (isSecretName(name, secretNames)) plain.push(`${name} (${table.section})`);
    }
  }
  for (const name of Object.keys(input.extraVars)) {
    if (isSecretName(name, secretNames)) plain.push(`${name} (--var)`);
  }
  if (plain.length === 0) findings.push(pass("secrets-not-vars", "no secret is set as a plain var"));
  else {
    findings.push(
      fail(
        "secrets-not-vars",
        `set as plain vars (readable by anyone with the config or the dashboard): ${plain.join(", ")}`,
        "delete them from [vars] and set each with `wrangler secret put NAME`; rotate any value that was committed",
      ),
    );
  }
  const devValues = edge.devDefaults;
  const usesDev = Object.entries(vars).filter(
    ([, value]) => devValues.some((d) => value.includes(d.value)) || /(^|,)\s*dev-[^:,]*:/.test(value),
  );
  if (usesDev.length === 0) {
    findings.push(pass("dev-defaults", "no development default (edge/dev-defaults.ts DEV_…) is used"));
  } else {
    findings.push(
      failInProduction(
        target,
        "dev-defaults",
        `development defaults in ${usesDev.map(([n]) => n).join(", ")}`,
        "replace them with values of your own (secrets through `wrangler secret put`)",
      ),
    );
  }
  if (input.deployed === null) {
    findings.push(
      warn(
        "secrets-deployed",
        "deployed secrets not checked",
        "pass --secrets-from FILE with the output of `wrangler secret list --format json` (or - to read it from stdin)",
      ),
    );
  } else {
    const deployed = input.deployed;
    const absent = secretNames.filter((n) => !deployed.some((s) => s.name === n && s.type === "secret_text"));
    if (absent.length === 0) findings.push(pass("secrets-deployed", `deployed: ${secretNames.join(", ")}`));
    else {
      findings.push(
        fail(
          "secrets-deployed",
          `not deployed as secrets: ${absent.join(", ")}`,
          absent.map((n) => `wrangler secret put ${n}`).join("; "),
        ),
      );
    }
  }

  // the Worker's own parser over the deployable configuration (placeholder secrets stand in for the real ones)
  const probeVars = { ...vars, WAVRY_ENVIRONMENT: target };
  const parsed = edge.loadConfig({ ...BINDINGS, ...probeVars, ...placeholderSecrets(secretNames) });
  if (parsed.ok) findings.push(pass("edge-config", `edge/env.ts accepts ${where} for ${target}`));
  else {
    for (const problem of parsed.problems) {
      findings.push(
        fail(
          "edge-config",
          `edge/env.ts refuses ${where}: ${problem}`,
          "correct that setting (edge/env.ts gives each one's format and limits)",
        ),
      );
    }
  }

  findings.push(...checkRateLimits(target, vars, secretNames, edge));

  const master = vars.WAVRY_RELAY_MASTER_PUBLIC_KEY?.trim() ?? "";
  if (master === "") {
    findings.push(
      warn(
        "edge-master-key",
        "WAVRY_RELAY_MASTER_PUBLIC_KEY is not set on the edge: lease-key certificates are not verified at upload",
        `set it under [vars] in ${input.configName} (it is public): the key printed by \`npm run wavry-admin -- master-keygen\``,
      ),
    );
  } else findings.push(pass("edge-master-key", "the edge pins the relay master public key"));
  return findings;
}

/**
 * Rate limiting enabled: the budgets as the Worker parses them (read in development mode, which accepts a disabled
 * budget, so a 0 shows up here by name rather than only as a refused configuration).
 */
function checkRateLimits(
  target: TargetEnvironment,
  vars: Readonly<Record<string, string>>,
  secretNames: readonly string[],
  edge: EdgeModules,
): Finding[] {
  const parsed = edge.loadConfig({
    ...BINDINGS,
    ...vars,
    ...placeholderSecrets(secretNames),
    WAVRY_ENVIRONMENT: "development",
    WAVRY_ISSUER: PLACEHOLDER_ISSUER,
    WAVRY_ALLOWED_ORIGINS: "",
  });
  const limits = parsed.ok ? parsed.config.rateLimits : undefined;
  if (typeof limits !== "object" || limits === null || Object.keys(limits).length === 0) {
    return [
      fail(
        "rate-limits",
        "could not read the rate limits (the rate limit settings are invalid)",
        "correct the WAVRY_…_RATE_LIMIT settings (edge/env.ts, API.md#rate-limits)",
      ),
    ];
  }
  const disabled = Object.entries(limits).filter(
    ([, budget]) =>
      typeof budget !== "object" || budget === null || !("limit" in budget) || budget.limit === 0,
  );
  if (disabled.length === 0) {
    return [pass("rate-limits", `rate limiting enabled (${Object.keys(limits).join(", ")})`)];
  }
  const zeroed = Object.entries(vars)
    .filter(([name, value]) => name.endsWith("_RATE_LIMIT") && value.trim() === "0")
    .map(([name]) => name);
  return [
    failInProduction(
      target,
      "rate-limits",
      `rate limiting disabled for ${disabled.map(([n]) => n).join(", ")}`,
      `remove ${zeroed.join(", ") || "the zero limits"} from [vars] (defaults: API.md#rate-limits)`,
    ),
  ];
}
