import type { Hono } from "hono";
import type { DeclaredAdminRoute } from "../edge-modules.ts";
import { type Finding, fail, pass } from "../findings.ts";

/**
 * Admin boundaries, checked from what Hono registered (`app.routes`), not from a list kept by hand:
 * - every route registered under /v1/admin is declared in ADMIN_ROUTES, and every declared route is registered;
 * - every declared route needs a real scope (the "bootstrap" pseudo-scope only on POST /bootstrap);
 * - each route, requested with no credential, is refused with 401, and with a token lacking its scope, with 403;
 * - every such request (and one to an unknown admin path) leaves exactly one audit row.
 * The requests run through the app itself in Node with in-memory stand-ins for D1 and the Durable Objects, so a
 * route added with `app.get(...)` instead of the declaring `route(...)` helper is caught by what it does.
 */

export interface AdminRouteInput {
  readonly app: Hono;
  readonly declared: readonly DeclaredAdminRoute[];
  readonly scopes: readonly string[];
  /** Where the admin API is mounted. */
  readonly prefix?: string;
}

interface AuditRow {
  readonly method: string;
  readonly path: string;
}

/** Any value with the admin prefix: the stand-in D1 answers every lookup. */
const PROBE_TOKEN = "wvadm_preflight";
const BOOTSTRAP = { method: "POST", path: "/bootstrap" };

/** In-memory bindings: D1 answers the admin-token lookup with `tokenScopes`; the audit log records rows. */
function probeEnv(audit: AuditRow[], tokenScopes: readonly string[] | null): Record<string, unknown> {
  const statement = (sql: string) => {
    const self = {
      bind: () => self,
      first: async () =>
        tokenScopes !== null && /FROM admin_tokens WHERE token_hash/.test(sql)
          ? {
              id: "adm_preflight",
              scopes: tokenScopes.join(" "),
              expires_at: Date.now() + 60_000,
              revoked_at: null,
            }
          : null,
      all: async () => ({ results: [] }),
      run: async () => ({ meta: { changes: 0 } }),
      raw: async () => [],
    };
    return self;
  };
  const namespace = (stub: Record<string, unknown>) => ({
    idFromName: (name: string) => name,
    idFromString: (id: string) => id,
    newUniqueId: () => "preflight",
    get: () => stub,
  });
  const fallback = namespace(
    new Proxy<Record<string, unknown>>({}, { get: () => async () => undefined }) as Record<string, unknown>,
  );
  const known: Record<string, unknown> = {
    WAVRY_ENVIRONMENT: "development",
    WAVRY_ISSUER: "http://127.0.0.1:8787",
    DB: { prepare: statement, batch: async () => [] },
    RATE_LIMITER: namespace({
      take: async () => ({ allowed: true, remaining: 1, retryAfterSecs: 0 }),
      reset: async () => undefined,
    }),
    AUDIT_LOG: namespace({
      append: async (entry: unknown) => {
        const e = entry as Partial<AuditRow>;
        audit.push({ method: String(e.method), path: String(e.path) });
      },
    }),
  };
  return new Proxy(known, {
    get: (target, name) => {
      if (typeof name !== "string") return undefined;
      if (name in target) return target[name];
      return name.startsWith("WAVRY_") || name === "then" ? undefined : fallback;
    },
    has: (target, name) => typeof name === "string" && (name in target || !name.startsWith("WAVRY_")),
  });
}

const CONTEXT = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };

async function probe(
  app: Hono,
  method: string,
  path: string,
  tokenScopes: readonly string[] | null,
): Promise<{ status: number; audit: AuditRow[] }> {
  const audit: AuditRow[] = [];
  const headers: Record<string, string> = {};
  if (tokenScopes !== null) headers.authorization = `Bearer ${PROBE_TOKEN}`;
  const response = await app.request(
    `http://preflight.invalid${path}`,
    { method, headers },
    probeEnv(audit, tokenScopes),
    CONTEXT,
  );
  return { status: response.status, audit };
}

const concrete = (path: string) =>
  path.replace(/:[A-Za-z0-9_]+(\{[^}]*\})?/g, "preflight").replace(/\*/g, "x");

/**
 * The edge logs each request as a JSON line on the console; the probe's requests are not events, and the
 * preflight's output is one line per finding, so the console is muted while they run.
 */
async function quietly<T>(run: () => Promise<T>): Promise<T> {
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error };
  const mute = () => undefined;
  Object.assign(console, { log: mute, info: mute, warn: mute, error: mute });
  try {
    return await run();
  } finally {
    Object.assign(console, saved);
  }
}

