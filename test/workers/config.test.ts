import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../edge/app.ts";
import { type EdgeBindings, loadConfig } from "../../edge/env.ts";

// A production configuration that passes every check; each test breaks one thing.
const GOOD_PRODUCTION: Record<string, string> = {
  WAVRY_ENVIRONMENT: "production",
  WAVRY_ISSUER: "https://edge.example.com",
  WAVRY_ADMIN_BOOTSTRAP_TOKEN: "Zq3v8Lw2Rk9Yp4Tn7Hc1Xm6Bd5Gs0Jf-",
  WAVRY_TOTP_ENCRYPTION_KEYS: "t1:3q2-7wAAAAAAAAAAAAAAAKq7zN3u_wAREiIzRFVmd4g",
  WAVRY_SIGNING_KEY_WRAP_KEYS: "w1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
  WAVRY_LOG_HASH_KEY: "log-hash-key-Qm8Zr2Vw6Yt0Pk4Ls9Jh3",
};

function bindings(vars: Record<string, string | undefined>): EdgeBindings {
  const base: Record<string, unknown> = {
    DB: env.DB,
    RATE_LIMITER: env.RATE_LIMITER,
    AUDIT_LOG: env.AUDIT_LOG,
  };
  for (const [name, value] of Object.entries(vars)) if (value !== undefined) base[name] = value;
  return base as unknown as EdgeBindings;
}

function problems(vars: Record<string, string | undefined>): string {
  const result = loadConfig(bindings(vars));
  return result.ok ? "" : result.problems.join("; ");
}

async function fetchWith(vars: Record<string, string | undefined>, path = "/healthz") {
  const response = await createApp().fetch(
    new Request(`https://edge.test${path}`, { headers: { "CF-Connecting-IP": "203.0.113.5" } }),
    bindings(vars),
    createExecutionContext(),
  );
  return {
    status: response.status,
    body: (await response.json()) as { error?: { code: string; message: string } },
  };
}

describe("configuration", () => {
  it("accepts a complete production configuration", async () => {
    expect(problems(GOOD_PRODUCTION)).toBe("");
    expect((await fetchWith(GOOD_PRODUCTION)).status).toBe(200);
  });

  it("defaults to production: with no variables at all, every request fails closed naming each missing secret", async () => {
    const response = await fetchWith({});
    expect(response.status).toBe(503);
    expect(response.body.error?.code).toBe("configuration_error");
    for (const name of [
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN",
      "WAVRY_TOTP_ENCRYPTION_KEYS",
      "WAVRY_SIGNING_KEY_WRAP_KEYS",
      "WAVRY_LOG_HASH_KEY",
      "WAVRY_ISSUER",
    ]) {
      expect(response.body.error?.message).toContain(name);
    }
    // Fails closed for every route, not only health.
    expect((await fetchWith({}, "/v1/auth/login")).status).toBe(503);
    expect((await fetchWith({}, "/.well-known/jwks.json")).status).toBe(503);
  });

  const broken: [string, Record<string, string | undefined>, string][] = [
    ["missing bootstrap secret", { WAVRY_ADMIN_BOOTSTRAP_TOKEN: undefined }, "WAVRY_ADMIN_BOOTSTRAP_TOKEN"],
    [
      "weak bootstrap secret",
      { WAVRY_ADMIN_BOOTSTRAP_TOKEN: "short" },
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN: too weak",
    ],
    [
      "repeated-character secret",
      { WAVRY_ADMIN_BOOTSTRAP_TOKEN: "a".repeat(40) },
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN: too weak",
    ],
    [
      "development TOTP key",
      { WAVRY_TOTP_ENCRYPTION_KEYS: undefined, WAVRY_ENVIRONMENT: "production" },
      "WAVRY_TOTP_ENCRYPTION_KEYS",
    ],
    ["malformed key ring", { WAVRY_SIGNING_KEY_WRAP_KEYS: "w1:tooshort" }, "WAVRY_SIGNING_KEY_WRAP_KEYS"],
    [
      "dev-marked ring in production",
      { WAVRY_TOTP_ENCRYPTION_KEYS: "dev-1:3q2-7wAAAAAAAAAAAAAAAKq7zN3u_wAREiIzRFVmd4g" },
      "development keys",
    ],
    ["http issuer", { WAVRY_ISSUER: "http://edge.example.com" }, "WAVRY_ISSUER: must be an https URL"],
    [
      "rate limit disabled",
      { WAVRY_GLOBAL_RATE_LIMIT: "0" },
      "WAVRY_GLOBAL_RATE_LIMIT: rate limiting cannot be disabled",
    ],
    ["auth limit disabled", { WAVRY_AUTH_RATE_LIMIT: "0" }, "WAVRY_AUTH_RATE_LIMIT"],
    ["wildcard origin", { WAVRY_ALLOWED_ORIGINS: "*" }, "wildcard origin"],
    ["http origin", { WAVRY_ALLOWED_ORIGINS: "http://app.example.com" }, "plain http origins"],
    ["not a number", { WAVRY_GLOBAL_RATE_LIMIT: "lots" }, "WAVRY_GLOBAL_RATE_LIMIT"],
    ["bad flag", { WAVRY_TRUST_PROXY_HEADERS: "yes" }, "WAVRY_TRUST_PROXY_HEADERS"],
    ["unknown environment", { WAVRY_ENVIRONMENT: "staging" }, "WAVRY_ENVIRONMENT"],
  ];
  it.each(broken)(
    "%s: every request fails closed with a configuration error naming the setting",
    async (_name, change, expected) => {
      const vars = { ...GOOD_PRODUCTION, ...change };
      expect(problems(vars)).toContain(expected);
      const response = await fetchWith(vars);
      expect(response.status).toBe(503);
      expect(response.body.error?.code).toBe("configuration_error");
      expect(response.body.error?.message).toContain(expected.split(":")[0]);
      // The message never echoes a secret value.
      for (const value of Object.values(vars))
        if (value !== undefined && value.length > 20)
          expect(response.body.error?.message).not.toContain(value);
    },
  );

  it("development runs with no secrets at all (safe defaults for local runs only)", () => {
    expect(problems({ WAVRY_ENVIRONMENT: "development" })).toBe("");
  });
});

describe("CORS", () => {
  it("answers only the allowed origins", async () => {
    const vars = { ...GOOD_PRODUCTION, WAVRY_ALLOWED_ORIGINS: "https://app.example.com" };
    const preflight = async (origin: string) =>
      createApp().fetch(
        new Request("https://edge.test/v1/auth/login", {
          method: "OPTIONS",
          headers: {
            Origin: origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "CF-Connecting-IP": "203.0.113.6",
          },
        }),
        bindings(vars),
        createExecutionContext(),
      );
    const allowed = await preflight("https://app.example.com");
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const refused = await preflight("https://evil.example.com");
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
  });
});
