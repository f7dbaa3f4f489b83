import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Hono } from "hono";
import { afterAll, describe, expect, it } from "vitest";
import { checkAdminRoutes } from "../../scripts/preflight/checks/admin-routes.ts";
import type { CommandRunner } from "../../scripts/preflight/checks/release-tests.ts";
import { loadEdgeModules } from "../../scripts/preflight/edge-modules.ts";
import type { Finding } from "../../scripts/preflight/findings.ts";
import { runPreflightWith } from "../../scripts/preflight.ts";

/**
 * Release preflight (issue 6): every check with a good and a bad configuration, built in temporary directories;
 * the admin-route check against the real app and against apps with a rogue route; `--with-tests` with a stubbed
 * runner; the script as a process for its exit codes; and the repository's own wrangler.toml.
 */

const ROOT = path.resolve(import.meta.dirname, "../..");
const SECRETS = [
  "WAVRY_ADMIN_BOOTSTRAP_TOKEN",
  "WAVRY_TOTP_ENCRYPTION_KEYS",
  "WAVRY_SIGNING_KEY_WRAP_KEYS",
  "WAVRY_LOG_HASH_KEY",
];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const masterKey = () => {
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("no public key");
  return jwk.x;
};
const MASTER = masterKey();
const PIN = randomBytes(32).toString("hex");

interface Setup {
  vars?: Record<string, string>;
  /** null: no [secrets] section. */
  required?: readonly string[] | null;
  relay?: Record<string, string | undefined>;
  endpoint?: Record<string, string | undefined>;
  extraToml?: string;
  relayText?: string;
}

const GOOD_VARS = {
  WAVRY_ENVIRONMENT: "production",
  WAVRY_ISSUER: "https://edge.example.com",
  WAVRY_RELAY_MASTER_PUBLIC_KEY: MASTER,
};
const GOOD_RELAY = {
  WAVRY_ENVIRONMENT: "production",
  WAVRY_EDGE_URL: "https://edge.example.com",
  WAVRY_RELAY_PUBLIC_ADDR: "relay-1.example.com:7400",
  WAVRY_RELAY_KEY_FILE: "/var/lib/wavry-relay/relay.key",
  WAVRY_RELAY_REGION: "eu-central",
  WAVRY_RELAY_MASTER_PUBLIC_KEY: MASTER,
};
const GOOD_ENDPOINT = {
  WAVRY_EDGE_URL: "https://edge.example.com",
  WAVRY_SIGNALING_TLS_PINS_SHA256: PIN,
};

const envText = (vars: Record<string, string | undefined>) =>
  `# deployed environment\n${Object.entries(vars)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;

/** A fake repository with a deployable configuration; returns the arguments that check it. */
function setup(options: Setup = {}): { dir: string; args: string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wavry-preflight-"));
  dirs.push(dir);
  const vars = { ...GOOD_VARS, ...options.vars };
  const required = options.required === undefined ? SECRETS : options.required;
  const toml = [
    'name = "wavry-edge"',
    'main = "edge/index.ts"',
    "[vars]",
    ...Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}`),
    ...(required === null ? [] : ["[secrets]", `required = ${JSON.stringify(required)}`]),
    options.extraToml ?? "",
  ].join("\n");
  writeFileSync(path.join(dir, "wrangler.toml"), toml);
  writeFileSync(
    path.join(dir, "relay.env"),
    options.relayText ?? envText({ ...GOOD_RELAY, ...options.relay }),
  );
  writeFileSync(path.join(dir, "endpoint.env"), envText({ ...GOOD_ENDPOINT, ...options.endpoint }));
  writeFileSync(
    path.join(dir, "secrets.json"),
    JSON.stringify(SECRETS.map((name) => ({ name, type: "secret_text" }))),
  );
  mkdirSync(path.join(dir, "src"));
  writeFileSync(path.join(dir, "src", "app.ts"), 'export const greeting = "hello";\n');
  const args = ["--env", "production", "--root", dir, "--relay-env", path.join(dir, "relay.env")];
  args.push(
    "--endpoint-env",
    path.join(dir, "endpoint.env"),
    "--secrets-from",
    path.join(dir, "secrets.json"),
  );
  return { dir, args };
}

const noRunner: CommandRunner = async () => {
  throw new Error("the suite must not run here");
};

