import { toHex, utf8 } from "../../protocol/bytes.ts";

/**
 * The hash-chained audit log. Each row's hash covers its fields and the previous row's hash, so changing,
 * removing or reordering any row breaks every hash after it. Rows are appended by the AuditLog Durable Object
 * (one writer, so the chain never forks); the database also refuses UPDATE and DELETE (migrations/0001).
 */
export const GENESIS_HASH = "0".repeat(64);

export interface AuditEntry {
  readonly at: number;
  readonly requestId: string;
  readonly actor: string | null;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly outcome: "allowed" | "refused";
  readonly reason: string | null;
  readonly addressHash: string | null;
  readonly detail: string | null;
}

export interface AuditRow extends AuditEntry {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/** SHA-256 over a canonical JSON array of the row's fields and the previous hash. */
export async function auditHash(seq: number, entry: AuditEntry, prevHash: string): Promise<string> {
  const canonical = JSON.stringify([
    seq,
    entry.at,
    entry.requestId,
    entry.actor,
    entry.method,
    entry.path,
    entry.status,
    entry.outcome,
    entry.reason,
    entry.addressHash,
    entry.detail,
    prevHash,
  ]);
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(canonical))));
}

interface DbRow {
  seq: number;
  at: number;
  request_id: string;
  actor: string | null;
  method: string;
  path: string;
  status: number;
  outcome: "allowed" | "refused";
  reason: string | null;
  address_hash: string | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

export function fromDbRow(row: DbRow): AuditRow {
  return {
    seq: row.seq,
    at: row.at,
    requestId: row.request_id,
    actor: row.actor,
    method: row.method,
    path: row.path,
    status: row.status,
    outcome: row.outcome,
    reason: row.reason,
    addressHash: row.address_hash,
    detail: row.detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** Reads a page of the log, newest first. */
export async function readAudit(
  db: D1Database,
  beforeSeq: number | null,
  limit: number,
): Promise<AuditRow[]> {
  const { results } = await db
    .prepare("SELECT * FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?")
    .bind(beforeSeq ?? Number.MAX_SAFE_INTEGER, limit)
    .all<DbRow>();
  return results.map(fromDbRow);
}

/** Walks the whole chain in order. Reports the first row whose link or hash does not hold. */
export async function verifyAuditChain(
  db: D1Database,
): Promise<{ intact: boolean; rows: number; firstBadSeq: number | null }> {
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  let rows = 0;
  let after = 0;
  for (;;) {
    const { results } = await db
      .prepare("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq ASC LIMIT 500")
      .bind(after)
      .all<DbRow>();
    if (results.length === 0) break;
    for (const raw of results) {
      const row = fromDbRow(raw);
      rows++;
      const ok =
        row.seq === expectedSeq &&
        row.prevHash === prev &&
        (await auditHash(row.seq, row, prev)) === row.hash;
      if (!ok) return { intact: false, rows, firstBadSeq: row.seq };
      prev = row.hash;
      expectedSeq++;
      after = row.seq;
    }
  }
  return { intact: true, rows, firstBadSeq: null };
}
