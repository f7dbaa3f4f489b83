import { isDeviceId } from "../../protocol/identity/device-id.ts";
import { fromBase64url } from "../identity/device-identity.ts";
import { TrustStore } from "../trust/trust-store.ts";
import {
  type CliIo,
  CommandFailure,
  configOf,
  edgeOf,
  type ParsedCommand,
  parseCommand,
  stringFlag,
  UsageError,
} from "./cli-context.ts";
import { userAccess } from "./session-file.ts";

/** `wavry trust list | pin DEVICE_ID | forget DEVICE_ID`. */
export async function trustCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand("trust", args, { x25519: { type: "string" }, ed25519: { type: "string" } }, 2);
  const [action, deviceId] = parsed.positionals;
  if (action === "list") {
    if (deviceId !== undefined) throw new UsageError("wavry trust list takes no argument");
    return trustList(io);
  }
  if (action !== "pin" && action !== "forget") {
    throw new UsageError(
      "wavry trust: give list, pin DEVICE_ID or forget DEVICE_ID\nRun 'wavry trust --help'.",
    );
  }
  if (deviceId === undefined || !isDeviceId(deviceId)) {
    throw new UsageError(`wavry trust ${action}: give a device id (d_ and 26 characters)`);
  }
  if (action === "forget") {
    const config = configOf(io);
    const had = TrustStore.open(config.home).forget(deviceId);
    io.out(had ? `Forgot ${deviceId}.\n` : `${deviceId} was not pinned.\n`);
    return;
  }
  return trustPin(io, deviceId, parsed);
}

function trustList(io: CliIo): void {
  const peers = TrustStore.open(configOf(io).home).list();
  if (peers.length === 0) {
    io.out("No pinned peers.\n");
    return;
  }
  for (const peer of peers) {
    const name = peer.name === null ? "" : `  ${peer.name}`;
    io.out(
      `${peer.deviceId}${name}\n  fingerprint ${peer.fingerprint}   first seen ${new Date(peer.firstSeenAt).toISOString()}\n`,
    );
  }
}

async function trustPin(io: CliIo, deviceId: string, parsed: ParsedCommand): Promise<void> {
  const xText = stringFlag(parsed, "x25519");
  const edText = stringFlag(parsed, "ed25519");
  if ((xText === undefined) !== (edText === undefined)) {
    throw new UsageError("wavry trust pin: give both --x25519 and --ed25519, or neither");
  }
  const config = configOf(io);
  let keys: { x25519PublicKey: Uint8Array; ed25519PublicKey: Uint8Array; name: string | null };
  if (xText !== undefined && edText !== undefined) {
    const x = fromBase64url(xText, 32);
    const ed = fromBase64url(edText, 32);
    if (x === null || ed === null)
      throw new UsageError("wavry trust pin: keys must be 32 bytes of base64url");
    keys = { x25519PublicKey: x, ed25519PublicKey: ed, name: null };
  } else {
    // Only the caller's own devices can be looked up: the edge publishes other users' keys only to a session.
    const edge = edgeOf(config);
    const { accessToken } = await userAccess(config, edge);
    const device = (await edge.listDevices(accessToken)).find((d) => d.deviceId === deviceId);
    const x = device === undefined ? null : fromBase64url(device.x25519PublicKey, 32);
    const ed = device === undefined ? null : fromBase64url(device.ed25519PublicKey, 32);
    if (device === undefined || x === null || ed === null) {
      throw new CommandFailure(
        `${deviceId} is not one of your devices; pin it with --x25519 KEY --ed25519 KEY from its owner`,
      );
    }
    keys = { x25519PublicKey: x, ed25519PublicKey: ed, name: device.name };
  }
  const peer = TrustStore.open(config.home).pin({ deviceId, ...keys });
  io.out(`Pinned ${peer.deviceId}\n  fingerprint ${peer.fingerprint}\n`);
}
