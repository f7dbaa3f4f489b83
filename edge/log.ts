/**
 * Structured JSON log lines for the edge and its Durable Objects: one object a line with `ts`, `level`,
 * `component`, `event`, `outcome`, then scalar fields (a `requestId` or `sessionId` where there is one).
 * Never pass tokens, passwords, keys, TOTP secrets or payloads. (The shared redaction helper replaces this body.)
 */
export type LogLevel = "info" | "warn" | "error";
/** Scalars only, so nothing nested (a key object, a buffer) slips in. */
export type LogValue = string | number | boolean | null;
export type LogFields = Readonly<Record<string, LogValue>>;

export function logEvent(
  level: LogLevel,
  component: string,
  event: string,
  outcome: string,
  fields: LogFields = {},
): void {
  const fixed = { ts: new Date().toISOString(), level, component, event, outcome };
  // Spread twice: the fixed keys print first, and a field can never overwrite them.
  console.log(JSON.stringify({ ...fixed, ...fields, ...fixed }));
}
