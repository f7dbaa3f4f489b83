import os from "node:os";
import { canonicalEnrollmentCode } from "../../protocol/identity/device-proofs.ts";
import { loadIdentity } from "../identity/device-identity.ts";
import {
  type CliIo,
  CommandFailure,
  configOf,
  edgeOf,
  identityOf,
  parseCommand,
  stringFlag,
  UsageError,
} from "./cli-context.ts";
import { readPassword } from "./password-prompt.ts";
import { clearSession, readSession, saveSession, userAccess } from "./session-file.ts";

/** `wavry login`, `logout`, `enroll` and `devices`: the commands that talk to the edge as the user. */

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

/** `wavry login EMAIL [--totp CODE]`. */
export async function loginCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand("login", args, { totp: { type: "string" } }, 1);
  const email = parsed.positionals[0];
  if (email === undefined || !EMAIL.test(email)) {
    throw new UsageError("wavry login: give your email address, e.g. wavry login you@example.com");
  }
  const config = configOf(io);
  const edge = edgeOf(config);
  const password = await readPassword(io);
  const tokens = await edge.login(email, password, stringFlag(parsed, "totp"));
  saveSession(config, email, tokens);
  io.out(`Signed in as ${email} at ${edge.baseUrl.origin}.\n`);
}

/** `wavry logout`. */
export async function logoutCommand(io: CliIo, args: readonly string[]): Promise<void> {
  parseCommand("logout", args, {}, 0);
  const config = configOf(io);
  const session = readSession(config.home);
  if (session === null) {
    io.out("Not signed in.\n");
    return;
  }
  try {
    const { accessToken, session: current } = await userAccess(config, edgeOf(config));
    await edgeOf(config).logout(accessToken, current.refreshToken);
  } finally {
    // Forget the tokens locally even if the edge could not be told: the user asked to sign out here.
    clearSession(config.home);
  }
  io.out("Signed out.\n");
}

function defaultName(): string {
  const name = [
    ...os
      .hostname()
      .replace(/[\p{Cc}\u2028\u2029]/gu, "")
      .trim(),
  ]
    .slice(0, 64)
    .join("");
  return name === "" ? "wavry device" : name;
}

/** `wavry enroll [--code CODE] [--name NAME]`. */
export async function enrollCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand("enroll", args, { code: { type: "string" }, name: { type: "string" } }, 0);
  const name = stringFlag(parsed, "name") ?? defaultName();
  const length = [...name].length;
  if (length < 1 || length > 64 || name.trim() === "" || /[\p{Cc}\p{Cs}\u2028\u2029]/u.test(name)) {
    throw new UsageError("wavry enroll: --name must be 1 to 64 printable characters");
  }
  const typedCode = stringFlag(parsed, "code");
  const code = typedCode === undefined ? undefined : canonicalEnrollmentCode(typedCode);
  if (code === null) {
    throw new UsageError(
      "wavry enroll: --code must be a 20-character enrollment code (XXXX-XXXX-XXXX-XXXX-XXXX)",
    );
  }
  const config = configOf(io);
  const edge = edgeOf(config);
  const identity = identityOf(config);
  let enrolled: { deviceId: string; fingerprint: string };
  if (code !== undefined) {
    enrolled = await edge.enrollWithCode(code, identity, name);
  } else {
    const { accessToken, session } = await userAccess(config, edge);
    enrolled = await edge.enrollForUser(accessToken, session.userId, identity, name);
  }
  // The edge derives the id from the keys it stored; a different answer means it stored other keys.
  if (enrolled.deviceId !== identity.deviceId || enrolled.fingerprint !== identity.fingerprint) {
    throw new CommandFailure("the edge enrolled keys that are not this device's; do not use this edge");
  }
  io.out(`Enrolled "${name}".\nDevice id:   ${identity.deviceId}\nFingerprint: ${identity.fingerprint}\n`);
}

/** `wavry devices [--json]`. */
export async function devicesCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand("devices", args, { json: { type: "boolean" } }, 0);
  const config = configOf(io);
  const edge = edgeOf(config);
  const { accessToken } = await userAccess(config, edge);
  const devices = await edge.listDevices(accessToken);
  if (parsed.flags.json === true) {
    io.out(`${JSON.stringify({ devices }, null, 2)}\n`);
    return;
  }
  if (devices.length === 0) {
    io.out("No devices enrolled. Run: wavry enroll\n");
    return;
  }
  const self = loadSelfId(config.home);
  for (const device of devices) {
    const marks = [device.revoked ? "revoked" : "", device.deviceId === self ? "this device" : ""].filter(
      Boolean,
    );
    const seen = device.lastSeenAt === null ? "never" : new Date(device.lastSeenAt).toISOString();
    io.out(
      `${device.deviceId}  ${device.name}${marks.length > 0 ? `  (${marks.join(", ")})` : ""}\n` +
        `  fingerprint ${device.fingerprint}   last seen ${seen}\n`,
    );
  }
}

function loadSelfId(home: string): string | null {
  try {
    return loadIdentity(home)?.deviceId ?? null;
  } catch {
    // Listing works without a local identity (e.g. on a machine used only to manage devices).
    return null;
  }
}
