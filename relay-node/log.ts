import type { Clock } from "./clock.ts";

/**
 * Structured JSON log lines, one object a line: `ts`, `level`, `component: "relay"`, `event`, `outcome`, then the
 * fields. Callers pass only what an operator needs: never keys, tokens, leases or payloads, and addresses only
 * where an incident needs them (the monitoring issue replaces them with keyed hashes).
 */
export type LogLevel = "info" | "warn" | "error";
/** A log field value: scalars only, so nothing nested (a key object, a buffer) slips in. */
export type LogValue = string | number | boolean | null;
/** Fields of one log line. */
export type LogFields = Readonly<Record<string, LogValue>>;

/** Writes one line for `event` with its `outcome`. */
export interface Logger {
  log(level: LogLevel, event: string, outcome: string, fields?: LogFields): void;
}

/** A logger writing JSON lines through `write` (stdout in `wavry-relay`). */
export function jsonLogger(write: (line: string) => void, clock: Clock): Logger {
  return {
    log(level, event, outcome, fields) {
      const fixed = { ts: new Date(clock.nowMs()).toISOString(), level, component: "relay", event, outcome };
      // Spread twice: the fixed keys print first, and a field can never overwrite them.
      const line = { ...fixed, ...fields, ...fixed };
      write(`${JSON.stringify(line)}\n`);
    },
  };
}

/** Drops everything (tests and the benchmark). */
export const silentLogger: Logger = { log: () => undefined };
