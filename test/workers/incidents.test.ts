import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { INCIDENT_LIMITS } from "../../edge/routes/admin-incidents.ts";
import { BOOTSTRAP, call, errorCode, freshAddress } from "./helpers.ts";

// Issue 6: incidents through the real Worker entry, real D1 (migration 0005 with its triggers) and the audit log.

let admin: string;

async function lastAudit(): Promise<{ seq: number; path: string; status: number; detail: string | null }> {
  const row = await env.DB.prepare(
    "SELECT seq, path, status, detail FROM audit_log ORDER BY seq DESC LIMIT 1",
  ).first<{ seq: number; path: string; status: number; detail: string | null }>();
  if (row === null) throw new Error("the audit log is empty");
  return row;
}

async function open(title = "leaked token"): Promise<string> {
  const r = await call<{ id: string; status: string }>("/v1/admin/incidents", {
    token: admin,
    body: { title, severity: "high", description: "a token was pasted in a public channel" },
    address: freshAddress(),
  });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  expect(r.json.status).toBe("open");
  return r.json.id;
}

beforeAll(async () => {
  const r = await call<{ token: string }>("/v1/admin/bootstrap", {
    body: { name: "root" },
    headers: { Authorization: `Bearer ${BOOTSTRAP}` },
  });
  expect(r.status).toBe(201);
  admin = r.json.token;
});

