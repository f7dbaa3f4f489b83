import type { EntryStore } from "./entry-store.ts";

/**
 * {@link EntryStore} over a Durable Object's SQLite storage: one row per key with its family and last update, so
 * the per-family cap and the pruning of quiet entries are single indexed statements. Values are JSON the rules
 * wrote; they check the shape again when reading.
 */
export class SqlEntryStore implements EntryStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        key TEXT PRIMARY KEY, family TEXT NOT NULL, at INTEGER NOT NULL, value TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS entries_by_family ON entries (family, at);
      CREATE INDEX IF NOT EXISTS entries_by_age ON entries (at);
    `);
  }

  get(key: string): unknown {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM entries WHERE key = ?", key).toArray()[0];
    if (row === undefined) return undefined;
    try {
      return JSON.parse(row.value) as unknown;
    } catch {
      return undefined;
    }
  }

  put(family: string, key: string, value: unknown, at: number, cap: number): void {
    const known = this.sql.exec("SELECT 1 FROM entries WHERE key = ?", key).toArray().length > 0;
    this.sql.exec(
      `INSERT INTO entries (key, family, at, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET at = MAX(at, excluded.at), value = excluded.value`,
      key,
      family,
      at,
      JSON.stringify(value),
    );
    if (known) return;
    const held = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries WHERE family = ?", family)
      .one().n;
    if (held > cap) {
      this.sql.exec(
        `DELETE FROM entries WHERE key IN (SELECT key FROM entries WHERE family = ? ORDER BY at ASC LIMIT ?)`,
        family,
        held - cap,
      );
    }
  }

  prune(before: number, keep: readonly string[] = []): number {
    return this.sql.exec(
      `DELETE FROM entries WHERE at < ? AND family NOT IN (SELECT value FROM json_each(?))`,
      before,
      JSON.stringify(keep),
    ).rowsWritten;
  }

  /** Keys held in a family (tests and the admin view). */
  size(family: string): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries WHERE family = ?", family).one().n;
  }
}
