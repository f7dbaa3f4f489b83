import { isDeviceId } from "../../protocol/identity/device-id.ts";
import type { EndpointConfig } from "../config.ts";
import { runClientDaemon } from "../daemon/client-daemon.ts";
import { type DaemonLog, daemonLog } from "../daemon/daemon-log.ts";
import type { PeerKeyLookup } from "../daemon/daemon-support.ts";
import { type InjectKind, runHostDaemon } from "../daemon/host-daemon.ts";
import type { EdgeClient } from "../edge-client/edge-client.ts";
import { fromBase64url } from "../identity/device-identity.ts";
import { parseFileSinkSpec } from "../media/file-sink.ts";
import type { SourceKind } from "../media/video-source.ts";
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
import { userAccess } from "./session-file.ts";

/** `wavry host` and `wavry connect DEVICE`: the long-running daemons, stopped by SIGINT or SIGTERM. */

const SOURCES: readonly SourceKind[] = ["test", "x11", "clip"];
const INJECTORS: readonly InjectKind[] = ["log", "xdotool"];

/** An abort signal that fires on the first SIGINT or SIGTERM; `dispose` removes the handlers. */
function stopSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** First contact: the peer's keys from the signed-in user's own devices (none when not signed in). */
function ownDeviceLookup(config: EndpointConfig, edge: EdgeClient): PeerKeyLookup {
  return async (deviceId) => {
    const { accessToken } = await userAccess(config, edge);
    const device = (await edge.listDevices(accessToken)).find((d) => d.deviceId === deviceId);
    const x = device === undefined ? null : fromBase64url(device.x25519PublicKey, 32);
    const ed = device === undefined ? null : fromBase64url(device.ed25519PublicKey, 32);
    if (device === undefined || x === null || ed === null) return undefined;
    return { deviceId, x25519PublicKey: x, ed25519PublicKey: ed, name: device.name };
  };
}

/** Status lines to stdout (the person at the terminal), structured JSON log lines to stderr. */
function logTo(io: CliIo): DaemonLog {
  return daemonLog(io.out, io.err);
}

/** `wavry host [--source test|x11|clip] [--inject log|xdotool] [--relay-only]`. */
export async function hostCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand(
    "host",
    args,
    { source: { type: "string" }, inject: { type: "string" }, "relay-only": { type: "boolean" } },
    0,
  );
  const source = stringFlag(parsed, "source") ?? "test";
  const inject = stringFlag(parsed, "inject") ?? "log";
  if (!SOURCES.includes(source as SourceKind))
    throw new UsageError("wavry host: --source must be test, x11 or clip");
  if (!INJECTORS.includes(inject as InjectKind))
    throw new UsageError("wavry host: --inject must be log or xdotool");
  const config = configOf(io);
  const edge = edgeOf(config);
  const identity = identityOf(config);
  const { signal, dispose } = stopSignal();
  try {
    await runHostDaemon({
      config,
      edge,
      identity,
      env: io.env,
      source: source as SourceKind,
      inject: inject as InjectKind,
      relayOnly: parsed.flags["relay-only"] === true,
      lookupOwnDevice: ownDeviceLookup(config, edge),
      log: logTo(io),
      signal,
    });
  } catch (error) {
    throw new CommandFailure(error instanceof Error ? error.message : "the host daemon failed");
  } finally {
    dispose();
  }
}

/** `wavry connect DEVICE [--path direct|relay] [--record file:PATH] [--duration N] [--no-viewer]`. */
export async function connectCommand(io: CliIo, args: readonly string[]): Promise<void> {
  const parsed = parseCommand(
    "connect",
    args,
    {
      path: { type: "string" },
      record: { type: "string" },
      duration: { type: "string" },
      "no-viewer": { type: "boolean" },
    },
    1,
  );
  const hostId = parsed.positionals[0];
  if (hostId === undefined)
    throw new UsageError("wavry connect: give the host's device id\nRun 'wavry connect --help'.");
  if (!isDeviceId(hostId)) throw new UsageError("wavry connect: give a device id (d_ and 26 characters)");
  const path = stringFlag(parsed, "path") ?? "direct";
  if (path !== "direct" && path !== "relay")
    throw new UsageError("wavry connect: --path must be direct or relay");
  const recordText = stringFlag(parsed, "record");
  const record = recordText === undefined ? undefined : parseFileSinkSpec(recordText);
  if (recordText !== undefined && record === undefined) {
    throw new UsageError("wavry connect: --record must be file:PATH");
  }
  const durationText = stringFlag(parsed, "duration");
  const duration = durationText === undefined ? undefined : Number(durationText);
  if (duration !== undefined && (!Number.isFinite(duration) || duration <= 0 || duration > 86_400)) {
    throw new UsageError("wavry connect: --duration must be a number of seconds (0 < N <= 86400)");
  }
  const config = configOf(io);
  const edge = edgeOf(config);
  const identity = identityOf(config);
  const { signal, dispose } = stopSignal();
  let result: Awaited<ReturnType<typeof runClientDaemon>>;
  try {
    result = await runClientDaemon({
      config,
      edge,
      identity,
      env: io.env,
      hostId,
      path,
      viewer: parsed.flags["no-viewer"] !== true,
      ...(record !== undefined && { recordPath: record.path }),
      ...(duration !== undefined && { durationSecs: duration }),
      lookupOwnDevice: ownDeviceLookup(config, edge),
      log: logTo(io),
      signal,
    });
  } catch (error) {
    throw new CommandFailure(error instanceof Error ? error.message : "the client daemon failed");
  } finally {
    dispose();
  }
  io.out(
    `result: established=${result.established} path=${result.path ?? "none"} ` +
      `frames=${result.framesComplete}${record !== undefined ? ` recorded=${result.framesRecorded}` : ""}\n`,
  );
  // With a duration the run is a check: it succeeds only if the session came up and frames flowed.
  if (duration !== undefined && (!result.established || result.framesComplete < 1)) {
    throw new CommandFailure(
      result.established ? "no complete frame arrived" : "the session was not established",
    );
  }
  if (duration === undefined && !result.established)
    throw new CommandFailure("the session was not established");
}
