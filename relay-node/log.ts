import { randomBytes } from "node:crypto";
import { utf8 } from "../protocol/bytes.ts";
import { formatLogLine, type LogFields, type LogLevel, type LogValue } from "../protocol/log/log-line.ts";
import type { Clock } from "./clock.ts";

/**
 * Structured JSON log lines, one object a line: `ts`, `level`, `component: "relay"`, `event`, `outcome`, then the
 * fields, all through the shared redaction helper (protocol/log/): secret-named fields are redacted, address fields
 * (`peer` addresses, `remote`, `addr`…) and any IP address inside a text become keyed hashes `h:<hex>`, and
 * secret-shaped text (tokens, leases, keys) is scanned out of every value. Callers still pass only what an operator
 * needs: never keys, tokens, leases or payloads.
 */
export type { LogFields, LogLevel, LogValue };

/** Writes one line for `event` with its `outcome`. */
export interface Logger {
  log(level: LogLevel, event: string, outcome: string, fields?: LogFields): void;
}

/**
 * The key of this process when `WAVRY_RELAY_LOG_HASH_KEY` is not set: random, so the hashes of one run cannot be
 * matched with those of another run or another relay (nor reversed by anyone reading the logs).
 */
const processKey: Uint8Array = new Uint8Array(randomBytes(32));

/**
 * A logger writing JSON lines through `write` (stdout in `wavry-relay`). `hashKey` is the configured
 * `WAVRY_RELAY_LOG_HASH_KEY`; null or absent means the random per-process key.
 */
export function jsonLogger(
  write: (line: string) => void,
  clock: Clock,
  hashKey: string | null = null,
): Logger {
  const key = hashKey === null ? processKey : utf8(hashKey);
  return {
    log(level, event, outcome, fields) {
      const line = formatLogLine(
        { timeMs: clock.nowMs(), level, component: "relay", event, outcome, ...(fields && { fields }) },
        key,
      );
      write(`${line}\n`);
    },
  };
}

/** Drops everything (tests and the benchmark). */
export const silentLogger: Logger = { log: () => undefined };