describe("incidents", () => {
  it("open → note → link an audit row and an alert → show → close; each step audited with its ids", async () => {
    const id = await open();
    expect(id).toMatch(/^inc_/);
    expect(JSON.parse((await lastAudit()).detail ?? "{}")).toMatchObject({ incident: id, severity: "high" });
    const openedSeq = (await lastAudit()).seq;

    const note = await call<{ entryId: number }>(`/v1/admin/incidents/${id}/entries`, {
      token: admin,
      body: { text: "revoked adm_x; rotating keys next" },
    });
    expect(note.status).toBe(201);
    expect(JSON.parse((await lastAudit()).detail ?? "{}")).toEqual({
      incident: id,
      entry: note.json.entryId,
    });

    const linkAudit = await call(`/v1/admin/incidents/${id}/links`, {
      token: admin,
      body: { type: "audit", seq: openedSeq },
    });
    expect(linkAudit.status, JSON.stringify(linkAudit.json)).toBe(201);
    const linkAlert = await call(`/v1/admin/incidents/${id}/links`, {
      token: admin,
      body: { type: "alert", id: "alr_auth-failure-spike-1" },
    });
    expect(linkAlert.status).toBe(201);
    expect(JSON.parse((await lastAudit()).detail ?? "{}")).toMatchObject({
      incident: id,
      alert: "alr_auth-failure-spike-1",
    });

    const show = await call<{
      incident: { status: string; title: string };
      timeline: { kind: string; body: string }[];
      links: { audit: { seq: number; path: string }[]; alerts: string[] };
    }>(`/v1/admin/incidents/${id}`, { token: admin });
    expect(show.status).toBe(200);
    expect(show.json.incident).toMatchObject({ status: "open", title: "leaked token" });
    expect(show.json.timeline.map((e) => [e.kind, e.body])).toEqual([
      ["note", "revoked adm_x; rotating keys next"],
      ["audit", String(openedSeq)],
      ["alert", "alr_auth-failure-spike-1"],
    ]);
    expect(show.json.links.audit).toMatchObject([{ seq: openedSeq, path: "/v1/admin/incidents" }]);
    expect(show.json.links.alerts).toEqual(["alr_auth-failure-spike-1"]);

    const close = await call<{ status: string; closedAt: number }>(`/v1/admin/incidents/${id}/close`, {
      token: admin,
      body: {
        summary: "token revoked within 10 minutes",
        blastRadius: "read-only token; no writes in the audit log",
        preventiveControls: "shorter admin token TTL; secret scanning",
      },
    });
    expect(close.status).toBe(200);
    expect(close.json.status).toBe("closed");
    expect(JSON.parse((await lastAudit()).detail ?? "{}")).toEqual({ incident: id, closed: true });

    const listed = await call<{ incidents: { id: string; status: string; blastRadius: string | null }[] }>(
      "/v1/admin/incidents?status=closed",
      { token: admin },
    );
    expect(listed.json.incidents.find((i) => i.id === id)).toMatchObject({
      status: "closed",
      blastRadius: "read-only token; no writes in the audit log",
    });
    const openOnly = await call<{ incidents: { id: string }[] }>("/v1/admin/incidents?status=open", {
      token: admin,
    });
    expect(openOnly.json.incidents.map((i) => i.id)).not.toContain(id);
  });

  it("a closed incident is final: no notes, links or second close (API and database agree)", async () => {
    const id = await open("closed one");
    const body = { summary: "s", blastRadius: "b", preventiveControls: "p" };
    expect((await call(`/v1/admin/incidents/${id}/close`, { token: admin, body })).status).toBe(200);
    for (const [path, payload] of [
      ["entries", { text: "late" }],
      ["links", { type: "alert", id: "alr_1" }],
      ["close", body],
    ] as const) {
      const r = await call(`/v1/admin/incidents/${id}/${path}`, { token: admin, body: payload });
      expect(r.status, path).toBe(409);
      expect(errorCode(r)).toBe("conflict");
      expect((await lastAudit()).status).toBe(409);
    }
    // A direct write is refused by the triggers too.
    await expect(
      env.DB.prepare(
        "INSERT INTO incident_entries (incident_id, kind, body, created_by, created_at) VALUES (?, 'note', 'x', 't', 0)",
      )
        .bind(id)
        .run(),
    ).rejects.toThrow(/incident is closed/);
    await expect(
      env.DB.prepare("UPDATE incidents SET summary = 'rewritten' WHERE id = ?").bind(id).run(),
    ).rejects.toThrow(/final/);
    await expect(env.DB.prepare("DELETE FROM incidents WHERE id = ?").bind(id).run()).rejects.toThrow(
      /never deleted/,
    );
  });

  it("the timeline is append-only in the database", async () => {
    const id = await open("append only");
    await call(`/v1/admin/incidents/${id}/entries`, { token: admin, body: { text: "first" } });
    await expect(
      env.DB.prepare("UPDATE incident_entries SET body = 'changed' WHERE incident_id = ?").bind(id).run(),
    ).rejects.toThrow(/append-only/);
    await expect(
      env.DB.prepare("DELETE FROM incident_entries WHERE incident_id = ?").bind(id).run(),
    ).rejects.toThrow(/append-only/);
  });

  it("refuses bad input: unknown ids, missing audit rows, bad alert ids, duplicate links, oversized text", async () => {
    const id = await open("validation");
    const cases: [string, unknown, number][] = [
      ["/v1/admin/incidents/inc_nope/entries", { text: "x" }, 404],
      ["/v1/admin/incidents/not-an-id/entries", { text: "x" }, 404],
      [`/v1/admin/incidents/${id}/links`, { type: "audit", seq: 999_999_999 }, 404],
      [`/v1/admin/incidents/${id}/links`, { type: "alert", id: "bad id!" }, 400],
      [`/v1/admin/incidents/${id}/links`, { type: "alert", id: "not_an_alert" }, 400],
      [`/v1/admin/incidents/${id}/links`, { type: "device", id: "d_1" }, 400],
      [`/v1/admin/incidents/${id}/entries`, { text: "x".repeat(INCIDENT_LIMITS.textChars + 1) }, 400],
      [`/v1/admin/incidents/${id}/entries`, { text: "   " }, 400],
      [`/v1/admin/incidents/${id}/close`, { summary: "s", blastRadius: "b" }, 400],
      ["/v1/admin/incidents", { title: "t", severity: "apocalyptic", description: "d" }, 400],
      ["/v1/admin/incidents", { title: "t".repeat(201), severity: "low", description: "d" }, 400],
    ];
    for (const [path, body, status] of cases) {
      const r = await call(path, { token: admin, body });
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(status);
    }
    expect((await call("/v1/admin/incidents/inc_nope", { token: admin })).status).toBe(404);
    expect((await call("/v1/admin/incidents?status=maybe", { token: admin })).status).toBe(400);
    const link = { type: "alert", id: "alr_dup" };
    expect((await call(`/v1/admin/incidents/${id}/links`, { token: admin, body: link })).status).toBe(201);
    const dup = await call(`/v1/admin/incidents/${id}/links`, { token: admin, body: link });
    expect(dup.status).toBe(409);
  });

  it("bounds links and entries per incident", async () => {
    const id = await open("bounds");
    const now = Date.now();
    // Fill directly (one batch) to just below the caps, then cross them through the API.
    const fill: D1PreparedStatement[] = [];
    for (let i = 0; i < INCIDENT_LIMITS.linksPerIncident - 1; i++) {
      fill.push(
        env.DB.prepare(
          "INSERT INTO incident_entries (incident_id, kind, body, created_by, created_at) VALUES (?, 'alert', ?, 't', ?)",
        ).bind(id, `alr_fill${i}`, now),
      );
    }
    await env.DB.batch(fill);
    const link = (n: string) =>
      call(`/v1/admin/incidents/${id}/links`, { token: admin, body: { type: "alert", id: n } });
    expect((await link("alr_last")).status).toBe(201);
    const over = await link("alr_over");
    expect(over.status).toBe(409);
    const notes: D1PreparedStatement[] = [];
    for (let i = INCIDENT_LIMITS.linksPerIncident; i < INCIDENT_LIMITS.entriesPerIncident; i++) {
      notes.push(
        env.DB.prepare(
          "INSERT INTO incident_entries (incident_id, kind, body, created_by, created_at) VALUES (?, 'note', 'n', 't', ?)",
        ).bind(id, now),
      );
    }
    await env.DB.batch(notes);
    const full = await call(`/v1/admin/incidents/${id}/entries`, {
      token: admin,
      body: { text: "one more" },
    });
    expect(full.status).toBe(409);
    const shown = await call<{ timeline: unknown[] }>(`/v1/admin/incidents/${id}`, { token: admin });
    expect(shown.json.timeline.length).toBe(INCIDENT_LIMITS.entriesPerIncident);
  });

  it("needs the audit scope", async () => {
    const reader = await call<{ token: string }>("/v1/admin/tokens", {
      token: admin,
      body: { name: "reader", scopes: ["read"] },
    });
    const r = await call("/v1/admin/incidents", { token: reader.json.token });
    expect(r.status).toBe(403);
  });
});
