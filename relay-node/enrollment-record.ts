import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";

/**
 * "This key has enrolled with this edge": a small JSON file beside the key file, so the one-time enrollment token
 * is used once and the relay goes straight to register on later starts. It holds no secret (a relay id, an edge
 * origin and a time), but is written 0600 like its neighbour.
 */
export interface EnrollmentRecord {
  readonly relayId: string;
  readonly edgeOrigin: string;
  readonly enrolledAt: string;
}

/** Where the record for `keyFile` lives. */
export function enrollmentRecordPath(keyFile: string): string {
  return `${keyFile}.enrollment.json`;
}

/**
 * The record, when it exists and matches this key and this edge (a new key or another edge means enrolling
 * again); null otherwise, including for a file that does not parse.
 */
export function readEnrollmentRecord(
  keyFile: string,
  relayId: string,
  edgeOrigin: string,
): EnrollmentRecord | null {
  let text: string;
  try {
    text = readFileSync(enrollmentRecordPath(keyFile), "utf8");
  } catch {
    return null;
  }
  if (text.length > 4096) return null;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return null;
    const record = value as Record<string, unknown>;
    if (record.relayId !== relayId || record.edgeOrigin !== edgeOrigin) return null;
    return { relayId, edgeOrigin, enrolledAt: String(record.enrolledAt) };
  } catch {
    return null;
  }
}

/** Writes the record atomically (temporary file, fsync, rename). */
export function writeEnrollmentRecord(keyFile: string, record: EnrollmentRecord): void {
  const target = enrollmentRecordPath(keyFile);
  const temporary = `${target}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(record)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, target);
}
