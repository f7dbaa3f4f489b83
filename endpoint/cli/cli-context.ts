import { parseArgs } from "node:util";
import { type EndpointConfig, loadEndpointConfig } from "../config.ts";
import { EdgeClient } from "../edge-client/edge-client.ts";
import { type DeviceIdentity, loadIdentity } from "../identity/device-identity.ts";

/**
 * What every `wavry` command gets: output streams, the environment, and lazily validated configuration. Exit
 * codes: 0 success, 1 the command failed (edge refused, file refused…), 2 bad usage or bad configuration.
 */

/** Where a command writes and reads. Injected so tests could run commands in-process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: NodeJS.ReadStream;
}

/** Bad usage or configuration: the message goes to stderr and the exit code is 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The command could not do its job: the message goes to stderr and the exit code is 1. */
export class CommandFailure extends Error {
  override readonly name = "CommandFailure";
}

/** The configuration, validated on first use (help never needs it). */
export function configOf(io: CliIo): EndpointConfig {
  const result = loadEndpointConfig(io.env);
  if (!result.ok) throw new UsageError(`invalid configuration:\n  ${result.problems.join("\n  ")}`);
  return result.config;
}

/** An edge client for the configured edge; a usage error naming WAVRY_EDGE_URL when none is set. */
export function edgeOf(config: EndpointConfig): EdgeClient {
  if (config.edgeUrl === null) {
    throw new UsageError("WAVRY_EDGE_URL is not set (the edge origin, e.g. https://edge.example.com)");
  }
  return new EdgeClient({ baseUrl: config.edgeUrl, environment: config.environment });
}

/** The device identity, or a failure telling the user to run `wavry init`. */
export function identityOf(config: EndpointConfig): DeviceIdentity {
  const identity = loadIdentity(config.home);
  if (identity === null) throw new CommandFailure(`no device identity in ${config.home}; run: wavry init`);
  return identity;
}

/** Flag spec accepted by {@link parseCommand}. */
export type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

/** Parsed flags and positionals of one command. */
export interface ParsedCommand {
  readonly flags: Readonly<Record<string, string | boolean | readonly (string | boolean)[] | undefined>>;
  readonly positionals: readonly string[];
}

/**
 * Parses a command's arguments strictly: an unknown flag, a missing flag value or too many positionals is a
 * usage error (exit 2) that names the command's help.
 */
export function parseCommand(
  command: string,
  args: readonly string[],
  flags: FlagSpec,
  maxPositionals: number,
): ParsedCommand {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...flags, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    // Node's message goes on to explain `--`; the first sentence names the bad flag, which is what matters.
    const message = error instanceof Error ? (error.message.split(/\.\s|\n/)[0] ?? "") : "bad arguments";
    throw new UsageError(`wavry ${command}: ${message}\nRun 'wavry ${command} --help' for usage.`);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(
      `wavry ${command}: unexpected argument '${parsed.positionals[maxPositionals] ?? ""}'\n` +
        `Run 'wavry ${command} --help' for usage.`,
    );
  }
  return { flags: parsed.values, positionals: parsed.positionals };
}

/** A string flag's value, if given. */
export function stringFlag(parsed: ParsedCommand, name: string): string | undefined {
  const value = parsed.flags[name];
  return typeof value === "string" ? value : undefined;
}
