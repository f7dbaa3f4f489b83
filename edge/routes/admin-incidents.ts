import type { Context } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { auditDetail } from "../middleware/admin-auth.ts";
import { readJson } from "../middleware/body.ts";
import { randomToken } from "../security/tokens-util.ts";
import type { adminRouter } from "./admin-route-table.ts";

/**
 * Incidents (issue 6; DESIGN.md: Monitoring and incident response): open one, append notes, link audit rows and
 * alerts, close it with a summary. Everything is bounded, and everything lands in the audit log like every admin
 * request. A closed incident is final (no reopening: follow-up work gets a new incident that names the old id);
 * migrations/0005 enforces that and the append-only timeline in the database too.
 */

/** Bounds: a timeline is read whole by `GET /incidents/:id`, so it stays small enough to return at once. */
export const INCIDENT_LIMITS = {
  titleChars: 200,
  textChars: 4000,
  /** Notes and links together. */
  entriesPerIncident: 500,
  linksPerIncident: 200,
  openIncidents: 100,
} as const;

export const INCIDENT_SEVERITIES = ["critical", "high", "medium", "low"] as const;
/**
 * Alert ids come from the Monitor Durable Object (`alr_…`); only their shape is checked here, so an incident can
 * name an alert the Monitor has since pruned.
 */
export const ALERT_ID_PATTERN = /^alr_[A-Za-z0-9_-]{1,40}$/;
const INCIDENT_ID_PATTERN = /^inc_[A-Za-z0-9_-]{1,40}$/;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const text = (max: number) => z.string().trim().min(1).max(max);
const openBody = z.strictObject({
  title: text(INCIDENT_LIMITS.titleChars),
  severity: z.enum(INCIDENT_SEVERITIES),
  description: text(INCIDENT_LIMITS.textChars),
});
const noteBody = z.strictObject({ text: text(INCIDENT_LIMITS.textChars) });
const linkBody = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("audit"), seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
  z.strictObject({ type: z.literal("alert"), id: z.string().regex(ALERT_ID_PATTERN) }),
]);
const closeBody = z.strictObject({
  summary: text(INCIDENT_LIMITS.textChars),
  blastRadius: text(INCIDENT_LIMITS.textChars),
  preventiveControls: text(INCIDENT_LIMITS.textChars),
});

interface IncidentRow {
  id: string;
  title: string;
  severity: string;
  description: string;
  status: "open" | "closed";
  opened_by: string;
  opened_at: number;
  closed_by: string | null;
  closed_at: number | null;
  summary: string | null;
  blast_radius: string | null;
  preventive_controls: string | null;
}

const INCIDENT_COLUMNS =
  "id, title, severity, description, status, opened_by, opened_at, closed_by, closed_at, summary, blast_radius, preventive_controls";

function view(row: IncidentRow) {
  return {
    id: row.id,
    title: row.title,
    severity: row.severity,
    description: row.description,
    status: row.status,
    openedBy: row.opened_by,
    openedAt: row.opened_at,
    closedBy: row.closed_by,
    closedAt: row.closed_at,
    summary: row.summary,
    blastRadius: row.blast_radius,
    preventiveControls: row.preventive_controls,
  };
}

function incidentIdParam(value: string | undefined): string {
  if (value === undefined || !INCIDENT_ID_PATTERN.test(value))
    throw new ApiError(404, "not_found", "no such incident");
  return value;
}

async function openIncident(c: Context<AppEnv>, id: string): Promise<IncidentRow> {
  const row = await c.env.DB.prepare(`SELECT ${INCIDENT_COLUMNS} FROM incidents WHERE id = ?`)
    .bind(id)
    .first<IncidentRow>();
  if (row === null) throw new ApiError(404, "not_found", "no such incident");
  if (row.status !== "open")
    throw new ApiError(409, "conflict", "the incident is closed; open a new one that names it");
  return row;
}

/**
 * Appends one timeline entry. The count bounds are part of the INSERT itself, so two racing requests cannot both
 * take the last slot; a close racing with the append is refused by the database trigger.
 */