async function run(args: string[], runner: CommandRunner = noRunner, stdin = "") {
  const out: string[] = [];
  let err = "";
  const code = await runPreflightWith(args, {
    out: (line) => out.push(line),
    err: (text) => {
      err += text;
    },
    cwd: ROOT,
    runner,
    readStdin: () => stdin,
  });
  const has = (status: string, check: string, text = "") =>
    out.some((l) => l.startsWith(`${status} ${check}:`) && l.includes(text));
  return { code, out, err, has };
}

const ALL_CHECKS = [
  "environment",
  "signaling-url",
  "insecure-signaling",
  "secrets-declared",
  "secrets-not-vars",
  "dev-defaults",
  "secrets-deployed",
  "edge-config",
  "rate-limits",
  "edge-master-key",
  "relay-config",
  "relay-environment",
  "relay-master-key",
  "relay-insecure",
  "relay-edge-url",
  "endpoint-config",
  "tls-pins",
  "committed-secrets",
  "admin-routes",
  "admin-scope",
  "admin-audit",
];

describe("preflight: a good configuration", () => {
  it("passes every check, prints one line each and a summary, exits 0", async () => {
    const { args } = setup();
    const r = await run(args);
    expect(r.out.filter((l) => !l.startsWith("PASS "))).toEqual([
      expect.stringMatching(
        /^preflight \(production\): \d+ passed, 0 failed, 0 warnings — ready to release$/,
      ),
    ]);
    for (const check of ALL_CHECKS) expect(r.has("PASS", check), check).toBe(true);
    expect(r.has("PASS", "signaling-url", "wss://edge.example.com/")).toBe(true);
    expect(r.has("PASS", "tls-pins", "1 pin(s) well formed")).toBe(true);
    expect(r.code).toBe(0);
  }, 30_000);

  it("reads the deployed secrets from stdin with --secrets-from -", async () => {
    const { args } = setup();
    const i = args.indexOf("--secrets-from");
    args.splice(i, 2, "--secrets-from", "-");
    const r = await run(
      args,
      noRunner,
      JSON.stringify(SECRETS.map((name) => ({ name, type: "secret_text" }))),
    );
    expect(r.has("PASS", "secrets-deployed")).toBe(true);
    expect(r.code).toBe(0);
  });
});

