import { EdgeError } from "../edge-client/edge-client.ts";
import { PrivateFileError } from "../identity/private-file.ts";
import { TrustError } from "../trust/trust-store.ts";
import { devicesCommand, enrollCommand, loginCommand, logoutCommand } from "./account-commands.ts";
import { adminCommand } from "./admin-commands.ts";
import { type CliIo, CommandFailure, UsageError } from "./cli-context.ts";
import { COMMAND_HELP, type CommandName, isCommandName, MAIN_HELP } from "./help.ts";
import { initCommand, statusCommand } from "./identity-commands.ts";
import { connectCommand, hostCommand } from "./session-commands.ts";
import { trustCommand } from "./trust-commands.ts";

/**
 * The `wavry` command (issue 5: Commands). A thin dispatcher: each command parses its own flags strictly and
 * errors become one line on stderr with an exit code (0 ok, 1 failed, 2 bad usage or configuration). No path
 * prints a stack, a private key, a password or a token.
 */

type Command = (io: CliIo, args: readonly string[]) => Promise<void>;

const COMMANDS: Record<CommandName, Command> = {
  init: initCommand,
  login: loginCommand,
  logout: logoutCommand,
  enroll: enrollCommand,
  devices: devicesCommand,
  trust: trustCommand,
  status: statusCommand,
  host: hostCommand,
  connect: connectCommand,
  admin: adminCommand,
};

/** Runs `wavry` with `argv` (without node and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? rest[0] : undefined;
    if (topic !== undefined && isCommandName(topic)) io.out(`${COMMAND_HELP[topic]}\n`);
    else io.out(`${MAIN_HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  if (!isCommandName(name)) {
    io.err(`wavry: unknown command '${name}'\nRun 'wavry --help' for the list of commands.\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(`${COMMAND_HELP[name]}\n`);
    return 0;
  }
  try {
    await COMMANDS[name](io, rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n`);
      return 2;
    }
    if (error instanceof TrustError) {
      io.err(`wavry ${name}: ${error.message}\n`);
      return 1;
    }
    if (error instanceof CommandFailure || error instanceof PrivateFileError || error instanceof EdgeError) {
      io.err(`wavry ${name}: ${error.message}\n`);
      return 1;
    }
    // Unexpected: the class name only, never a stack or a message that could hold a value.
    io.err(`wavry ${name}: internal error (${error instanceof Error ? error.name : "unknown"})\n`);
    return 1;
  }
}

/** The process entry: real streams and environment. */
export async function main(argv: readonly string[]): Promise<number> {
  return runCli(argv, {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
    stdin: process.stdin,
  });
}
