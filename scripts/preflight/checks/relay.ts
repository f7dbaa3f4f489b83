import { loadConfig as loadRelayConfig } from "../../../relay-node/config.ts";
import type { EnvFile } from "../env-file.ts";
import { type Finding, fail, failInProduction, pass, type TargetEnvironment, warn } from "../findings.ts";

/**
 * Relay environment files as operators deploy them: the relay's own parser (relay-node/config.ts), then stricter
 * release rules: the target environment, the master public key set and valid (and equal to the edge's when both
 * are set), no insecure flag whatever the file's environment, an https edge URL, no enrollment token left behind.
 */
export function checkRelayEnv(
  name: string,
  file: EnvFile,
  target: TargetEnvironment,
  edgeMasterKey: string | undefined,
): Finding[] {
  const v = file.vars;
  const findings: Finding[] = [];
  for (const problem of file.problems) {
    findings.push(fail("relay-config", `${name}: ${problem}`, "write each setting as KEY=VALUE"));
  }
  const parsed = loadRelayConfig(v);
  if (parsed.ok) {
    findings.push(pass("relay-config", `${name}: relay-node/config.ts accepts it`));
    for (const warning of parsed.config.warnings) {
      findings.push(warn("relay-config", `${name}: ${warning}`, "see OPERATIONS.md, Relay nodes"));
    }
  } else {
    for (const problem of parsed.problems) {
      findings.push(
        fail(
          "relay-config",
          `${name}: the relay refuses to start: ${problem}`,
          "see OPERATIONS.md, Relay nodes",
        ),
      );
    }
  }

  const environment = v.WAVRY_ENVIRONMENT ?? "";
  if (environment === "development") {
    findings.push(
      failInProduction(
        target,
        "relay-environment",
        `${name}: WAVRY_ENVIRONMENT=development`,
        "set WAVRY_ENVIRONMENT=production",
      ),
    );
  } else {
    findings.push(
      pass("relay-environment", `${name}: production${environment === "" ? " (unset: the default)" : ""}`),
    );
  }

  const key = v.WAVRY_RELAY_MASTER_PUBLIC_KEY?.trim() ?? "";
  const keyProblem = parsed.ok
    ? null
    : parsed.problems.find((p) => p.startsWith("WAVRY_RELAY_MASTER_PUBLIC_KEY"));
  if (key === "") {
    findings.push(
      fail(
        "relay-master-key",
        `${name}: WAVRY_RELAY_MASTER_PUBLIC_KEY is not set`,
        "set it to the public key `npm run wavry-admin -- master-keygen` printed (43 characters)",
      ),
    );
  } else if (keyProblem !== undefined && keyProblem !== null) {
    findings.push(
      fail(
        "relay-master-key",
        `${name}: ${keyProblem}`,
        "copy the public key printed by wavry-admin exactly",
      ),
    );
  } else if (edgeMasterKey !== undefined && edgeMasterKey.trim() !== key) {
    findings.push(
      fail(
        "relay-master-key",
        `${name}: WAVRY_RELAY_MASTER_PUBLIC_KEY differs from the edge's`,
        "use one master key: the same public key on the edge and on every relay",
      ),
    );
  } else findings.push(pass("relay-master-key", `${name}: master public key set and valid`));

  const insecure = v.WAVRY_RELAY_INSECURE_DEV?.trim() ?? "";
  if (insecure === "" || insecure === "0") {
    findings.push(pass("relay-insecure", `${name}: lease verification on (no WAVRY_RELAY_INSECURE_DEV)`));
  } else {
    findings.push(
      failInProduction(
        target,
        "relay-insecure",
        `${name}: WAVRY_RELAY_INSECURE_DEV=${insecure} (leases not verified)`,
        "remove WAVRY_RELAY_INSECURE_DEV from the file",
      ),
    );
  }

  const edgeUrl = v.WAVRY_EDGE_URL?.trim() ?? "";
  if (edgeUrl.startsWith("https://")) findings.push(pass("relay-edge-url", `${name}: edge URL is https`));
  else if (edgeUrl.startsWith("http://")) {
    findings.push(
      failInProduction(
        target,
        "relay-edge-url",
        `${name}: WAVRY_EDGE_URL is plain http`,
        "set WAVRY_EDGE_URL=https://<edge host>",
      ),
    );
  } else {
    findings.push(
      fail(
        "relay-edge-url",
        `${name}: WAVRY_EDGE_URL is ${edgeUrl === "" ? "not set" : "not an https URL"}`,
        "set WAVRY_EDGE_URL=https://<edge host>",
      ),
    );
  }

  if ((v.WAVRY_RELAY_ENROLLMENT_TOKEN?.trim() ?? "") !== "") {
    findings.push(
      warn(
        "relay-enrollment-token",
        `${name}: WAVRY_RELAY_ENROLLMENT_TOKEN is still set`,
        "remove it once the relay has enrolled (it is one-time; OPERATIONS.md, Enrollment)",
      ),
    );
  }
  return findings;
}
