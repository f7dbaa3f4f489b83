/**
 * A signaling room's own state, in the room's SQLite-backed Durable Object storage (not D1: it is per device,
 * short-lived, and written on every session step). Tables:
 *
 * - `sessions`: this device's side of each open session (the other side keeps the mirror record in its own room),
 *   with the peer's id and public keys as D1 had them when the session was created.
 * - `tickets`: SHA-256 of each outstanding browser ticket; a row is deleted when redeemed, so a ticket works once.
 * - `counters`: monotonically increasing counters per named reason (refused messages, closes, reports).
 * - `reports`: the last {@link MAX_REPORTS} session outcome reports.
 * - `address_slots`: only in rooms named for a client address: the sockets that address holds open.
 */

/** Reports kept per room (older ones are dropped; the counters keep the totals). */
export const MAX_REPORTS = 50;
/** Outstanding tickets per device. */
export const MAX_TICKETS = 8;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  state TEXT NOT NULL,
  peer_id TEXT NOT NULL,
  peer_x25519 TEXT NOT NULL,
  peer_ed25519 TEXT NOT NULL,
  self_ed25519 TEXT NOT NULL,
  request_ref TEXT,
  want_relay INTEGER NOT NULL,
  region TEXT,
  relay_requests INTEGER NOT NULL DEFAULT 0,
  candidate_updates INTEGER NOT NULL DEFAULT 0,
  reported INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (hash TEXT PRIMARY KEY, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  session_id TEXT NOT NULL,
  role TEXT NOT NULL,
  result TEXT NOT NULL,
  detail TEXT NOT NULL,
  handshake_ms INTEGER
);
CREATE TABLE IF NOT EXISTS address_slots (socket_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, created_at INTEGER NOT NULL);
`;

/** This device's role in a session. */
export type SessionRole = "host" | "client";
/** `requested`: the client waits for the host; `offered`: the host was told; `accepted`: both sides know each other. */
export type SessionState = "requested" | "offered" | "accepted";

/** One side of a session. */
export interface SessionRecord {
  readonly sessionId: string;
  readonly role: SessionRole;
  readonly state: SessionState;
  readonly peerId: string;
  readonly peerX25519: string;
  readonly peerEd25519: string;
  readonly selfEd25519: string;
  /** The client's correlation id of the request, echoed on the answers (client side only). */
  readonly requestRef: string | null;
  readonly wantRelay: boolean;
  readonly region: string | null;
  readonly relayRequests: number;
  readonly candidateUpdates: number;
  readonly reported: boolean;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** An outcome report as stored. */
export interface StoredReport {
  readonly at: number;
  readonly sessionId: string;
  readonly role: string;
  readonly result: string;
  /** The path of an established session, or the failure reason. */
  readonly detail: string;
  readonly handshakeMs: number | null;
}

type Row = Record<string, SqlStorageValue>;

const str = (value: SqlStorageValue | undefined): string => (typeof value === "string" ? value : "");
const num = (value: SqlStorageValue | undefined): number => (typeof value === "number" ? value : 0);

function toSession(row: Row): SessionRecord | null {
  const role = row.role;
  const state = row.state;
  if (role !== "host" && role !== "client") return null;
  if (state !== "requested" && state !== "offered" && state !== "accepted") return null;
  return {
    sessionId: str(row.session_id),
    role,
    state,
    peerId: str(row.peer_id),
    peerX25519: str(row.peer_x25519),
    peerEd25519: str(row.peer_ed25519),
    selfEd25519: str(row.self_ed25519),
    requestRef: typeof row.request_ref === "string" ? row.request_ref : null,
    wantRelay: row.want_relay === 1,
    region: typeof row.region === "string" ? row.region : null,
    relayRequests: num(row.relay_requests),
    candidateUpdates: num(row.candidate_updates),
    reported: row.reported === 1,
    createdAt: num(row.created_at),
    expiresAt: num(row.expires_at),
  };
}

/** Typed access to a room's tables. Every method is synchronous (SQLite in the object's own storage). */
export class RoomStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    this.#sql.exec(SCHEMA);
  }

  // -- sessions --

  /** Open sessions (of any state). */
  openSessions(): number {
    return num(this.#sql.exec("SELECT COUNT(*) AS n FROM sessions").one().n);
  }

  /** One session of this device, or null. */
  session(sessionId: string): SessionRecord | null {
    const row = this.#sql.exec("SELECT * FROM sessions WHERE session_id = ?", sessionId).toArray()[0];
    return row === undefined ? null : toSession(row);
  }

  /** Every session of this device. */
  sessions(): SessionRecord[] {
    return this.#sql
      .exec("SELECT * FROM sessions")
      .toArray()
      .map(toSession)
      .filter((s): s is SessionRecord => s !== null);
  }

  /** Records this device's side of a new session. */
  putSession(record: SessionRecord): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO sessions (session_id, role, state, peer_id, peer_x25519, peer_ed25519, self_ed25519,
         request_ref, want_relay, region, relay_requests, candidate_updates, reported, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      record.sessionId,
      record.role,
      record.state,
      record.peerId,
      record.peerX25519,
      record.peerEd25519,
      record.selfEd25519,
      record.requestRef,
      record.wantRelay ? 1 : 0,
      record.region,
      record.relayRequests,
      record.candidateUpdates,
      record.reported ? 1 : 0,
      record.createdAt,
      record.expiresAt,
    );
  }

  /** Moves a session to `accepted` with a new expiry; false when it was not in `from`. */
  acceptSession(sessionId: string, from: SessionState, expiresAt: number): boolean {
    return (
      this.#sql.exec(
        "UPDATE sessions SET state = 'accepted', expires_at = ? WHERE session_id = ? AND state = ?",
        expiresAt,
        sessionId,
        from,
      ).rowsWritten > 0
    );
  }

  /** Adds one to a per-session counter if it is below `max`; false when the budget is spent. */
  bumpSession(sessionId: string, column: "relay_requests" | "candidate_updates", max: number): boolean {
    // The column name comes from the closed union above, never from input.
    return (
      this.#sql.exec(
        `UPDATE sessions SET ${column} = ${column} + 1 WHERE session_id = ? AND ${column} < ?`,
        sessionId,
        max,
      ).rowsWritten > 0
    );
  }

  /** Marks the session reported; false when it already was. */
  markReported(sessionId: string): boolean {
    return (
      this.#sql.exec("UPDATE sessions SET reported = 1 WHERE session_id = ? AND reported = 0", sessionId)
        .rowsWritten > 0
    );
  }

  /** Forgets a session; false when there was none. */
  deleteSession(sessionId: string): boolean {
    return this.#sql.exec("DELETE FROM sessions WHERE session_id = ?", sessionId).rowsWritten > 0;
  }

  /** Removes and returns the sessions that expired by `now`. */
  takeExpiredSessions(now: number): SessionRecord[] {
    const expired = this.#sql
      .exec("SELECT * FROM sessions WHERE expires_at <= ?", now)
      .toArray()
      .map(toSession)
      .filter((s): s is SessionRecord => s !== null);
    this.#sql.exec("DELETE FROM sessions WHERE expires_at <= ?", now);
    return expired;
  }

  // -- tickets --

  /** Stores a ticket hash; false when the device already holds {@link MAX_TICKETS} unexpired tickets. */
  putTicket(hash: string, now: number, expiresAt: number): boolean {
    this.#sql.exec("DELETE FROM tickets WHERE expires_at <= ?", now);
    const open = num(this.#sql.exec("SELECT COUNT(*) AS n FROM tickets").one().n);
    if (open >= MAX_TICKETS) return false;
    this.#sql.exec(
      "INSERT OR REPLACE INTO tickets (hash, issued_at, expires_at) VALUES (?, ?, ?)",
      hash,
      now,
      expiresAt,
    );
    return true;
  }

  /** Deletes a ticket and returns when it was issued if it was still valid at `now`; otherwise null. */
  takeTicket(hash: string, now: number): number | null {
    const row = this.#sql
      .exec("DELETE FROM tickets WHERE hash = ? RETURNING issued_at, expires_at", hash)
      .toArray()[0];
    if (row === undefined || num(row.expires_at) <= now) return null;
    return num(row.issued_at);
  }

  /** Forgets every ticket (revocation). */
  clearTickets(): void {
    this.#sql.exec("DELETE FROM tickets");
  }

  // -- timers --

  /** The earliest session or ticket expiry, or null. */
  nextExpiry(): number | null {
    const row = this.#sql
      .exec(
        `SELECT MIN(t) AS t FROM (SELECT MIN(expires_at) AS t FROM sessions UNION ALL SELECT MIN(expires_at) FROM tickets)`,
      )
      .one();
    return typeof row.t === "number" ? row.t : null;
  }

  /** Drops expired tickets. */
  pruneTickets(now: number): void {
    this.#sql.exec("DELETE FROM tickets WHERE expires_at <= ?", now);
  }

  // -- counters and reports --

  /** Adds `by` to the counter `name`. */
  count(name: string, by = 1): void {
    this.#sql.exec(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
      name,
      by,
    );
  }

  /** Every counter. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.#sql.exec("SELECT name, value FROM counters ORDER BY name")) {
      out[str(row.name)] = num(row.value);
    }
    return out;
  }

  /** Stores a report, keeping the last {@link MAX_REPORTS}. */
  addReport(report: StoredReport): void {
    this.#sql.exec(
      "INSERT INTO reports (at, session_id, role, result, detail, handshake_ms) VALUES (?, ?, ?, ?, ?, ?)",
      report.at,
      report.sessionId,
      report.role,
      report.result,
      report.detail,
      report.handshakeMs,
    );
    this.#sql.exec("DELETE FROM reports WHERE seq <= (SELECT MAX(seq) FROM reports) - ?", MAX_REPORTS);
  }

  /** The stored reports, newest first. */
  reports(): StoredReport[] {
    return this.#sql
      .exec("SELECT * FROM reports ORDER BY seq DESC")
      .toArray()
      .map((row) => ({
        at: num(row.at),
        sessionId: str(row.session_id),
        role: str(row.role),
        result: str(row.result),
        detail: str(row.detail),
        handshakeMs: typeof row.handshake_ms === "number" ? row.handshake_ms : null,
      }));
  }

  // -- address slots (rooms named for an address) --

  /** The socket ids an address holds, with their devices. */
  slots(): { socketId: string; deviceId: string; createdAt: number }[] {
    return this.#sql
      .exec("SELECT socket_id, device_id, created_at FROM address_slots")
      .toArray()
      .map((row) => ({
        socketId: str(row.socket_id),
        deviceId: str(row.device_id),
        createdAt: num(row.created_at),
      }));
  }

  /** Records a slot. */
  putSlot(socketId: string, deviceId: string, now: number): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO address_slots (socket_id, device_id, created_at) VALUES (?, ?, ?)",
      socketId,
      deviceId,
      now,
    );
  }

  /** Frees a slot. */
  deleteSlot(socketId: string): void {
    this.#sql.exec("DELETE FROM address_slots WHERE socket_id = ?", socketId);
  }
}
