import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { EdgeBindings } from "../../edge/env.ts";
import { ADMIN_ROUTES } from "../../edge/routes/admin.ts";
import { sha256Hex } from "../../edge/security/tokens-util.ts";
import { BOOTSTRAP, call, errorCode, freshAddress } from "./helpers.ts";

interface TokenAnswer {
  id: string;
  token: string;
  scopes: string[];
}

let root: TokenAnswer;

async function mint(scopes: string[], name = "t"): Promise<TokenAnswer> {
  const r = await call<TokenAnswer>("/v1/admin/tokens", {
    token: root.token,
    body: { name, scopes },
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  return r.json;
}

async function auditRows(): Promise<
  { path: string; status: number; outcome: string; actor: string | null; reason: string | null }[]
> {
  const { results } = await env.DB.prepare(
    "SELECT path, status, outcome, actor, reason FROM audit_log ORDER BY seq",
  ).all<{
    path: string;
    status: number;
    outcome: string;
    actor: string | null;
    reason: string | null;
  }>();
  return results;
}

beforeAll(async () => {
  // Refused: wrong secret. Then the one bootstrap.
  const wrong = await call("/v1/admin/bootstrap", {
    body: {},
    headers: { Authorization: "Bearer not-the-secret" },
  });
  expect(wrong.status).toBe(401);
  const r = await call<TokenAnswer>("/v1/admin/bootstrap", {
    body: { name: "root" },
    headers: { Authorization: `Bearer ${BOOTSTRAP}` },
  });
  expect(r.status).toBe(201);
  root = r.json;
});

describe("admin bootstrap and tokens", () => {
  it("the bootstrap secret creates the first token only, and opens no other route", async () => {
    expect(root.token.startsWith("wvadm_")).toBe(true);
    const again = await call("/v1/admin/bootstrap", {
      body: {},
      headers: { Authorization: `Bearer ${BOOTSTRAP}` },
    });
    expect(again.status).toBe(409);
    const misuse = await call("/v1/admin/users", { headers: { Authorization: `Bearer ${BOOTSTRAP}` } });
    expect(misuse.status).toBe(401);
  });

  it("tokens are stored hashed, least privilege is enforced, and a revoked token stops working", async () => {
    const reader = await mint(["read"]);
    const stored = await env.DB.prepare("SELECT token_hash FROM admin_tokens WHERE id = ?")
      .bind(reader.id)
      .first<{ token_hash: string }>();
    expect(stored?.token_hash).toBe(await sha256Hex(reader.token));
    expect(JSON.stringify(await env.DB.prepare("SELECT * FROM admin_tokens").all())).not.toContain(
      reader.token,
    );
    const escalate = await call("/v1/admin/tokens", {
      token: reader.token,
      body: { name: "x", scopes: ["read"] },
    });
    expect(escalate.status).toBe(403);
    const tokensAdmin = await mint(["tokens"]);
    const beyond = await call("/v1/admin/tokens", {
      token: tokensAdmin.token,
      body: { name: "x", scopes: ["keys"] },
    });
    expect(beyond.status).toBe(403);
    expect((await call("/v1/admin/users", { token: reader.token })).status).toBe(200);
    expect(
      (await call(`/v1/admin/tokens/${reader.id}`, { method: "DELETE", token: root.token })).status,
    ).toBe(204);
    expect((await call("/v1/admin/users", { token: reader.token })).status).toBe(401);
  });
});

describe("every admin route refuses bad credentials, and every request is audited", () => {
  const cases = ["no token", "wrong scope", "expired", "revoked"] as const;
  const creds: Record<(typeof cases)[number], () => Promise<string | undefined>> = {
    "no token": async () => undefined,
    "wrong scope": async () => "",
    expired: async () => {
      const token = `wvadm_expired${crypto.randomUUID()}`;
      await env.DB.prepare(
        "INSERT INTO admin_tokens (id, token_hash, name, scopes, created_by, created_at, expires_at) VALUES (?, ?, 'old', 'read users devices relays keys audit tokens', 'test', 0, 1)",
      )
        .bind(`adm_exp_${crypto.randomUUID().slice(0, 8)}`, await sha256Hex(token))
        .run();
      return token;
    },
    revoked: async () => {
      const t = await mint(["read", "users", "devices", "relays", "keys", "audit", "tokens"]);
      await call(`/v1/admin/tokens/${t.id}`, { method: "DELETE", token: root.token });
      return t.token;
    },
  };

  it("has a route table that names a scope for every route", () => {
    expect(ADMIN_ROUTES.length).toBeGreaterThan(15);
    for (const r of ADMIN_ROUTES)
      expect(["read", "users", "devices", "relays", "keys", "audit", "tokens", "bootstrap"]).toContain(
        r.scope,
      );
  });

  for (const route of ADMIN_ROUTES.filter((r) => r.scope !== "bootstrap")) {
    it.each(cases)(`${route.method} ${route.path}: %s is refused and audited`, async (kind) => {
      let token = await creds[kind]();
      if (kind === "wrong scope") token = (await mint([route.scope === "read" ? "audit" : "read"])).token;
      const path = `/v1/admin${route.path.replace(/:[a-z]+/gi, "x_test")}`;
      const before = (await auditRows()).length;
      const r = await call(path, {
        method: route.method,
        ...(token !== undefined && { token }),
        ...(route.method === "POST" || route.method === "PATCH" ? { body: {} } : {}),
        address: freshAddress(),
      });
      expect(r.status, JSON.stringify(r.json)).toBe(kind === "wrong scope" ? 403 : 401);
      expect(errorCode(r)).toBe(
        kind === "wrong scope"
          ? "insufficient_scope"
          : kind === "no token"
            ? "unauthorized"
            : "invalid_token",
      );
      const rows = await auditRows();
      const last = rows[rows.length - 1];
      expect(rows.length).toBe(before + 1);
      expect(last).toMatchObject({ path, status: r.status, outcome: "refused" });
      if (kind === "no token") expect(last?.actor).toBeNull();
      else expect(last?.actor).toMatch(/^adm_/);
    });
  }

  it("unknown admin paths and allowed reads are audited too", async () => {
    const before = (await auditRows()).length;
    expect((await call("/v1/admin/nope", { token: root.token })).status).toBe(404);
    expect((await call("/v1/admin/keys", { token: root.token })).status).toBe(200);
    const rows = (await auditRows()).slice(before);
    expect(rows.map((r) => [r.path, r.outcome])).toEqual([
      ["/v1/admin/nope", "refused"],
      ["/v1/admin/keys", "allowed"],
    ]);
  });
});

describe("address blocks", () => {
  it("a blocked CIDR is refused on every route; unblocking lets it back", async () => {
    const blocked = "192.0.2.77";
    expect((await call("/healthz", { address: blocked })).status).toBe(200);
    const add = await call<{ id: string; cidr: string }>("/v1/admin/address-blocks", {
      token: root.token,
      body: { cidr: "192.0.2.64/26", reason: "abuse" },
    });
    expect(add.status).toBe(201);
    expect(add.json.cidr).toBe("192.0.2.64/26");
    for (const path of ["/healthz", "/v1/auth/login", "/v1/admin/users"]) {
      const r = await call(path, { address: blocked, token: root.token });
      expect(r.status).toBe(403);
      expect(errorCode(r)).toBe("address_blocked");
    }
    expect((await call("/healthz", { address: "192.0.2.1" })).status).toBe(200);
    expect(
      (
        await call("/v1/admin/address-blocks", {
          token: root.token,
          body: { cidr: "192.0.2.64/26", reason: "again" },
        })
      ).status,
    ).toBe(409);
    expect(
      (
        await call("/v1/admin/address-blocks", {
          token: root.token,
          body: { cidr: "not-a-cidr", reason: "x" },
        })
      ).status,
    ).toBe(400);
    expect(
      (await call(`/v1/admin/address-blocks/${add.json.id}`, { method: "DELETE", token: root.token })).status,
    ).toBe(204);
    expect((await call("/healthz", { address: blocked })).status).toBe(200);
  });

  it("blocks IPv6 ranges too", async () => {
    const add = await call("/v1/admin/address-blocks", {
      token: root.token,
      body: { cidr: "2001:db8:bad::/48", reason: "abuse" },
    });
    expect(add.status).toBe(201);
    expect((await call("/healthz", { address: "2001:db8:bad:1::5" })).status).toBe(403);
    expect((await call("/healthz", { address: "2001:db8:600d::5" })).status).toBe(200);
  });
});

describe("key rotation through the admin API", () => {
  it("rotates next -> current and publishes the new next in the JWKS", async () => {
    const before = await call<{ keys: { kid: string }[] }>("/.well-known/jwks.json");
    expect(before.json.keys.length).toBeGreaterThanOrEqual(2);
    const r = await call<{ current: string; next: string; previous: string }>("/v1/admin/keys/rotate", {
      token: root.token,
      body: {},
    });
    expect(r.status).toBe(200);
    expect(r.json.current).toBe(before.json.keys[1]?.kid);
    const after = await call<{ keys: { kid: string }[] }>("/.well-known/jwks.json");
    expect(after.json.keys.map((k) => k.kid)).toEqual([r.json.current, r.json.next, r.json.previous]);
  });
});

describe("audit chain", () => {
  it("verifies intact, and tampering with one row breaks verification", async () => {
    const ok = await call<{ intact: boolean; rows: number }>("/v1/admin/audit/verify", { token: root.token });
    expect(ok.json.intact).toBe(true);
    expect(ok.json.rows).toBeGreaterThan(50);
    const page = await call<{ entries: { seq: number }[] }>("/v1/admin/audit?limit=5", { token: root.token });
    expect(page.json.entries.length).toBe(5);
    // An attacker with raw database access: drop the guard and edit one row.
    await env.DB.prepare("DROP TRIGGER audit_log_no_update").run();
    await env.DB.prepare("UPDATE audit_log SET status = 200, outcome = 'allowed' WHERE seq = 3").run();
    const bad = await call<{ intact: boolean; firstBadSeq: number }>("/v1/admin/audit/verify", {
      token: root.token,
    });
    expect(bad.json).toMatchObject({ intact: false, firstBadSeq: 3 });
  });
});

describe("incident actions take effect at once", () => {
  const PASSWORD = "correct horse battery staple";

  async function userSession() {
    const email = `${crypto.randomUUID()}@example.com`;
    const address = freshAddress();
    const reg = await call<{ userId: string }>("/v1/auth/register", {
      body: { email, password: PASSWORD },
      address,
    });
    expect(reg.status).toBe(201);
    const login = await call<{ accessToken: string; refreshToken: string }>("/v1/auth/login", {
      body: { email, password: PASSWORD },
      address,
    });
    expect(login.status).toBe(200);
    return { email, address, userId: reg.json.userId, ...login.json };
  }

  // Any route behind requireUser shows whether an access token is still accepted; logout with a body that
  // fails validation answers 400 when the token is accepted and 401 when it is not, and changes nothing.
  async function accepted(accessToken: string): Promise<boolean> {
    const r = await call("/v1/auth/logout", {
      token: accessToken,
      raw: "{not json",
      address: freshAddress(),
    });
    expect([400, 401]).toContain(r.status);
    return r.status === 400;
  }

  it("suspending a user revokes their tokens and refuses their logins; restoring lets them back", async () => {
    const s = await userSession();
    expect(await accepted(s.accessToken)).toBe(true);
    const r = await call(`/v1/admin/users/${s.userId}/suspend`, {
      token: root.token,
      body: { reason: "compromised" },
    });
    expect(r.status).toBe(204);
    expect(await accepted(s.accessToken)).toBe(false);
    expect(
      (await call("/v1/auth/refresh", { body: { refreshToken: s.refreshToken }, address: freshAddress() }))
        .status,
    ).toBe(401);
    const login = await call("/v1/auth/login", {
      body: { email: s.email, password: PASSWORD },
      address: freshAddress(),
    });
    expect(login.status).toBe(403);
    expect((await call(`/v1/admin/users/${s.userId}/restore`, { token: root.token, body: {} })).status).toBe(
      204,
    );
    expect(
      (
        await call("/v1/auth/login", {
          body: { email: s.email, password: PASSWORD },
          address: freshAddress(),
        })
      ).status,
    ).toBe(200);
    const found = await call<{ users: { id: string; status: string }[] }>(
      `/v1/admin/users?q=${encodeURIComponent(s.email.slice(0, 12))}`,
      {
        token: root.token,
      },
    );
    expect(found.json.users.map((u) => [u.id, u.status])).toEqual([[s.userId, "active"]]);
  });

  it("revoking all of a user's tokens, or one token family, ends those sessions", async () => {
    const s = await userSession();
    expect(
      (await call(`/v1/admin/users/${s.userId}/revoke-tokens`, { token: root.token, body: {} })).status,
    ).toBe(204);
    expect(await accepted(s.accessToken)).toBe(false);
    // A new login after the revocation works (tokens minted after it are valid).
    const again = await call<{ accessToken: string }>("/v1/auth/login", {
      body: { email: s.email, password: PASSWORD },
      address: freshAddress(),
    });
    expect(await accepted(again.json.accessToken)).toBe(true);
    const family = await env.DB.prepare(
      "SELECT id FROM refresh_families WHERE user_id = ? AND revoked_at IS NULL",
    )
      .bind(s.userId)
      .first<{ id: string }>();
    expect(
      (await call(`/v1/admin/token-families/${family?.id}/revoke`, { token: root.token, body: {} })).status,
    ).toBe(204);
    expect(await accepted(again.json.accessToken)).toBe(false);
    expect((await call("/v1/admin/token-families/nope/revoke", { token: root.token, body: {} })).status).toBe(
      404,
    );
  });

  it("revoking a device refuses its access token at once", async () => {
    const s = await userSession();
    const { loadConfig } = await import("../../edge/env.ts");
    const { issueToken, TokenKind } = await import("../../edge/services/tokens.ts");
    const deviceId = `d_${crypto.randomUUID().replaceAll("-", "").slice(0, 26)}`;
    await env.DB.prepare(
      "INSERT INTO devices (id, user_id, name, x25519_public_key, ed25519_public_key, created_at) VALUES (?, ?, 'box', ?, ?, ?)",
    )
      .bind(deviceId, s.userId, crypto.randomUUID(), crypto.randomUUID(), Date.now())
      .run();
    const result = loadConfig(env as unknown as EdgeBindings);
    if (!result.ok) throw new Error("config");
    const { token } = await issueToken(
      env.DB,
      result.config,
      TokenKind.deviceAccess,
      deviceId,
      [],
      { uid: s.userId },
      Date.now(),
    );
    expect((await call("/v1/devices/me", { token, address: freshAddress() })).status).toBe(200);
    const listed = await call<{ devices: { id: string }[] }>(`/v1/admin/devices?userId=${s.userId}`, {
      token: root.token,
    });
    expect(listed.json.devices.map((d) => d.id)).toEqual([deviceId]);
    expect((await call(`/v1/admin/devices/${deviceId}/revoke`, { token: root.token, body: {} })).status).toBe(
      204,
    );
    expect((await call("/v1/devices/me", { token, address: freshAddress() })).status).toBe(401);
    expect((await call(`/v1/admin/devices/${deviceId}/revoke`, { token: root.token, body: {} })).status).toBe(
      404,
    );
  });
});