describe("preflight: edge configuration failures", () => {
  const cases: [string, Setup, string, string][] = [
    ["environment unset", { vars: { WAVRY_ENVIRONMENT: "" } }, "environment", 'is ""'],
    ["environment development", { vars: { WAVRY_ENVIRONMENT: "development" } }, "environment", "development"],
    [
      "plain http issuer",
      { vars: { WAVRY_ISSUER: "http://edge.example.com" } },
      "signaling-url",
      "not an https URL",
    ],
    ["no issuer", { vars: { WAVRY_ISSUER: "" } }, "signaling-url", "not set"],
    [
      "insecure signaling override in vars",
      { vars: { WAVRY_ALLOW_INSECURE_SIGNALING: "1" } },
      "insecure-signaling",
      "WAVRY_ALLOW_INSECURE_SIGNALING",
    ],
    ["no [secrets] section", { required: null }, "secrets-declared", "declares no [secrets] required"],
    ["a required secret undeclared", { required: SECRETS.slice(1) }, "secrets-declared", SECRETS[0] ?? ""],
    [
      "a secret as a plain var",
      { vars: { WAVRY_LOG_HASH_KEY: randomBytes(32).toString("base64url") } },
      "secrets-not-vars",
      "WAVRY_LOG_HASH_KEY",
    ],
    [
      "a secret-like name as a plain var",
      { vars: { WAVRY_ALERT_WEBHOOK_SECRET: "x" } },
      "secrets-not-vars",
      "WAVRY_ALERT_WEBHOOK_SECRET",
    ],
    [
      "a development default",
      { vars: { WAVRY_LOG_HASH_KEY: "development-only-log-hash-key-not-secret" } },
      "dev-defaults",
      "WAVRY_LOG_HASH_KEY",
    ],
    ["a wildcard CORS origin", { vars: { WAVRY_ALLOWED_ORIGINS: "*" } }, "edge-config", "wildcard"],
    ["a disabled rate limit", { vars: { WAVRY_AUTH_RATE_LIMIT: "0" } }, "rate-limits", "auth"],
    ["a bad rate limit", { vars: { WAVRY_GLOBAL_RATE_LIMIT: "many" } }, "rate-limits", "could not read"],
  ];
  for (const [name, options, check, text] of cases) {
    it(`${name}: FAIL ${check}, exit 1`, async () => {
      const r = await run(setup(options).args);
      expect(r.has("FAIL", check, text), r.out.join("\n")).toBe(true);
      expect(r.out.find((l) => l.startsWith(`FAIL ${check}:`))).toContain(" — fix: ");
      expect(r.code).toBe(1);
    });
  }

  it("secrets missing from the deployed list, or an unreadable list: FAIL secrets-deployed", async () => {
    const { dir, args } = setup();
    writeFileSync(
      path.join(dir, "secrets.json"),
      JSON.stringify([{ name: "WAVRY_LOG_HASH_KEY", type: "secret_text" }]),
    );
    const r = await run(args);
    expect(r.has("FAIL", "secrets-deployed", "WAVRY_ADMIN_BOOTSTRAP_TOKEN")).toBe(true);
    expect(r.out.join("\n")).toContain("fix: wrangler secret put WAVRY_ADMIN_BOOTSTRAP_TOKEN");
    writeFileSync(path.join(dir, "secrets.json"), "not json");
    expect((await run(args)).has("FAIL", "secrets-deployed", "not JSON")).toBe(true);
  });

  it("no --secrets-from, relay or endpoint files, or edge master key: warnings, still exit 0", async () => {
    const { dir } = setup({ vars: { WAVRY_RELAY_MASTER_PUBLIC_KEY: "" } });
    const r = await run(["--root", dir]);
    expect(r.has("WARN", "secrets-deployed")).toBe(true);
    expect(r.has("WARN", "relay-config", "no relay environment file")).toBe(true);
    expect(r.has("WARN", "endpoint-config", "no endpoint environment file")).toBe(true);
    expect(r.has("WARN", "edge-master-key")).toBe(true);
    expect(r.code).toBe(0);
  });

  it("--var sets a var as wrangler deploy --var would; --env development relaxes and says so", async () => {
    const { dir, args } = setup({ vars: { WAVRY_ISSUER: "", WAVRY_AUTH_RATE_LIMIT: "0" } });
    const fixed = await run([...args, "--var", "WAVRY_ISSUER=https://edge.example.com"]);
    expect(fixed.has("PASS", "signaling-url")).toBe(true);
    expect(fixed.has("FAIL", "rate-limits")).toBe(true);
    const dev = await run([
      "--env",
      "development",
      "--root",
      dir,
      "--var",
      "WAVRY_ISSUER=http://127.0.0.1:8787",
    ]);
    expect(dev.has("WARN", "environment", "checking for development")).toBe(true);
    expect(dev.has("WARN", "rate-limits", "(allowed in development)")).toBe(true);
    expect(dev.has("WARN", "signaling-url", "ws://127.0.0.1:8787/")).toBe(true);
    expect(dev.out.at(-1)).toMatch(/^preflight \(development\):/);
  });
});

describe("preflight: relay environment files", () => {
  const cases: [string, Setup, string, string][] = [
    ["insecure relay flag", { relay: { WAVRY_RELAY_INSECURE_DEV: "1" } }, "relay-insecure", "=1"],
    [
      "insecure flag in a development file",
      { relay: { WAVRY_ENVIRONMENT: "development", WAVRY_RELAY_INSECURE_DEV: "1" } },
      "relay-insecure",
      "leases not verified",
    ],
    ["development environment", { relay: { WAVRY_ENVIRONMENT: "development" } }, "relay-environment", ""],
    ["http edge URL", { relay: { WAVRY_EDGE_URL: "http://edge.example.com" } }, "relay-edge-url", "http"],
    ["no master key", { relay: { WAVRY_RELAY_MASTER_PUBLIC_KEY: undefined } }, "relay-master-key", "not set"],
    [
      "malformed master key",
      { relay: { WAVRY_RELAY_MASTER_PUBLIC_KEY: "not-a-key" } },
      "relay-master-key",
      "malformed",
    ],
    [
      "a master key other than the edge's",
      { relay: { WAVRY_RELAY_MASTER_PUBLIC_KEY: masterKey() } },
      "relay-master-key",
      "differs from the edge's",
    ],
    ["a setting the relay refuses", { relay: { WAVRY_RELAY_REGION: "EU West" } }, "relay-config", "REGION"],
    ["a line that is not KEY=VALUE", { relayText: "WAVRY_EDGE_URL https://x\n" }, "relay-config", "line 1"],
  ];
  for (const [name, options, check, text] of cases) {
    it(`${name}: FAIL ${check}`, async () => {
      const r = await run(setup(options).args);
      expect(r.has("FAIL", check, text), r.out.join("\n")).toBe(true);
      expect(r.code).toBe(1);
    });
  }

  it("an enrollment token left in the file: WARN relay-enrollment-token", async () => {
    const r = await run(setup({ relay: { WAVRY_RELAY_ENROLLMENT_TOKEN: "wvrel_0123456789abcdef" } }).args);
    expect(r.has("WARN", "relay-enrollment-token")).toBe(true);
    expect(r.code).toBe(0);
  });
});