async function append(
  c: Context<AppEnv>,
  incidentId: string,
  kind: "note" | "audit" | "alert",
  body: string,
): Promise<number> {
  const linkCap = kind === "note" ? Number.MAX_SAFE_INTEGER : INCIDENT_LIMITS.linksPerIncident;
  let row: { id: number } | null;
  try {
    row = await c.env.DB.prepare(
      `INSERT INTO incident_entries (incident_id, kind, body, created_by, created_at)
       SELECT ?1, ?2, ?3, ?4, ?5
        WHERE (SELECT COUNT(*) FROM incident_entries WHERE incident_id = ?1) < ?6
          AND (SELECT COUNT(*) FROM incident_entries WHERE incident_id = ?1 AND kind != 'note') < ?7
       RETURNING id`,
    )
      .bind(
        incidentId,
        kind,
        body,
        c.get("admin").tokenId,
        Date.now(),
        INCIDENT_LIMITS.entriesPerIncident,
        linkCap,
      )
      .first<{ id: number }>();
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    if (message.includes("UNIQUE")) throw new ApiError(409, "conflict", `that ${kind} is already linked`);
    if (message.includes("incident is closed")) throw new ApiError(409, "conflict", "the incident is closed");
    throw error;
  }
  if (row === null) {
    throw new ApiError(
      409,
      "conflict",
      kind === "note"
        ? `the timeline is full (${INCIDENT_LIMITS.entriesPerIncident} entries)`
        : `the incident has the most links allowed (${INCIDENT_LIMITS.linksPerIncident}) or a full timeline`,
    );
  }
  return row.id;
}

