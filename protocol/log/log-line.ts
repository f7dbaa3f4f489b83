import { type LogFields, type LogValue, MAX_FIELDS, redactField, scrubText } from "./redaction.ts";

/**
 * One structured log line, the same shape for every part (edge, Durable Objects, relay, endpoint): a JSON object
 * with `ts`, `level`, `component`, `event`, `outcome`, then the context ids (`requestId`, `sessionId`, …), then the
 * fields, every value through the redaction rule of redaction.ts. Pure: the caller passes the time and the hash key.
 */

export type { LogFields, LogValue } from "./redaction.ts";

export type LogLevel = "info" | "warn" | "error";

/** What one line says. */
export interface LogRecord {
  /** Wall-clock milliseconds since the epoch (the caller's clock). */
  readonly timeMs: number;
  readonly level: LogLevel;
  /** The writing part: `edge`, `signaling-room`, `relay`, `endpoint`, … */
  readonly component: string;
  readonly event: string;
  readonly outcome: string;
  /** Ids that tie the line to a request or a session; printed right after the fixed keys. */
  readonly context?: LogFields;
  readonly fields?: LogFields;
}

const FIXED = ["ts", "level", "component", "event", "outcome"] as const;
const WORD_CHARS = 64;

/** An event, outcome or component: short, and scanned like any text (the relay passes an edge answer as outcome). */
function label(text: string, key: Uint8Array | null): string {
  return scrubText(String(text), key).slice(0, WORD_CHARS);
}

/**
 * The JSON text of one line (no trailing newline). `hashKey` keys the hashes of addresses and emails; null when it is
 * not known (yet), and then address fields are dropped and addresses in text become `[address]`.
 */
export function formatLogLine(record: LogRecord, hashKey: Uint8Array | null): string {
  const time = Number.isFinite(record.timeMs) ? record.timeMs : 0;
  const line: Record<string, LogValue> = {
    ts: new Date(time).toISOString(),
    level: record.level,
    component: label(record.component, hashKey),
    event: label(record.event, hashKey),
    outcome: label(record.outcome, hashKey),
  };
  let count = 0;
  for (const source of [record.context, record.fields]) {
    if (source === undefined) continue;
    for (const [name, value] of Object.entries(source)) {
      // The fixed keys are never overwritten, and the first of a repeated id wins.
      if ((FIXED as readonly string[]).includes(name) || Object.hasOwn(line, name)) continue;
      if (count >= MAX_FIELDS) break;
      const safe = redactField(name, value, hashKey);
      if (safe === undefined) continue;
      line[name] = safe;
      count++;
    }
  }
  return JSON.stringify(line);
}