describe("preflight: endpoint environment files", () => {
  const cases: [string, Setup, string, string][] = [
    [
      "insecure signaling override",
      { endpoint: { WAVRY_ALLOW_INSECURE_SIGNALING: "1" } },
      "insecure-signaling",
      "WAVRY_ALLOW_INSECURE_SIGNALING",
    ],
    [
      "override in a development file",
      { endpoint: { WAVRY_ENVIRONMENT: "development", WAVRY_ALLOW_INSECURE_SIGNALING: "1" } },
      "insecure-signaling",
      "allows ws://",
    ],
    [
      "a malformed pin",
      { endpoint: { WAVRY_SIGNALING_TLS_PINS_SHA256: `${PIN},abc` } },
      "tls-pins",
      "entry 2",
    ],
    [
      "an http edge URL",
      { endpoint: { WAVRY_EDGE_URL: "http://edge.example.com" } },
      "endpoint-config",
      "https",
    ],
  ];
  for (const [name, options, check, text] of cases) {
    it(`${name}: FAIL ${check}`, async () => {
      const r = await run(setup(options).args);
      expect(r.has("FAIL", check, text), r.out.join("\n")).toBe(true);
      expect(r.code).toBe(1);
    });
  }

  it("pins with colons and upper case are well formed; no pins is fine", async () => {
    const colons = PIN.toUpperCase().replace(/(..)(?!$)/g, "$1:");
    const r = await run(setup({ endpoint: { WAVRY_SIGNALING_TLS_PINS_SHA256: colons } }).args);
    expect(r.has("PASS", "tls-pins", "well formed")).toBe(true);
    const none = await run(setup({ endpoint: { WAVRY_SIGNALING_TLS_PINS_SHA256: undefined } }).args);
    expect(none.has("PASS", "tls-pins", "standard certificate validation")).toBe(true);
  });
});

describe("preflight: committed secrets", () => {
  const write = (dir: string, file: string, text: string) => {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  };
  const pem = () =>
    generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  const random = () => randomBytes(32).toString("base64url");

  it("finds each kind of committed secret, names file and line, never the value", async () => {
    const { dir, args } = setup();
    const token = `wvfoo_${random()}`;
    const literal = random();
    write(dir, "src/prefix.ts", 'export const FOO_TOKEN_PREFIX = "wvfoo_";\n');
    write(dir, "src/leak.ts", `// a leaked token\nconst seen = "${token}";\n`);
    write(dir, "keys/relay.pem", pem());
    write(dir, "deploy/edge.toml", `[vars]\nWAVRY_LOG_HASH_KEY = "${literal}"\n`);
    write(dir, ".env", "NOTHING=1\n");
    write(dir, "src/client.ts", `const apiSecret = "${random()}";\n`);
    const r = await run(args);
    expect(
      r.has("FAIL", "committed-secrets", "src/leak.ts:2: a token with one of the project's token prefixes"),
    ).toBe(true);
    expect(r.has("FAIL", "committed-secrets", "keys/relay.pem:1: a PEM private key")).toBe(true);
    expect(
      r.has("FAIL", "committed-secrets", "deploy/edge.toml:2: a literal value for WAVRY_LOG_HASH_KEY"),
    ).toBe(true);
    expect(r.has("FAIL", "committed-secrets", ".env:1: an environment file is committed")).toBe(true);
    expect(
      r.has("FAIL", "committed-secrets", "src/client.ts:1: a high-entropy value assigned to apiSecret"),
    ).toBe(true);
    expect(r.has("FAIL", "committed-secrets", "5 finding(s)")).toBe(true);
    expect(r.out.join("\n")).not.toContain(token);
    expect(r.out.join("\n")).not.toContain(literal);
    expect(r.code).toBe(1);
  });

  it("allows placeholders, development defaults, expressions and test-like values; honours .preflightignore", async () => {
    const { dir, args } = setup();
    write(
      dir,
      ".dev.vars.example",
      "WAVRY_ADMIN_BOOTSTRAP_TOKEN=change-me\nWAVRY_TOTP_ENCRYPTION_KEYS=k1:change-me\n",
    );
    write(dir, "src/env.ts", 'const DEV_LOG_HASH_KEY = "development-only-log-hash-key-not-secret";\n');
    write(dir, "src/code.ts", "const env = { WAVRY_LOG_HASH_KEY: randomBytes(32).toString('base64url') };\n");
    write(dir, "src/test.ts", 'const token = "wvadm_revoke-test-token-0123456789";\n');
    write(dir, "fixtures/key.pem", pem());
    write(dir, ".preflightignore", "# fixtures for parser tests\nfixtures/\n");
    const r = await run(args);
    expect(r.has("PASS", "committed-secrets", "left out by .preflightignore"), r.out.join("\n")).toBe(true);
    expect(r.out.find((l) => l.includes("committed-secrets"))).toMatch(/, 1 left out by \.preflightignore/);
    expect(r.code).toBe(0);
  });

  it("scans the files git tracks (and untracked ones not ignored), not git-ignored ones", async () => {
    const { dir, args } = setup();
    write(dir, ".gitignore", "local/\n");
    write(dir, "local/key.pem", pem());
    execFileSync("git", ["init", "-q", dir]);
    expect((await run(args)).has("PASS", "committed-secrets")).toBe(true);
    write(dir, "tracked/key.pem", pem());
    execFileSync("git", ["-C", dir, "add", "tracked/key.pem"]);
    expect((await run(args)).has("FAIL", "committed-secrets", "tracked/key.pem:1")).toBe(true);
  });
});

