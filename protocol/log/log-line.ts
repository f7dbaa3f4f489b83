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

/** Last millisecond of year 9999: beyond it ISO 8601 needs an expanded year. */
const MAX_ISO_MS = 253_402_300_799_999;
const DAY_MS = 86_400_000;
const pad = (n: number, width: number) => String(n).padStart(width, "0");

/**
 * `YYYY-MM-DDTHH:MM:SS.mmmZ` for epoch milliseconds (clamped to years 1970..9999), computed here rather than by
 * `Date` so protocol/ stays free of anything that could read the clock. Days → civil date by the usual
 * 400-year-era arithmetic on a calendar that starts in March (so leap days fall at the end of a year).
 */
export function isoTime(timeMs: number): string {
  const t = Number.isFinite(timeMs) ? Math.min(Math.max(Math.floor(timeMs), 0), MAX_ISO_MS) : 0;
  const days = Math.floor(t / DAY_MS);
  let rest = t - days * DAY_MS;
  const shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
  const era = Math.floor(shifted / 146_097);
  const dayOfEra = shifted - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra -
      Math.floor(dayOfEra / 1460) +
      Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest - seconds * 1000;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}.${pad(millis, 3)}Z`;
}

/** An event, outcome or component: short, and scanned like any text (the relay passes an edge answer as outcome). */
function label(text: string, key: Uint8Array | null): string {
  return scrubText(String(text), key).slice(0, WORD_CHARS);
}

/**
 * The JSON text of one line (no trailing newline). `hashKey` keys the hashes of addresses and emails; null when it is
 * not known (yet), and then address fields are dropped and addresses in text become `[address]`.
 */
export function formatLogLine(record: LogRecord, hashKey: Uint8Array | null): string {
  const line: Record<string, LogValue> = {
    ts: isoTime(record.timeMs),
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
