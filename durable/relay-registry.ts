import { DurableObject } from "cloudflare:workers";
import type { EdgeBindings } from "../edge/env.ts";
import { reportEvents } from "../edge/services/monitor.ts";
import {
  DROP_AFTER_MS,
  MISSED_HEARTBEATS_BEFORE_QUARANTINE,
  type RelayAdminState,
  relaySettings,
} from "../edge/services/relay-registry.ts";
import type { RelayHeartbeatRequest, RelayRegisterRequest } from "../protocol/relay/registry-messages.ts";
import { RELAY_REQUEST_MAX_SKEW_MS } from "../protocol/relay/signed-request.ts";

/** A nonce a relay request carried, with the timestamp it was signed with. */
export interface NonceClaim {
  readonly nonce: string;
  readonly timestampMs: number;
}

/** The registry's answer to a register or heartbeat whose signature the route has already verified. */
export type RegistryAnswer =
  | { readonly ok: true; readonly adminState: RelayAdminState }
  | { readonly ok: false; readonly reason: "replayed" | "nonce_budget" | "unknown" | "not_registered" };

/** The relay selection picked for a session. */
export interface SelectedRelay {
  readonly relayId: string;
  readonly publicAddr: string;
  readonly region: string;
}

/**
 * Most nonces remembered per relay. A nonce is kept until its timestamp leaves the skew window (at most twice
 * RELAY_REQUEST_MAX_SKEW_MS), so an honest relay at the fastest interval (1 s) holds about 120; past the bound its
 * requests are refused rather than a live nonce forgotten (forgetting would reopen a replay).
 */
const MAX_NONCES_PER_RELAY = 256;

/**
 * The relay registry (issue 4). It owns liveness: register and heartbeat mark a relay healthy; an alarm every
 * heartbeat interval quarantines a relay silent for three intervals and drops one silent for ten minutes. It never
 * touches `admin_state` (only admins write it), so draining, quarantined and banned stay until an admin changes them.
 *
 * One global object, not one per region: selection falls back to other regions when the requested one has nothing
 * assignable, which one object answers in one query; and the load is small (one heartbeat per relay per interval:
 * 1,000 relays at 5 s are 200 requests/s, within one object's budget). DESIGN.md (Scale) allows a shard per region
 * later, with a fallback fan-out.
 *
 * Relay records live in D1 (admins query them; the routes verify signatures against them); this object is their
 * only writer of liveness, and the keeper of seen nonces, in its own SQLite storage (a restart does not forget them,
 * and they never cost a D1 write).
 */
