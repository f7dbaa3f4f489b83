import { EdgeError } from "../edge-client/edge-client.ts";
import { createIdentity, identityPath, loadIdentity } from "../identity/device-identity.ts";
import { PrivateFileError } from "../identity/private-file.ts";
import { TrustStore } from "../trust/trust-store.ts";
import { type CliIo, CommandFailure, configOf, edgeOf, parseCommand } from "./cli-context.ts";
import { readSession } from "./session-file.ts";

/** `wavry init` and `wavry status`. Neither ever prints a private key or a token. */

/** `wavry init`: creates the identity, refusing to replace one. */
export async function initCommand(io: CliIo, args: readonly string[]): Promise<void> {
  parseCommand("init", args, {}, 0);
  const config = configOf(io);
  try {
    const identity = createIdentity(config.home);
    io.out(
      `Created the device identity in ${identityPath(config.home)} (mode 0600).\n` +
        `Device id:   ${identity.deviceId}\nFingerprint: ${identity.fingerprint}\n` +
        "Next: wavry login EMAIL, then wavry enroll (or wavry enroll --code CODE on a headless host).\n",
    );
  } catch (error) {
    if (error instanceof PrivateFileError && error.code === "exists") {
      throw new CommandFailure(`${error.message}. Run wavry status to see it.`);
    }
    throw error;
  }
}

/** `wavry status`: local state, then what the edge says (a failure to reach it is reported, not fatal). */
export async function statusCommand(io: CliIo, args: readonly string[]): Promise<void> {
  parseCommand("status", args, {}, 0);
  const config = configOf(io);
  const lines = [
    `Environment: ${config.environment}`,
    `Home:        ${config.home}`,
    `Edge:        ${config.edgeUrl?.origin ?? "(WAVRY_EDGE_URL not set)"}`,
  ];
  const identity = loadIdentity(config.home);
  if (identity === null) lines.push("Device:      no identity (run: wavry init)");
  else lines.push(`Device id:   ${identity.deviceId}`, `Fingerprint: ${identity.fingerprint}`);
  const session = readSession(config.home);
  lines.push(`Signed in:   ${session === null ? "no" : `${session.email} at ${session.edgeUrl}`}`);
  lines.push(`Trusted peers: ${TrustStore.open(config.home).list().length}`);
  if (identity !== null && config.edgeUrl !== null) {
    const edge = edgeOf(config);
    try {
      const token = await edge.deviceToken(identity);
      const self = await edge.deviceSelf(token.accessToken);
      lines.push(`Enrolled:    yes, as "${self.name}"`);
    } catch (error) {
      // The edge answers an unknown or revoked device exactly like a bad signature (a 401), by design.
      lines.push(
        error instanceof EdgeError && error.status === 401
          ? "Enrolled:    no (or revoked); run: wavry enroll"
          : `Enrolled:    unknown (${error instanceof Error ? error.message : "edge error"})`,
      );
    }
  }
  io.out(`${lines.join("\n")}\n`);
}
