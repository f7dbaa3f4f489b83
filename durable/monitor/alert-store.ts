import type { Finding, RuleName, Severity } from "./rules.ts";

/**
 * Stored alerts (issue 6): one row per alert in the Monitor object's SQLite storage, de-duplicated (one open alert
 * per rule and subject per cool-down: later findings raise its count and last-seen time), bounded (the newest
 * `maxStored` are kept) and acknowledgeable. Delivery state lives on the row, so the admin API shows whether the
 * webhook got it.
 */

export type DeliveryStatus = "pending" | "delivered" | "failed" | "disabled";
export type AlertStatus = "open" | "acked";

/** An alert as the admin API and the webhook show it. */
export interface Alert {
  readonly id: string;
  readonly rule: RuleName;
  readonly severity: Severity;
  readonly subject: string;
  readonly summary: string;
  readonly count: number;
  readonly threshold: number;
  readonly windowSecs: number;
  /** Findings folded into this alert. */
  readonly occurrences: number;
  /** When the first and the latest triggering events happened (edge clock). */
  readonly firstSeen: number;
  readonly lastSeen: number;
  /** When the alert was stored. */
  readonly createdAt: number;
  readonly status: AlertStatus;
  readonly ackedAt: number | null;
  readonly ackedBy: string | null;
  readonly ackNote: string | null;
  readonly delivery: {
    readonly status: DeliveryStatus;
    readonly attempts: number;
    readonly nextAttemptAt: number | null;
    readonly deliveredAt: number | null;
    readonly lastError: string | null;
  };
}

interface AlertRow extends Record<string, SqlStorageValue> {
  id: string;
  rule: string;
  severity: string;
  subject: string;
  summary: string;
  count: number;
  threshold: number;
  window_ms: number;
  occurrences: number;
  first_seen: number;
  last_seen: number;
  created_at: number;
  acked_at: number | null;
  acked_by: string | null;
  ack_note: string | null;
  delivery_status: string;
  delivery_attempts: number;
  next_attempt_at: number | null;
  delivered_at: number | null;
  last_error: string | null;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, severity TEXT NOT NULL, subject TEXT NOT NULL, summary TEXT NOT NULL,
    count INTEGER NOT NULL, threshold INTEGER NOT NULL, window_ms INTEGER NOT NULL, occurrences INTEGER NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, created_at INTEGER NOT NULL,
    acked_at INTEGER, acked_by TEXT, ack_note TEXT,
    delivery_status TEXT NOT NULL, delivery_attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER,
    delivered_at INTEGER, last_error TEXT
  );
  CREATE INDEX IF NOT EXISTS alerts_by_subject ON alerts (rule, subject, created_at);
  CREATE INDEX IF NOT EXISTS alerts_by_age ON alerts (created_at);
  CREATE INDEX IF NOT EXISTS alerts_due ON alerts (delivery_status, next_attempt_at);
