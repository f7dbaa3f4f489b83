import { DurableObject } from "cloudflare:workers";
import { type AuditEntry, auditHash, GENESIS_HASH } from "../edge/services/audit.ts";

interface AuditEnv {
  readonly DB: D1Database;
}

/**
 * The single writer of the audit log: appends run one at a time, each linking to the previous row's hash, so the
 * chain in D1 never forks however many isolates write at once.
 */
export class AuditLog extends DurableObject<AuditEnv> {
  #last: { seq: number; hash: string } | null = null;

  /** Appends one entry and returns its sequence number and hash. */
  async append(entry: AuditEntry): Promise<{ seq: number; hash: string }> {
    return this.ctx.blockConcurrencyWhile(async () => {
      if (this.#last === null) {
        const row = await this.env.DB.prepare(
          "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        ).first<{
          seq: number;
          hash: string;
        }>();
        this.#last = row ?? { seq: 0, hash: GENESIS_HASH };
      }
      const seq = this.#last.seq + 1;
      const prevHash = this.#last.hash;
      const hash = await auditHash(seq, entry, prevHash);
      try {
        await this.env.DB.prepare(
          `INSERT INTO audit_log (seq, at, request_id, actor, method, path, status, outcome, reason, address_hash, detail, prev_hash, hash)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
          .bind(
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
            hash,
          )
          .run();
      } catch (error) {
        // Re-read the tail next time: the database is the source of truth.
        this.#last = null;
        throw error;
      }
      this.#last = { seq, hash };
      return { seq, hash };
    });
  }
}
