import { randomBytes } from "node:crypto";
import { formatLogLine, type LogFields, type LogLevel } from "../../protocol/log/log-line.ts";

/**
 * What `wavry host` and `wavry connect` write. Two kinds of line, on two streams:
 * - status lines for the person at the terminal, on stdout, as they always were: the host is online, a session
 *   was established (and its short authentication string), the viewer URL (which carries the viewer's access token:
 *   it is printed to this user only, never into a log line), a changed peer key;
 * - structured JSON log lines for machines, on stderr: `component: "endpoint"`, the event, the outcome and the
 *   session id where there is one, through the shared redaction helper (protocol/log/), like every other part.
 *
 * The endpoint has no configured log hash key: addresses in its lines are hashed with a random key per process, so
 * two runs' hashes cannot be matched, and nobody reading the lines can test a guess against them.
 */
export interface DaemonLog {
  /** A status line for the person at the terminal (stdout). */
  (line: string): void;
  /** A structured log line (stderr JSON). */
  event(level: LogLevel, event: string, outcome: string, fields?: LogFields): void;
}

const processKey: Uint8Array = new Uint8Array(randomBytes(32));

/** A {@link DaemonLog} writing status lines through `say` and JSON lines through `write` (both get whole lines). */
export function daemonLog(
  say: (text: string) => void,
  write: (text: string) => void,
  nowMs: () => number = Date.now,
): DaemonLog {
  const event: DaemonLog["event"] = (level, name, outcome, fields) => {
    const record = { timeMs: nowMs(), level, component: "endpoint", event: name, outcome };
    write(`${formatLogLine(fields === undefined ? record : { ...record, fields }, processKey)}\n`);
  };
  return Object.assign((line: string) => say(`${line}\n`), { event });
}

/** Drops everything (tests). */
export const silentDaemonLog: DaemonLog = Object.assign(() => undefined, { event: () => undefined });
