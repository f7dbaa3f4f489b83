/**
 * `wavry-relay`: the relay node's entry (`npx tsx relay-node/main.ts`). Reads and validates the environment once
 * (config.ts; OPERATIONS.md lists every variable), starts the node, and stops it cleanly on SIGINT or SIGTERM.
 * Exit codes: 0 after a clean stop, 2 for a configuration refused at start, 1 for any other start failure.
 */
import { systemClock } from "./clock.ts";
import { loadConfig } from "./config.ts";
import { KeyFileError } from "./identity.ts";
import { jsonLogger } from "./log.ts";
import { RelayStartError, startRelayNode } from "./relay-node.ts";

const write = (line: string) => process.stdout.write(line);
/** Until the configuration is read, lines hash addresses with the random per-process key. */
let log = jsonLogger(write, systemClock);

async function main(): Promise<number> {
  const result = loadConfig(process.env);
  if (!result.ok) {
    for (const problem of result.problems) log.log("error", "config", "refused", { problem });
    return 2;
  }
  log = jsonLogger(write, systemClock, result.config.logHashKey);
  let node: Awaited<ReturnType<typeof startRelayNode>>;
  try {
    node = await startRelayNode({ config: result.config, log });
  } catch (error) {
    if (error instanceof KeyFileError || error instanceof RelayStartError) {
      log.log("error", "relay_start", "refused", { problem: error.message });
      return 2;
    }
    const code =
      typeof error === "object" && error !== null && "code" in error ? String(error.code) : "error";
    log.log("error", "relay_start", "failed", { code });
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.log("info", "relay_signal", "stopping", { signal });
      node.stop().then(resolve, resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    log.log("error", "relay_main", "bug", { error: String(error).slice(0, 200) });
    process.exitCode = 1;
  },
);
