import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { parseEdgeUrl } from "../config.ts";
import {
  type CliIo,
  CommandFailure,
  configOf,
  type FlagSpec,
  type ParsedCommand,
  stringFlag,
  UsageError,
} from "./cli-context.ts";

/**
 * The admin API client behind `wavry admin` (issue 6). The admin token comes from a file (`--token-file` or
 * WAVRY_ADMIN_TOKEN_FILE) that only its owner may read; never from argv (visible in `ps` and shell history), and it
 * is never printed: it goes into the Authorization header and nowhere else. The edge is WAVRY_EDGE_URL or `--edge`,
 * https in production.
 */

/** Flags every `wavry admin` subcommand accepts. */
export const ADMIN_CONNECTION_FLAGS = {
  edge: { type: "string" },
  "token-file": { type: "string" },
} as const;

const ADMIN_TOKEN_PREFIX = "wvadm_";
const MAX_TOKEN_FILE_BYTES = 4096;
const MAX_ANSWER_BYTES = 1024 * 1024;
const TIMEOUT_MS = 15_000;

/** Where and as whom admin calls go. */
export interface AdminConnection {
  readonly edge: URL;
  readonly token: string;
}

/** Reads one admin token from `file`, refusing a file that group or others can read. */
export function readAdminTokenFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    throw new CommandFailure(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new CommandFailure(`${file} is not a file`);
    if ((stat.mode & 0o077) !== 0) {
      throw new CommandFailure(`the admin token file ${file} is readable by other users; chmod 600 it`);
    }
    if (stat.size > MAX_TOKEN_FILE_BYTES) throw new CommandFailure(`${file} does not hold one admin token`);
    const buffer = Buffer.alloc(MAX_TOKEN_FILE_BYTES);
    const length = readSync(fd, buffer, 0, MAX_TOKEN_FILE_BYTES, 0);
    const token = buffer.subarray(0, length).toString("utf8").trim();
    if (!token.startsWith(ADMIN_TOKEN_PREFIX) || /\s/.test(token)) {
      throw new CommandFailure(`${file} does not hold one admin token (wvadm_…)`);
    }
    return token;
  } finally {
    closeSync(fd);
  }
}

/** The edge and token for this run, from flags and the environment. */
export function adminConnectionOf(io: CliIo, parsed: ParsedCommand): AdminConnection {
  const config = configOf(io);
  const edgeFlag = stringFlag(parsed, "edge");
  let edge = config.edgeUrl;
  if (edgeFlag !== undefined) {
    const url = parseEdgeUrl(edgeFlag, config.environment);
    if (typeof url === "string") throw new UsageError(url.replace("WAVRY_EDGE_URL", "--edge"));
    edge = url;
  }
  if (edge === null) throw new UsageError("give --edge URL or set WAVRY_EDGE_URL (the edge origin)");
  const file = stringFlag(parsed, "token-file") ?? io.env.WAVRY_ADMIN_TOKEN_FILE;
  if (file === undefined || file.trim() === "") {
    throw new UsageError(
      "give --token-file FILE or set WAVRY_ADMIN_TOKEN_FILE (a file holding the admin token, mode 0600)",
    );
  }
  return { edge, token: readAdminTokenFile(file) };
}

async function readBounded(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new CommandFailure("the edge's answer is too large");
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * One admin API call (path below /v1/admin). Returns the parsed JSON answer (null for 204). A refusal becomes a
 * {@link CommandFailure} with the status and the edge's error code and message.
 */
export async function adminCall(
  connection: AdminConnection,
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = new URL(`/v1/admin${path}`, connection.edge);
  const headers: Record<string, string> = { Authorization: `Bearer ${connection.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
      redirect: "error",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    throw new CommandFailure(`cannot reach ${url.origin}`);
  }
  const text = await readBounded(response);
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    // Not JSON (a proxy's page): reported below if it was a refusal.
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const detail =
      typeof error?.code === "string"
        ? `${error.code}: ${typeof error.message === "string" ? error.message : ""}`
        : text.slice(0, 200).replace(/\s+/g, " ");
    throw new CommandFailure(`the edge refused (HTTP ${response.status}) ${detail}`.trim());
  }
  return json;
}

/** Pretty JSON for listings (the admin API never returns secrets in them). */
export function printJson(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** One subcommand: its flags, how many positionals it takes, and what it does. */
export interface AdminSubcommand {
  readonly flags?: FlagSpec;
  readonly positionals: readonly [min: number, max: number];
  readonly usage: string;
  run(io: CliIo, connection: AdminConnection, parsed: ParsedCommand): Promise<void>;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;
/** A positional that goes into a URL path: only id characters, so it cannot change the path. */
export function idArg(parsed: ParsedCommand, index: number, what: string): string {
  const value = parsed.positionals[index] ?? "";
  if (!ID.test(value)) throw new UsageError(`${what} must be 1 to 64 characters of A-Z a-z 0-9 _ -`);
  return value;
}

/** A required string flag. */
export function requiredFlag(parsed: ParsedCommand, name: string): string {
  const value = stringFlag(parsed, name);
  if (value === undefined || value.trim() === "") throw new UsageError(`--${name} is required`);
  return value;
}

/** `--ttl 3600`, `90m`, `24h` or `7d` as seconds. */
export function durationSecs(text: string, flag: string): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (match === null) throw new UsageError(`--${flag} must be a number of seconds or N with s, m, h or d`);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] ?? ""] ?? 1;
  return Number(match[1]) * unit;
}