/** Incident routes, declared through the admin route table (so the tests and the preflight see them). */
export function incidentAdminRoutes(route: ReturnType<typeof adminRouter>): void {
  route("POST", "/incidents", "audit", "open an incident { title, severity, description }", async (c) => {
    const body = await readJson(c, openBody);
    const id = `inc_${randomToken(random, 16)}`;
    const created = await c.env.DB.prepare(
      `INSERT INTO incidents (id, title, severity, description, status, opened_by, opened_at)
       SELECT ?, ?, ?, ?, 'open', ?, ? WHERE (SELECT COUNT(*) FROM incidents WHERE status = 'open') < ?
       RETURNING opened_at`,
    )
      .bind(
        id,
        body.title,
        body.severity,
        body.description,
        c.get("admin").tokenId,
        Date.now(),
        INCIDENT_LIMITS.openIncidents,
      )
      .first<{ opened_at: number }>();
    if (created === null) {
      throw new ApiError(
        409,
        "conflict",
        `${INCIDENT_LIMITS.openIncidents} incidents are open; close some first`,
      );
    }
    auditDetail(c, { incident: id, severity: body.severity });
    return c.json({ id, status: "open", openedAt: created.opened_at }, 201);
  });

  route(
    "GET",
    "/incidents",
    "audit",
    "list incidents, newest first (?status=open|closed, ?before=openedAt, ?limit=)",
    async (c) => {
      const status = c.req.query("status");
      if (status !== undefined && status !== "open" && status !== "closed")
        throw new ApiError(400, "bad_request", "status must be open or closed");
      const before = Number(c.req.query("before"));
      const limit = Number(c.req.query("limit") ?? 50);
      const { results } = await c.env.DB.prepare(
        `SELECT ${INCIDENT_COLUMNS} FROM incidents WHERE (?1 IS NULL OR status = ?1) AND opened_at < ?2
          ORDER BY opened_at DESC, id DESC LIMIT ?3`,
      )
        .bind(
          status ?? null,
          Number.isSafeInteger(before) && before > 0 ? before : Number.MAX_SAFE_INTEGER,
          Number.isInteger(limit) && limit >= 1 && limit <= 100 ? limit : 50,
        )
        .all<IncidentRow>();
      return c.json({ incidents: results.map(view) });
    },
  );

  route("GET", "/incidents/:id", "audit", "one incident with its whole timeline and links", async (c) => {
    const id = incidentIdParam(c.req.param("id"));
    const row = await c.env.DB.prepare(`SELECT ${INCIDENT_COLUMNS} FROM incidents WHERE id = ?`)
      .bind(id)
      .first<IncidentRow>();
    if (row === null) throw new ApiError(404, "not_found", "no such incident");
    const [entries, audit] = await c.env.DB.batch([
      c.env.DB.prepare(
        "SELECT id, kind, body, created_by, created_at FROM incident_entries WHERE incident_id = ? ORDER BY id LIMIT ?",
      ).bind(id, INCIDENT_LIMITS.entriesPerIncident),
      c.env.DB.prepare(
        `SELECT seq, at, actor, method, path, status, outcome, reason, detail FROM audit_log
          WHERE seq IN (SELECT CAST(body AS INTEGER) FROM incident_entries WHERE incident_id = ? AND kind = 'audit')
          ORDER BY seq`,
      ).bind(id),
    ]);
    const timeline = (
      (entries?.results ?? []) as {
        id: number;
        kind: "note" | "audit" | "alert";
        body: string;
        created_by: string;
        created_at: number;
      }[]
    ).map((e) => ({
      id: e.id,
      kind: e.kind,
      body: e.body,
      createdBy: e.created_by,
      createdAt: e.created_at,
    }));
    return c.json({
      incident: view(row),
      timeline,
      links: {
        audit: audit?.results ?? [],
        alerts: timeline.filter((e) => e.kind === "alert").map((e) => e.body),
      },
    });
  });

  route(
    "POST",
    "/incidents/:id/entries",
    "audit",
    "append a note to an open incident's timeline",
    async (c) => {
      const id = incidentIdParam(c.req.param("id"));
      const body = await readJson(c, noteBody);
      await openIncident(c, id);
      const entryId = await append(c, id, "note", body.text);
      auditDetail(c, { incident: id, entry: entryId });
      return c.json({ incidentId: id, entryId }, 201);
    },
  );

  route(
    "POST",
    "/incidents/:id/links",
    "audit",
    'link an audit row { type: "audit", seq } or an alert { type: "alert", id } to an open incident',
    async (c) => {
      const id = incidentIdParam(c.req.param("id"));
      const body = await readJson(c, linkBody);
      await openIncident(c, id);
      if (body.type === "audit") {
        const found = await c.env.DB.prepare("SELECT 1 AS x FROM audit_log WHERE seq = ?")
          .bind(body.seq)
          .first();
        if (found === null) throw new ApiError(404, "not_found", "no such audit row");
      }
      const ref = body.type === "audit" ? String(body.seq) : body.id;
      const entryId = await append(c, id, body.type, ref);
      auditDetail(c, { incident: id, entry: entryId, [body.type]: ref });
      return c.json({ incidentId: id, entryId, type: body.type, ref }, 201);
    },
  );

  route(
    "POST",
    "/incidents/:id/close",
    "audit",
    "close an incident { summary, blastRadius, preventiveControls }; closed is final",
    async (c) => {
      const id = incidentIdParam(c.req.param("id"));
      const body = await readJson(c, closeBody);
      const closed = await c.env.DB.prepare(
        `UPDATE incidents SET status = 'closed', closed_by = ?, closed_at = ?, summary = ?, blast_radius = ?,
                preventive_controls = ?
          WHERE id = ? AND status = 'open' RETURNING closed_at`,
      )
        .bind(c.get("admin").tokenId, Date.now(), body.summary, body.blastRadius, body.preventiveControls, id)
        .first<{ closed_at: number }>();
      if (closed === null) {
        await openIncident(c, id); // throws 404 or 409, whichever it is
        throw new ApiError(409, "conflict", "the incident changed meanwhile; try again");
      }
      auditDetail(c, { incident: id, closed: true });
      return c.json({ id, status: "closed", closedAt: closed.closed_at });
    },
  );
}