/** Runs the admin boundary checks over `input.app`. */
export function checkAdminRoutes(input: AdminRouteInput): Promise<Finding[]> {
  return quietly(() => checkRoutes(input));
}

async function checkRoutes(input: AdminRouteInput): Promise<Finding[]> {
  const prefix = input.prefix ?? "/v1/admin";
  const findings: Finding[] = [];
  const key = (method: string, path: string) => `${method} ${path}`;
  const declared = new Map(input.declared.map((r) => [key(r.method, `${prefix}${r.path}`), r]));
  // Middleware is registered as method ALL on a wildcard path; anything else is a route.
  const registered = new Map<string, { method: string; path: string }>();
  for (const r of input.app.routes) {
    if (!r.path.startsWith(`${prefix}/`) && r.path !== prefix) continue;
    if (r.method === "ALL" && r.path.endsWith("*")) continue;
    registered.set(key(r.method, r.path), { method: r.method, path: r.path });
  }
  if (registered.size === 0) {
    findings.push(fail("admin-routes", `no admin route is registered under ${prefix}`, "check edge/app.ts"));
    return findings;
  }
  const problems = (check: string, what: string, fix: string) => findings.push(fail(check, what, fix));

  for (const [k] of registered) {
    if (!declared.has(k)) {
      problems(
        "admin-routes",
        `${k} is registered but not declared in ADMIN_ROUTES`,
        "declare it with the route(...) helper of edge/routes/admin-route-table.ts, which adds the scope check",
      );
    }
  }
  for (const [k, r] of declared) {
    if (!registered.has(k)) {
      problems(
        "admin-routes",
        `${k} is declared in ADMIN_ROUTES but not registered`,
        "register it or remove it from ADMIN_ROUTES",
      );
    }
    const isBootstrap = r.method === BOOTSTRAP.method && r.path === BOOTSTRAP.path;
    if (!isBootstrap && !input.scopes.includes(r.scope)) {
      problems(
        "admin-scope",
        `${k} declares scope "${r.scope}", not one of ${input.scopes.join(", ")}`,
        "give it the least scope that fits (ADMIN_SCOPES in edge/middleware/admin-auth.ts)",
      );
    }
  }

  let refused = 0;
  let audited = 0;
  for (const [k, r] of registered) {
    const path = concrete(r.path);
    const method = r.method === "ALL" ? "GET" : r.method;
    const anonymous = await probe(input.app, method, path, null);
    if (anonymous.status !== 401) {
      problems(
        "admin-scope",
        `${k} answered ${anonymous.status} to a request without credentials (expected 401)`,
        "declare it with route(...) so requireAdmin(scope) runs before the handler",
      );
    } else refused++;
    const spec = declared.get(k);
    const isBootstrap =
      spec !== undefined && spec.method === BOOTSTRAP.method && spec.path === BOOTSTRAP.path;
    let lacking: { status: number; audit: AuditRow[] } | null = null;
    if (!isBootstrap) {
      const others = input.scopes.filter((s) => s !== spec?.scope);
      lacking = await probe(input.app, method, path, others);
      if (spec !== undefined && lacking.status !== 403) {
        problems(
          "admin-scope",
          `${k} answered ${lacking.status} to a token with every scope but "${spec.scope}" (expected 403)`,
          `guard it with requireAdmin("${spec.scope}") (the route(...) helper does)`,
        );
      }
    }
    const rows = [anonymous, ...(lacking === null ? [] : [lacking])];
    if (
      rows.every((p) => p.audit.length === 1 && p.audit[0]?.method === method && p.audit[0]?.path === path)
    ) {
      audited++;
    } else {
      problems(
        "admin-audit",
        `${k} is not audited (${rows.map((p) => p.audit.length).join("/")} audit rows for ${rows.length} requests)`,
        'mount it on the admin sub-app, under app.use("*", auditAdmin())',
      );
    }
  }
  const unknown = await probe(input.app, "GET", `${prefix}/preflight-no-such-route`, null);
  if (unknown.status < 400 || unknown.audit.length !== 1) {
    problems(
      "admin-audit",
      `an unknown admin path answered ${unknown.status} with ${unknown.audit.length} audit rows (expected a 4xx and 1 row)`,
      "keep auditAdmin() on every /v1/admin request and no catch-all handler",
    );
  }
  const ok = findings.length === 0;
  if (ok) {
    findings.push(
      pass("admin-routes", `${registered.size} admin routes registered, all declared in ADMIN_ROUTES`),
      pass("admin-scope", `${refused} refuse a request without credentials; each needs its declared scope`),
      pass("admin-audit", `${audited} admin routes and unknown admin paths write one audit row per request`),
    );
  }
  return findings;
}