describe("preflight: admin routes, from the route table", () => {
  const scopesOf = async () => {
    const edge = await loadEdgeModules();
    return { edge, app: edge.createApp(), scopes: edge.adminScopes };
  };
  const statuses = (findings: readonly Finding[]) => findings.map((f) => `${f.status} ${f.check}: ${f.what}`);

  it("the real edge app passes", async () => {
    const { edge, app, scopes } = await scopesOf();
    const findings = await checkAdminRoutes({ app, declared: edge.adminRoutes(), scopes });
    expect(statuses(findings).every((l) => l.startsWith("PASS"))).toBe(true);
  });

  it("a route added with app.get, bypassing route(...): undeclared and open", async () => {
    const { edge, app, scopes } = await scopesOf();
    app.get("/v1/admin/rogue", (c) => c.json({ ok: true }));
    const lines = statuses(await checkAdminRoutes({ app, declared: edge.adminRoutes(), scopes }));
    expect(lines).toContain(
      "FAIL admin-routes: GET /v1/admin/rogue is registered but not declared in ADMIN_ROUTES",
    );
    expect(lines).toContain(
      "FAIL admin-scope: GET /v1/admin/rogue answered 200 to a request without credentials (expected 401)",
    );
  });

  it("a declared route whose guard is missing, a wrong scope, a bootstrap scope elsewhere, a stale entry", async () => {
    const { edge, app, scopes } = await scopesOf();
    app.get("/v1/admin/open", (c) => c.json({ ok: true }));
    const declared = [
      ...edge.adminRoutes(),
      { method: "GET", path: "/open", scope: "read" },
      { method: "POST", path: "/gone", scope: "bootstrap" },
    ];
    const lines = statuses(await checkAdminRoutes({ app, declared, scopes }));
    expect(lines).toContain(
      "FAIL admin-scope: GET /v1/admin/open answered 200 to a request without credentials (expected 401)",
    );
    expect(lines).toContain(
      'FAIL admin-scope: GET /v1/admin/open answered 200 to a token with every scope but "read" (expected 403)',
    );
    expect(lines).toContain(
      "FAIL admin-routes: POST /v1/admin/gone is declared in ADMIN_ROUTES but not registered",
    );
    expect(
      lines.some((l) => l.startsWith('FAIL admin-scope: POST /v1/admin/gone declares scope "bootstrap"')),
    ).toBe(true);
  });

  it("a guarded route outside the audited admin sub-app: not audited", async () => {
    const { edge, scopes } = await scopesOf();
    const admin = new Hono();
    admin.get("/unaudited", edge.requireAdmin("read"), (c) => c.json({ ok: true }));
    const app = new Hono();
    app.route("/v1/admin", admin);
    app.onError((error, c) => {
      const status = "status" in error && error.status === 403 ? 403 : 401;
      return c.json({ error: "refused" }, status);
    });
    const lines = statuses(
      await checkAdminRoutes({
        app,
        declared: [{ method: "GET", path: "/unaudited", scope: "read" }],
        scopes,
      }),
    );
    expect(lines).toContain(
      "FAIL admin-audit: GET /v1/admin/unaudited is not audited (0/0 audit rows for 2 requests)",
    );
    expect(lines.some((l) => l.startsWith("FAIL admin-audit: an unknown admin path"))).toBe(true);
    expect(lines.some((l) => l.startsWith("FAIL admin-scope"))).toBe(false);
  });

  it("no admin route at all: FAIL", async () => {
    const lines = statuses(await checkAdminRoutes({ app: new Hono(), declared: [], scopes: ["read"] }));
    expect(lines).toEqual(["FAIL admin-routes: no admin route is registered under /v1/admin"]);
  });
});

