import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type EdgeBindings, loadConfig } from "../../edge/env.ts";
import worker from "../../edge/index.ts";
import { KEY_ROTATION_AUDIT_PATH, SYSTEM_ACTOR } from "../../edge/scheduled.ts";
import { clearSigningKeyCache, verificationKey } from "../../edge/services/signing-keys.ts";
import { call, freshAddress } from "./helpers.ts";

// Issue 6: the Cron Trigger's handler, called as the platform calls it (the Worker's default export).

const DAY_MS = 86_400_000;
const edgeEnv = env as unknown as EdgeBindings;

async function runCron(bindings: EdgeBindings = edgeEnv, scheduledTime = Date.now()): Promise<void> {
  await worker.scheduled(createScheduledController({ scheduledTime, cron: "17 * * * *" }), bindings);
}

async function keys(): Promise<Record<string, string>> {
  const { results } = await env.DB.prepare(
    "SELECT kid, status FROM signing_keys WHERE status != 'retired'",
  ).all<{ kid: string; status: string }>();
  return Object.fromEntries(results.map((k) => [k.status, k.kid]));
}

async function ageCurrentKey(byMs: number): Promise<void> {
  await env.DB.prepare("UPDATE signing_keys SET activated_at = ? WHERE status = 'current'")
    .bind(Date.now() - byMs)
    .run();
}

async function cronAuditRows(): Promise<{ actor: string | null; status: number; detail: string | null }[]> {
  const { results } = await env.DB.prepare(
    "SELECT actor, status, detail FROM audit_log WHERE path = ? ORDER BY seq",
  )
    .bind(KEY_ROTATION_AUDIT_PATH)
    .all<{ actor: string | null; status: number; detail: string | null }>();
  return results;
}

function kidOf(jwt: string): string {
  const header = JSON.parse(atob((jwt.split(".")[0] ?? "").replace(/-/g, "+").replace(/_/g, "/"))) as {
    kid: string;
  };
  return header.kid;
}

async function accessToken(): Promise<string> {
  const email = `${crypto.randomUUID()}@example.com`;
  const address = freshAddress();
  const password = "correct horse battery staple";
  expect((await call("/v1/auth/register", { body: { email, password }, address })).status).toBe(201);
  const login = await call<{ accessToken: string }>("/v1/auth/login", { body: { email, password }, address });
  expect(login.status).toBe(200);
  return login.json.accessToken;
}

describe("scheduled token-signing key rotation", () => {
  it("does nothing before the period; rotates after it without breaking tokens; audits the rotation", async () => {
    const token = await accessToken();
    const before = await keys();
    expect(kidOf(token)).toBe(before.current);

    await runCron();
    expect(await keys()).toEqual(before);
    expect(await cronAuditRows()).toEqual([]);

    // Default period: 30 days. A key one day short of it stays; one past it rotates.
    await ageCurrentKey(29 * DAY_MS);
    await runCron();
    expect(await keys()).toEqual(before);
    await ageCurrentKey(30 * DAY_MS + 1000);
    await runCron();
    const after = await keys();
    expect(after.current).toBe(before.next);
    expect(after.previous).toBe(before.current);
    expect(after.next).not.toBe(before.next);

    const rows = await cronAuditRows();
    expect(rows.length).toBe(1);
    expect(rows[0]?.actor).toBe(SYSTEM_ACTOR);
    expect(rows[0]?.status).toBe(200);
    expect(JSON.parse(rows[0]?.detail ?? "{}")).toMatchObject({
      current: before.next,
      previous: before.current,
      periodSecs: 30 * 86_400,
    });

    // The token signed before the rotation still verifies, through the API and from the database's view.
    clearSigningKeyCache();
    expect((await call("/v1/devices", { token, address: freshAddress() })).status).toBe(200);
    expect(await verificationKey(env.DB, kidOf(token), Date.now())).not.toBeNull();
    // The fresh current key is not due: a second run right after changes nothing.
    await runCron();
    expect(await keys()).toEqual(after);
    expect((await cronAuditRows()).length).toBe(1);
    // ...until the grace period (access-token lifetime + skew) is over: then the old key verifies nothing.
    const retire = await env.DB.prepare("SELECT retire_at FROM signing_keys WHERE kid = ?")
      .bind(before.current)
      .first<{ retire_at: number }>();
    const ttl = loadConfig(edgeEnv);
    if (!ttl.ok) throw new Error("test config invalid");
    expect((retire?.retire_at ?? 0) - Date.now()).toBeGreaterThan(ttl.config.accessTokenTtlSecs * 1000);
    clearSigningKeyCache();
    expect(await verificationKey(env.DB, kidOf(token), (retire?.retire_at ?? 0) + 1)).toBeNull();
    clearSigningKeyCache();
  });

  it("0 turns it off in development; production refuses 0, and every mode refuses less than a day", async () => {
    await ageCurrentKey(400 * DAY_MS);
    const before = await keys();
    await runCron({ ...edgeEnv, WAVRY_KEY_ROTATION_PERIOD_SECS: "0" });
    expect(await keys()).toEqual(before);

    const problems = (vars: Record<string, string>) => {
      const r = loadConfig({ ...edgeEnv, ...vars });
      return r.ok ? [] : r.problems.filter((p) => p.startsWith("WAVRY_KEY_ROTATION_PERIOD_SECS"));
    };
    expect(problems({ WAVRY_KEY_ROTATION_PERIOD_SECS: "0" })).toEqual([]);
    expect(problems({ WAVRY_KEY_ROTATION_PERIOD_SECS: "3600" })).toHaveLength(1);
    expect(problems({ WAVRY_KEY_ROTATION_PERIOD_SECS: String(366 * 86_400) })).toHaveLength(1);
    expect(problems({ WAVRY_ENVIRONMENT: "production", WAVRY_KEY_ROTATION_PERIOD_SECS: "0" })).toEqual([
      "WAVRY_KEY_ROTATION_PERIOD_SECS: scheduled key rotation cannot be turned off in production",
    ]);
    const set = loadConfig({ ...edgeEnv, WAVRY_KEY_ROTATION_PERIOD_SECS: String(7 * 86_400) });
    expect(set.ok && set.config.keyRotationPeriodSecs).toBe(7 * 86_400);

    // With the default period the aged key rotates.
    await runCron();
    expect((await keys()).current).toBe(before.next);
  });

  it("an invalid configuration rotates nothing (and does not throw)", async () => {
    await ageCurrentKey(400 * DAY_MS);
    const before = await keys();
    await runCron({ ...edgeEnv, WAVRY_KEY_ROTATION_PERIOD_SECS: "soon" });
    expect(await keys()).toEqual(before);
  });
});
