import { loadEndpointConfig } from "../../../endpoint/config.ts";
import {
  parseTlsPins,
  readSignalingTransport,
  SIGNALING_ENV,
  SignalingConfigError,
} from "../../../endpoint/signaling/transport-policy.ts";
import type { EnvFile } from "../env-file.ts";
import { type Finding, fail, failInProduction, pass, type TargetEnvironment } from "../findings.ts";

/**
 * Endpoint environment files (the `wavry` daemons): the endpoint's own parsers (endpoint/config.ts and the
 * signaling transport policy), then: no insecure signaling override whatever the file's environment, and TLS pins
 * well formed where set (parsed by the same function the signaling client uses).
 */
export function checkEndpointEnv(name: string, file: EnvFile, target: TargetEnvironment): Finding[] {
  const v = file.vars;
  const findings: Finding[] = [];
  for (const problem of file.problems) {
    findings.push(fail("endpoint-config", `${name}: ${problem}`, "write each setting as KEY=VALUE"));
  }
  const parsed = loadEndpointConfig(v, "/nonexistent-home");
  if (parsed.ok) findings.push(pass("endpoint-config", `${name}: endpoint/config.ts accepts it`));
  else {
    for (const problem of parsed.problems) {
      findings.push(fail("endpoint-config", `${name}: ${problem}`, "see endpoint/README.md"));
    }
  }
  if ((v.WAVRY_ENVIRONMENT ?? "").trim() === "development") {
    findings.push(
      failInProduction(
        target,
        "endpoint-config",
        `${name}: WAVRY_ENVIRONMENT=development`,
        "remove it (unset is production)",
      ),
    );
  }
  try {
    readSignalingTransport(v);
  } catch (error) {
    if (!(error instanceof SignalingConfigError)) throw error;
    if (error.code !== "invalid_pins") {
      findings.push(fail("insecure-signaling", `${name}: ${error.message}`, "correct the setting it names"));
    }
  }

  const flag = v[SIGNALING_ENV.allowInsecure]?.trim() ?? "";
  if (flag === "" || flag === "0") {
    findings.push(pass("insecure-signaling", `${name}: no ${SIGNALING_ENV.allowInsecure}`));
  } else {
    findings.push(
      failInProduction(
        target,
        "insecure-signaling",
        `${name}: ${SIGNALING_ENV.allowInsecure}=${flag} allows ws:// signaling`,
        `remove ${SIGNALING_ENV.allowInsecure}: signaling is wss:// only`,
      ),
    );
  }

  const pins = v[SIGNALING_ENV.pins]?.trim() ?? "";
  if (pins === "") {
    findings.push(pass("tls-pins", `${name}: no ${SIGNALING_ENV.pins} (standard certificate validation)`));
  } else {
    try {
      const list = parseTlsPins(pins);
      findings.push(pass("tls-pins", `${name}: ${list.length} pin(s) well formed`));
    } catch (error) {
      if (!(error instanceof SignalingConfigError)) throw error;
      findings.push(
        fail(
          "tls-pins",
          `${name}: ${error.message}`,
          "each pin is the SHA-256 of a DER certificate of the chain: `openssl x509 -in CERT -outform DER | openssl dgst -sha256`",
        ),
      );
    }
  }
  return findings;
}
