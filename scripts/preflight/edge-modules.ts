import { readFileSync } from "node:fs";
import { Hono, type MiddlewareHandler } from "hono";

/**
 * The edge's own code, loaded at run time. It is Worker code (type-checked by tsconfig.workerd.json, not by the
 * Node config this script is checked with), so it is imported by URL and every export is checked for the shape
 * the preflight relies on before use. Nothing here runs workerd: importing these modules needs only Node, as the
 * Durable Object classes are imported by type only.
 */

/** The Worker's configuration parser result (edge/env.ts `loadConfig`). */
export type EdgeConfigResult =
  | { readonly ok: true; readonly config: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly problems: readonly string[] };

/** One declared admin route (edge/routes/admin-route-table.ts). */
export interface DeclaredAdminRoute {
  readonly method: string;
  /** Below /v1/admin. */
  readonly path: string;
  readonly scope: string;
}

/** The parts of the edge the preflight uses. */
export interface EdgeModules {
  readonly loadConfig: (env: Readonly<Record<string, unknown>>) => EdgeConfigResult;
  readonly signalUrl: (config: { issuer: string; environment: string }) => string;
  readonly createApp: () => Hono;
  /** Filled when the admin routes are built (by `createApp`). */
  readonly adminRoutes: () => readonly DeclaredAdminRoute[];
  readonly adminScopes: readonly string[];
  /** The admin middlewares, for building test apps the way the edge does. */
  readonly requireAdmin: (scope: string) => MiddlewareHandler;
  readonly auditAdmin: () => MiddlewareHandler;
  /** `const DEV_… = "…"` values in edge/env.ts and edge/dev-defaults.ts: public development defaults. */
  readonly devDefaults: readonly { readonly name: string; readonly value: string }[];
}

const EDGE = new URL("../../edge/", import.meta.url);

class ShapeError extends Error {}

async function load(relative: string): Promise<Record<string, unknown>> {
  const mod: unknown = await import(new URL(relative, EDGE).href);
  if (typeof mod !== "object" || mod === null) throw new ShapeError(`edge/${relative}: not a module`);
  return mod as Record<string, unknown>;
}

function fn(mod: Record<string, unknown>, file: string, name: string): (...args: unknown[]) => unknown {
  const value = mod[name];
  if (typeof value !== "function")
    throw new ShapeError(`edge/${file} no longer exports the function ${name}`);
  return value as (...args: unknown[]) => unknown;
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((v) => typeof v === "string");

function toConfigResult(value: unknown): EdgeConfigResult {
  if (typeof value === "object" && value !== null && "ok" in value) {
    if (value.ok === true && "config" in value && typeof value.config === "object" && value.config !== null) {
      return { ok: true, config: value.config as Record<string, unknown> };
    }
    if (value.ok === false && "problems" in value && isStringArray(value.problems)) {
      return { ok: false, problems: value.problems };
    }
  }
  throw new ShapeError("edge/env.ts loadConfig returned an unexpected shape");
}

function toRoutes(value: unknown): DeclaredAdminRoute[] {
  if (!Array.isArray(value)) throw new ShapeError("edge/routes/admin.ts ADMIN_ROUTES is not an array");
  return value.map((entry: unknown) => {
    if (typeof entry !== "object" || entry === null)
      throw new ShapeError("ADMIN_ROUTES: entry is not an object");
    const { method, path, scope } = entry as Record<string, unknown>;
    if (typeof method !== "string" || typeof path !== "string" || typeof scope !== "string") {
      throw new ShapeError("ADMIN_ROUTES: entry without method, path and scope");
    }
    return { method, path, scope };
  });
}

/** The development defaults as written in edge/env.ts (known public values, never secrets). */
export function readDevDefaults(source: string): { name: string; value: string }[] {
  return [...source.matchAll(/const (DEV_[A-Z0-9_]+)\s*=\s*"([^"]+)"/g)].flatMap((m) =>
    m[1] !== undefined && m[2] !== undefined ? [{ name: m[1], value: m[2] }] : [],
  );
}

function middleware(value: unknown, name: string): MiddlewareHandler {
  if (typeof value !== "function")
    throw new ShapeError(`edge/middleware/admin-auth.ts ${name}() is not a middleware`);
  return value as MiddlewareHandler;
}

let cached: Promise<EdgeModules> | null = null;

/** Loads (once) and checks the edge modules. Rejects with a message naming the export that changed. */
export function loadEdgeModules(): Promise<EdgeModules> {
  cached ??= (async () => {
    const env = await load("env.ts");
    const signaling = await load("services/signaling.ts");
    const app = await load("app.ts");
    const admin = await load("routes/admin.ts");
    const auth = await load("middleware/admin-auth.ts");
    const loadConfig = fn(env, "env.ts", "loadConfig");
    const signalUrl = fn(signaling, "services/signaling.ts", "signalUrl");
    const createApp = fn(app, "app.ts", "createApp");
    const requireAdmin = fn(auth, "middleware/admin-auth.ts", "requireAdmin");
    const auditAdmin = fn(auth, "middleware/admin-auth.ts", "auditAdmin");
    if (!isStringArray(auth.ADMIN_SCOPES)) throw new ShapeError("edge/middleware/admin-auth.ts ADMIN_SCOPES");
    // The development defaults live in edge/dev-defaults.ts (env.ts may still hold DEV_ marks of its own).
    const envSource = ["env.ts", "dev-defaults.ts"]
      .map((file) => readFileSync(new URL(file, EDGE), "utf8"))
      .join("\n");
    return {
      loadConfig: (vars) => toConfigResult(loadConfig(vars)),
      signalUrl: (config) => {
        const url = signalUrl(config);
        if (typeof url !== "string") throw new ShapeError("edge/services/signaling.ts signalUrl");
        return url;
      },
      createApp: () => {
        const built = createApp();
        if (!(built instanceof Hono)) throw new ShapeError("edge/app.ts createApp did not return a Hono app");
        return built;
      },
      adminRoutes: () => toRoutes(admin.ADMIN_ROUTES),
      adminScopes: auth.ADMIN_SCOPES,
      requireAdmin: (scope) => middleware(requireAdmin(scope), "requireAdmin"),
      auditAdmin: () => middleware(auditAdmin(), "auditAdmin"),
      devDefaults: readDevDefaults(envSource),
    };
  })();
  return cached;
}
