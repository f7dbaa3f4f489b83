import os from "node:os";
import path from "node:path";

/**
 * The one place the `wavry` endpoint reads its environment (STYLE.md: one entry that validates configuration
 * once). A bad setting stops the command with a message naming the setting, never echoing its value.
 *
 * - `WAVRY_HOME`: where the device identity, trust store and session live (default `~/.wavry`).
 * - `WAVRY_EDGE_URL`: the edge origin (`https://…`; plain `http://` only outside production).
 * - `WAVRY_ENVIRONMENT`: `production` (default) or `development`. As on the edge and the relay, anything that is
 *   not explicitly development is treated as production, so a missing variable never weakens security.
 */

/** Where a command runs: production refuses every insecure transport. */
export type Environment = "development" | "production";

/** The validated endpoint configuration. */
export interface EndpointConfig {
  readonly environment: Environment;
  /** Absolute path of the state directory. */
  readonly home: string;
  /** The edge origin, or null when `WAVRY_EDGE_URL` is unset (commands that need it say so). */
  readonly edgeUrl: URL | null;
}

/** A configuration, or every problem found, each starting with the setting's name. */
export type ConfigResult =
  | { readonly ok: true; readonly config: EndpointConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

/** The variables {@link loadEndpointConfig} reads. */
export const ENDPOINT_ENV_NAMES = ["WAVRY_HOME", "WAVRY_EDGE_URL", "WAVRY_ENVIRONMENT"] as const;

function value(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const raw = env[name];
  // An empty value counts as unset (a shell `WAVRY_HOME= wavry …` or systemd `Environment=X=` clears it).
  return typeof raw === "string" && raw.trim() !== "" ? raw.trim() : undefined;
}

/**
 * Parses an edge origin. Only the origin is kept: a path, query, fragment or credentials would be silently
 * ignored or, worse, sent somewhere unexpected, so they are refused.
 */
export function parseEdgeUrl(text: string, environment: Environment): URL | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "WAVRY_EDGE_URL must be a URL such as https://edge.example.com";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return "WAVRY_EDGE_URL must use https:// (or http:// in development)";
  }
  if (url.protocol === "http:" && environment === "production") {
    return "WAVRY_EDGE_URL must use https:// in production (set WAVRY_ENVIRONMENT=development for a local edge)";
  }
  if (url.username !== "" || url.password !== "") return "WAVRY_EDGE_URL must not contain credentials";
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    return "WAVRY_EDGE_URL must be an origin only (no path, query or fragment)";
  }
  return new URL(url.origin);
}

/** Validates the environment once. `homeDir` is the user's home directory (injected for tests). */
export function loadEndpointConfig(
  env: Readonly<Record<string, string | undefined>>,
  homeDir: string = os.homedir(),
): ConfigResult {
  const problems: string[] = [];
  const envText = value(env, "WAVRY_ENVIRONMENT");
  let environment: Environment = "production";
  if (envText === "development" || envText === "production") environment = envText;
  else if (envText !== undefined) problems.push("WAVRY_ENVIRONMENT must be development or production");

  const homeText = value(env, "WAVRY_HOME");
  let home = path.join(homeDir, ".wavry");
  if (homeText !== undefined) {
    // A relative home would move with the working directory and split one device into several identities.
    if (!path.isAbsolute(homeText)) problems.push("WAVRY_HOME must be an absolute path");
    else home = path.resolve(homeText);
  }

  let edgeUrl: URL | null = null;
  const edgeText = value(env, "WAVRY_EDGE_URL");
  if (edgeText !== undefined) {
    const parsed = parseEdgeUrl(edgeText, environment);
    if (typeof parsed === "string") problems.push(parsed);
    else edgeUrl = parsed;
  }

  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: { environment, home, edgeUrl } };
}