export class RelayRegistry extends DurableObject<EdgeBindings> {
  constructor(ctx: DurableObjectState, env: EdgeBindings) {
    super(ctx, env);
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS nonces (
         relay_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (relay_id, nonce)
       ) WITHOUT ROWID`,
    );
  }

  /** Records a register: the relay's address, region and capacity, and marks it healthy. */
  async register(
    relayId: string,
    info: RelayRegisterRequest,
    nonce: NonceClaim,
    now: number,
  ): Promise<RegistryAnswer> {
    const claimed = this.#claimNonce(relayId, nonce, now);
    if (claimed !== null) return claimed;
    // A (re)started relay has no sessions; health_changed_at moves only on a real change.
    const row = await this.env.DB.prepare(
      `UPDATE relays SET region = ?, public_addr = ?, version = ?, max_sessions = ?, registered_at = ?,
              register_count = register_count + 1, last_heartbeat_at = ?, load = 0, sessions = 0,
              health_changed_at = CASE WHEN health = 'healthy' THEN health_changed_at ELSE ? END, health = 'healthy'
        WHERE id = ? RETURNING admin_state`,
    )
      .bind(info.region, info.publicAddr, info.version, info.maxSessions, now, now, now, relayId)
      .first<{ admin_state: RelayAdminState }>();
    if (row === null) return { ok: false, reason: "unknown" };
    await this.#ensureAlarm(now);
    return { ok: true, adminState: row.admin_state };
  }

  /** Records a heartbeat (load, sessions, counters) and marks the relay healthy again. */
  async heartbeat(
    relayId: string,
    report: RelayHeartbeatRequest,
    nonce: NonceClaim,
    now: number,
  ): Promise<RegistryAnswer> {
    const claimed = this.#claimNonce(relayId, nonce, now);
    if (claimed !== null) return claimed;
    const counters = JSON.stringify({
      bytesForwarded: report.bytesForwarded,
      packetsForwarded: report.packetsForwarded,
      drops: report.drops,
      startedAt: report.startedAt,
    });
    const row = await this.env.DB.prepare(
      `UPDATE relays SET last_heartbeat_at = ?, load = ?, sessions = ?, counters = ?,
              health_changed_at = CASE WHEN health = 'healthy' THEN health_changed_at ELSE ? END, health = 'healthy'
        WHERE id = ? AND registered_at IS NOT NULL RETURNING admin_state`,
    )
      .bind(now, report.load, report.sessions, counters, now, relayId)
      .first<{ admin_state: RelayAdminState }>();
    if (row === null) return { ok: false, reason: "not_registered" };
    await this.#ensureAlarm(now);
    return { ok: true, adminState: row.admin_state };
  }

  /**
   * Picks a relay for a new session: healthy and heard from within the quarantine window (in case an alarm is
   * late), admin state none, below its session capacity and full load; the requested region first, then the lowest
   * load. The pick counts one more session at once (one atomic statement), so a burst of assignments between two
   * heartbeats cannot overfill a relay; the next heartbeat reports the true count.
   */
  async select(region: string | null, now: number): Promise<SelectedRelay | null> {
    const heardSince = now - MISSED_HEARTBEATS_BEFORE_QUARANTINE * this.#intervalMs();
    const row = await this.env.DB.prepare(
      `UPDATE relays SET sessions = sessions + 1 WHERE id = (
         SELECT id FROM relays
          WHERE health = 'healthy' AND admin_state = 'none' AND registered_at IS NOT NULL
            AND public_addr IS NOT NULL AND last_heartbeat_at >= ? AND sessions < max_sessions AND load < 1
          ORDER BY (region IS ?) DESC, load ASC, sessions ASC, id ASC LIMIT 1)
       RETURNING id, public_addr, region`,
    )
      .bind(heardSince, region)
      .first<{ id: string; public_addr: string; region: string }>();
    return row === null ? null : { relayId: row.id, publicAddr: row.public_addr, region: row.region };
  }

  /**
   * Lowers the health of silent relays at `now`: healthy -> quarantined after three missed intervals, anything ->
   * dropped after ten minutes. Only `health` changes. Returns how many relays are not dropped (the alarm keeps
   * running while any are).
   */
  async sweep(now: number): Promise<{ quarantined: number; dropped: number; live: number }> {
    const db = this.env.DB;
    const [dropped, quarantined, live] = await db.batch([
      db
        .prepare(
          "UPDATE relays SET health = 'dropped', health_changed_at = ? WHERE health != 'dropped' AND last_heartbeat_at < ?",
        )
        .bind(now, now - DROP_AFTER_MS),
      db
        .prepare(
          "UPDATE relays SET health = 'quarantined', health_changed_at = ? WHERE health = 'healthy' AND last_heartbeat_at < ? RETURNING id",
        )
        .bind(now, now - MISSED_HEARTBEATS_BEFORE_QUARANTINE * this.#intervalMs()),
      db.prepare("SELECT COUNT(*) AS n FROM relays WHERE health != 'dropped'"),
    ]);
    this.ctx.storage.sql.exec("DELETE FROM nonces WHERE expires_at <= ?", now);
    // A relay gone silent feeds the monitor's relay_silent and relays_at_once rules (issue 6).
    const silent = ((quarantined?.results ?? []) as { id: string }[]).map((r) => r.id);
    await reportEvents(
      this.env,
      silent.map((relayId) => ({ kind: "relay_silent", at: now, relayId })),
    );
    return {
      dropped: dropped?.meta.changes ?? 0,
      quarantined: quarantined?.meta.changes ?? 0,
      live: (live?.results[0] as { n: number } | undefined)?.n ?? 0,
    };
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const { live } = await this.sweep(now);
    if (live > 0) await this.ctx.storage.setAlarm(now + this.#intervalMs());
  }

  #intervalMs(): number {
    const result = relaySettings(this.env);
    // The routes refuse to run with invalid settings, so this only guards against a direct call.
    if (!result.ok) throw new Error("relay settings are invalid");
    return result.settings.heartbeatIntervalMs;
  }

  async #ensureAlarm(now: number): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(now + this.#intervalMs());
    }
  }

  /**
   * Remembers a nonce until its timestamp can no longer pass the skew check. Runs with no await in between, so two
   * concurrent requests with one nonce cannot both pass. Null when the nonce is new.
   */
  #claimNonce(relayId: string, claim: NonceClaim, now: number): RegistryAnswer | null {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM nonces WHERE relay_id = ? AND expires_at <= ?", relayId, now);
    if (
      sql.exec("SELECT 1 FROM nonces WHERE relay_id = ? AND nonce = ?", relayId, claim.nonce).toArray().length
    ) {
      return { ok: false, reason: "replayed" };
    }
    const held = sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM nonces WHERE relay_id = ?", relayId)
      .one().n;
    if (held >= MAX_NONCES_PER_RELAY) return { ok: false, reason: "nonce_budget" };
    const expiresAt = Math.max(claim.timestampMs, now) + RELAY_REQUEST_MAX_SKEW_MS + 1;
    sql.exec(
      "INSERT INTO nonces (relay_id, nonce, expires_at) VALUES (?, ?, ?)",
      relayId,
      claim.nonce,
      expiresAt,
    );
    return null;
  }
}