describe("preflight --with-tests", () => {
  it("runs lint, type check and the suite through the runner; any failure fails the preflight", async () => {
    const { args } = setup();
    const calls: string[] = [];
    const runner =
      (failing: string): CommandRunner =>
      async (command, argv, cwd) => {
        calls.push(`${cwd === args[3] ? "root" : cwd}: ${command} ${argv.join(" ")}`);
        return `${command} ${argv.join(" ")}`.includes(failing)
          ? { code: 1, tail: "1 test failed" }
          : { code: 0, tail: "" };
      };
    const ok = await run([...args, "--with-tests"], runner("nothing"));
    expect(calls).toEqual(["root: npm run -s lint", "root: npm run -s typecheck", "root: npx vitest run"]);
    expect(ok.has("PASS", "tests-lint")).toBe(true);
    expect(ok.has("PASS", "tests-typecheck")).toBe(true);
    expect(ok.has("PASS", "tests-suite")).toBe(true);
    expect(ok.code).toBe(0);
    const bad = await run([...args, "--with-tests"], runner("vitest"));
    expect(bad.has("FAIL", "tests-suite", "exited 1")).toBe(true);
    expect(bad.err).toContain("1 test failed");
    expect(bad.code).toBe(1);
  });
});

describe("preflight as a process and on this repository", () => {
  const script = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "scripts/preflight.ts"), ...args], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });

  it("exit codes: good 0, bad 1, bad flag 2", () => {
    expect(script(setup().args).status).toBe(0);
    expect(script(setup({ relay: { WAVRY_RELAY_INSECURE_DEV: "1" } }).args).status).toBe(1);
    const usage = script(["--no-such-flag"]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain("Usage: npm run preflight");
    expect(script(["--env", "staging"]).status).toBe(2);
  }, 120_000);

  it("the shipped wrangler.toml: only the operator's issuer is missing; with it, every check that needs no deployment passes", async () => {
    // Today the repository ships no WAVRY_ISSUER (it is the operator's edge URL): exactly that fails.
    const bare = await run(["--env", "production", "--root", ROOT]);
    expect(bare.out.filter((l) => l.startsWith("FAIL "))).toEqual([
      expect.stringMatching(/^FAIL signaling-url: WAVRY_ISSUER is not set/),
      expect.stringMatching(/^FAIL edge-config: .*WAVRY_ISSUER: required in production/),
    ]);
    expect(bare.code).toBe(1);
    const r = await run([
      "--env",
      "production",
      "--root",
      ROOT,
      "--var",
      "WAVRY_ISSUER=https://edge.example.com",
    ]);
    expect(r.out.filter((l) => l.startsWith("FAIL "))).toEqual([]);
    for (const check of [
      "environment",
      "signaling-url",
      "secrets-declared",
      "secrets-not-vars",
      "rate-limits",
    ]) {
      expect(r.has("PASS", check), check).toBe(true);
    }
    for (const check of ["committed-secrets", "admin-routes", "admin-scope", "admin-audit", "edge-config"]) {
      expect(r.has("PASS", check), check).toBe(true);
    }
    // Not checkable from the repository: deployed secrets, relay and endpoint files, the edge's master key.
    expect(r.out.filter((l) => l.startsWith("WARN ")).map((l) => l.split(":")[0])).toEqual([
      "WARN secrets-deployed",
      "WARN edge-master-key",
      "WARN relay-config",
      "WARN endpoint-config",
    ]);
    expect(r.code).toBe(0);
  }, 60_000);
});
