import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../protocol/wire/version.ts";

describe("edge skeleton in workerd", () => {
  it("answers /healthz with the protocol version", async () => {
    const response = await exports.default.fetch("https://edge.test/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true, protocolVersion: PROTOCOL_VERSION });
  });

  it("answers unknown routes with the JSON error shape, no stack", async () => {
    const response = await exports.default.fetch("https://edge.test/nope");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: "not_found", message: "no such route" } });
  });

  it("runs against a D1 with the real migrations applied", async () => {
    const row = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_meta'",
    ).first();
    expect(row).toEqual({ name: "schema_meta" });
  });
});