`;

function toAlert(row: AlertRow): Alert {
  return {
    id: row.id,
    rule: row.rule as RuleName,
    severity: row.severity as Severity,
    subject: row.subject,
    summary: row.summary,
    count: row.count,
    threshold: row.threshold,
    windowSecs: Math.round(row.window_ms / 1000),
    occurrences: row.occurrences,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    createdAt: row.created_at,
    status: row.acked_at === null ? "open" : "acked",
    ackedAt: row.acked_at,
    ackedBy: row.acked_by,
    ackNote: row.ack_note,
    delivery: {
      status: row.delivery_status as DeliveryStatus,
      attempts: row.delivery_attempts,
      nextAttemptAt: row.next_attempt_at,
      deliveredAt: row.delivered_at,
      lastError: row.last_error,
    },
  };
}

/** The alert table over a Durable Object's SQLite storage. */
export class AlertStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
  }

  /**
   * Records a finding: folds it into the open alert of its rule and subject created within `cooldownMs`, or stores
   * a new alert. Returns the alert and whether it is new (only new alerts are delivered).
   */
  record(
    finding: Finding,
    now: number,
    options: { cooldownMs: number; maxStored: number; deliver: boolean; newId: () => string },
  ): { alert: Alert; created: boolean } {
    const open = this.sql
      .exec<{ id: string }>(
        `SELECT id FROM alerts WHERE rule = ? AND subject = ? AND acked_at IS NULL AND created_at > ?
          ORDER BY created_at DESC LIMIT 1`,
        finding.rule,
        finding.subject,
        now - options.cooldownMs,
      )
      .toArray()[0];
    if (open !== undefined) {
      this.sql.exec(
        `UPDATE alerts SET occurrences = occurrences + 1, count = MAX(count, ?), summary = ?,
                last_seen = MAX(last_seen, ?) WHERE id = ?`,
        finding.count,
        finding.summary,
        finding.at,
        open.id,
      );
      return { alert: this.mustGet(open.id), created: false };
    }
    const id = options.newId();
    this.sql.exec(
      `INSERT INTO alerts (id, rule, severity, subject, summary, count, threshold, window_ms, occurrences,
                           first_seen, last_seen, created_at, delivery_status, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`,
      id,
      finding.rule,
      finding.severity,
      finding.subject,
      finding.summary,
      finding.count,
      finding.threshold,
      finding.windowMs,
      finding.at,
      finding.at,
      now,
      options.deliver ? "pending" : "disabled",
      options.deliver ? now : null,
    );
    this.sql.exec(
      `DELETE FROM alerts WHERE id NOT IN (SELECT id FROM alerts ORDER BY created_at DESC, rowid DESC LIMIT ?)`,
      options.maxStored,
    );
    return { alert: this.mustGet(id), created: true };
  }

  get(id: string): Alert | null {
    const row = this.sql.exec<AlertRow>("SELECT * FROM alerts WHERE id = ?", id).toArray()[0];
    return row === undefined ? null : toAlert(row);
  }

  private mustGet(id: string): Alert {
    const alert = this.get(id);
    if (alert === null) throw new Error("alert vanished while being recorded");
    return alert;
  }

  /** Newest first. */
  list(status: AlertStatus | "all", limit: number): Alert[] {
    const where =
      status === "open" ? "WHERE acked_at IS NULL" : status === "acked" ? "WHERE acked_at IS NOT NULL" : "";
    return this.sql
      .exec<AlertRow>(`SELECT * FROM alerts ${where} ORDER BY created_at DESC, rowid DESC LIMIT ?`, limit)
      .toArray()
      .map(toAlert);
  }

  count(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM alerts").one().n;
  }

  /** Acknowledges an open alert; null when there is no such alert, the alert unchanged when already acked. */
  ack(id: string, by: string, note: string | null, now: number): Alert | null {
    this.sql.exec(
      "UPDATE alerts SET acked_at = ?, acked_by = ?, ack_note = ? WHERE id = ? AND acked_at IS NULL",
      now,
      by,
      note,
      id,
    );
    return this.get(id);
  }

  /** Alerts whose delivery is due at `now`, oldest first. */
  due(now: number, limit: number): Alert[] {
    return this.sql
      .exec<AlertRow>(
        `SELECT * FROM alerts WHERE delivery_status = 'pending' AND next_attempt_at <= ?
          ORDER BY next_attempt_at LIMIT ?`,
        now,
        limit,
      )
      .toArray()
      .map(toAlert);
  }

  /** The next pending delivery time, if any. */
  nextDue(): number | null {
    return (
      this.sql
        .exec<{ at: number | null }>(
          "SELECT MIN(next_attempt_at) AS at FROM alerts WHERE delivery_status = 'pending'",
        )
        .one().at ?? null
    );
  }

  delivered(id: string, attempts: number, now: number): void {
    this.sql.exec(
      `UPDATE alerts SET delivery_status = 'delivered', delivery_attempts = ?, delivered_at = ?, next_attempt_at = NULL,
              last_error = NULL WHERE id = ?`,
      attempts,
      now,
      id,
    );
  }

  /** A failed attempt: retried at `retryAt`, or given up when that is null. */
  failed(id: string, attempts: number, error: string, retryAt: number | null): void {
    this.sql.exec(
      `UPDATE alerts SET delivery_status = ?, delivery_attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?`,
      retryAt === null ? "failed" : "pending",
      attempts,
      retryAt,
      error.slice(0, 200),
      id,
    );
  }
}
