import { utf8 } from "../protocol/bytes.ts";
import { formatLogLine, type LogFields, type LogLevel, type LogValue } from "../protocol/log/log-line.ts";
import { type EdgeBindings, loadConfig } from "./env.ts";

/**
 * Structured JSON log lines for the edge and its Durable Objects, through the shared redaction helper
 * (protocol/log/): one object a line with `ts`, `level`, `component`, `event`, `outcome`, then scalar fields (a
 * `requestId` or `sessionId` where there is one). Secret-named fields are redacted, addresses and emails become
 * keyed hashes under `WAVRY_LOG_HASH_KEY` (the same HMAC as the audit rows' `addressHash`), and secret-shaped text
 * is scanned out of every value. Still: pass ids, codes and counts, never tokens, passwords, keys or payloads.
 */
export type { LogFields, LogLevel, LogValue };

/** The hash key of this isolate, once a request or a Durable Object has seen a valid configuration. */
let hashKey: Uint8Array | null = null;
let hashKeyText: string | null = null;

/** Sets the key the address and email hashes are made with (the edge config's `logHashKey`). */
export function setLogHashKey(key: string): void {
  if (key === hashKeyText) return;
  hashKeyText = key;
  hashKey = utf8(key);
}

/**
 * Takes the hash key from `env` when its configuration is valid (validation is cached per isolate). Until some
 * request or Durable Object did, lines drop address and email fields rather than print them.
 */
export function useLogHashKey(env: EdgeBindings): void {
  const result = loadConfig(env);
  if (result.ok) setLogHashKey(result.config.logHashKey);
}

/** Writes one line for `event` with its `outcome`; the fixed keys cannot be overwritten by a field. */
export function logEvent(
  level: LogLevel,
  component: string,
  event: string,
  outcome: string,
  fields: LogFields = {},
): void {
  const line = formatLogLine({ timeMs: Date.now(), level, component, event, outcome, fields }, hashKey);
  if (level === "error") console.error(line);
  else console.log(line);
}
