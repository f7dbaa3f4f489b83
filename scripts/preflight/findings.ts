/**
 * What every preflight check returns (issue 6, "Release preflight"): one finding a line, each FAIL and WARN with
 * the fix, so an operator can act on the output without reading the code.
 */

/** PASS: checked and fine. FAIL: blocks the release (exit 1). WARN: not checked or unusual; does not block. */
export type FindingStatus = "PASS" | "FAIL" | "WARN";

/** One result line. `fix` is required for FAIL and WARN. */
export interface Finding {
  readonly status: FindingStatus;
  /** Stable id of the check (OPERATIONS.md, "Release preflight", lists them). */
  readonly check: string;
  readonly what: string;
  readonly fix?: string;
}

/** Where the preflight runs: production is strict; development relaxes what the parts themselves relax. */
export type TargetEnvironment = "production" | "development";

export const pass = (check: string, what: string): Finding => ({ status: "PASS", check, what });
export const fail = (check: string, what: string, fix: string): Finding => ({
  status: "FAIL",
  check,
  what,
  fix,
});
export const warn = (check: string, what: string, fix: string): Finding => ({
  status: "WARN",
  check,
  what,
  fix,
});

/**
 * A failure in production, relaxed to a warning in development (the line says so). Used only where the part
 * itself accepts the setting outside production.
 */
export function failInProduction(
  target: TargetEnvironment,
  check: string,
  what: string,
  fix: string,
): Finding {
  return target === "production"
    ? fail(check, what, fix)
    : warn(check, `${what} (allowed in development)`, fix);
}

/** `PASS|FAIL|WARN <check>: <what> — fix: <how>`. */
export function formatFinding(finding: Finding): string {
  const head = `${finding.status} ${finding.check}: ${finding.what}`;
  return finding.fix === undefined ? head : `${head} — fix: ${finding.fix}`;
}

/** The last line: counts and the exit code they give. */
export function summarize(findings: readonly Finding[], target: TargetEnvironment): string {
  const count = (status: FindingStatus) => findings.filter((f) => f.status === status).length;
  const failed = count("FAIL");
  return `preflight (${target}): ${count("PASS")} passed, ${failed} failed, ${count("WARN")} warnings — ${
    failed === 0 ? "ready to release" : "NOT ready to release"
  }`;
}
