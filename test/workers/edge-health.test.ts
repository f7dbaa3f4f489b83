import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../protocol/wire/version.ts";
import { call, errorCode } from "./helpers.ts";

describe("edge basics in workerd", () => {
  it("answers /healthz with the protocol version and security headers", async () => {
    const response = await call("/healthz");
    expect(response.status).toBe(200);
    expect(response.json).toEqual({ ok: true, protocolVersion: PROTOCOL_VERSION });
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(response.headers.get("strict-transport-security")).toContain("max-age=");
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers unknown routes with the JSON error shape, no stack, and still sets security headers", async () => {
    const response = await call("/nope");
    expect(response.status).toBe(404);
    expect(response.json).toEqual({ error: { code: "not_found", message: "no such route" } });
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(errorCode(response)).toBe("not_found");
  });

  it("runs against a D1 with the real migrations applied, and the audit log is append-only", async () => {
    const { results } = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all<{
      name: string;
    }>();
    const names = results.map((r) => r.name);
    for (const table of [
      "users",
      "devices",
      "refresh_tokens",
      "admin_tokens",
      "audit_log",
      "signing_keys",
      "grants",
    ]) {
      expect(names).toContain(table);
    }
    await env.DB.prepare(
      "INSERT INTO audit_log (seq, at, request_id, method, path, status, outcome, prev_hash, hash) VALUES (999999, 0, 'r', 'GET', '/', 200, 'allowed', 'x', 'y')",
    ).run();
    await expect(
      env.DB.prepare("UPDATE audit_log SET status = 500 WHERE seq = 999999").run(),
    ).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare("DELETE FROM audit_log WHERE seq = 999999").run()).rejects.toThrow(
      /append-only/,
    );
  });
});
