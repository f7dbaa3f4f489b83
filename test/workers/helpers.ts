import { exports } from "cloudflare:workers";

/**
 * Shared helpers for Workers tests: requests go through the real Worker entry (all middleware, real D1 with the
 * migrations, real Durable Objects). Storage is isolated per test file, so tests inside a file use fresh emails and
 * addresses to stay independent.
 */
export const BOOTSTRAP = "test-bootstrap-secret-0123456789-abcdefghij";

let counter = 0;
/** A unique value per call within a test file (emails, names). */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

/** A fresh client address per call (so per-address rate limits of one test do not leak into the next). */
export function freshAddress(): string {
  counter++;
  return `198.51.${(counter >> 8) & 255}.${counter & 255}`;
}

export interface CallOptions {
  readonly method?: string;
  readonly body?: unknown;
  readonly token?: string;
  readonly address?: string;
  readonly headers?: Record<string, string>;
  /** Raw body text (sent as is, with the JSON content type unless headers say otherwise). */
  readonly raw?: string;
}

export interface CallResult<T = unknown> {
  readonly status: number;
  readonly json: T;
  readonly headers: Headers;
}

/** Calls the edge and parses the JSON answer. */
export async function call<T = Record<string, unknown>>(
  path: string,
  options: CallOptions = {},
): Promise<CallResult<T>> {
  const headers: Record<string, string> = {
    "CF-Connecting-IP": options.address ?? "203.0.113.10",
    ...options.headers,
  };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined || options.body !== undefined) {
    headers["Content-Type"] ??= "application/json";
    body = options.raw ?? JSON.stringify(options.body);
  }
  const response = await exports.default.fetch(`https://edge.test${path}`, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    ...(body !== undefined && { body }),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = { unparsed: text };
  }
  return { status: response.status, json: json as T, headers: response.headers };
}

/** The error code of an error response. */
export function errorCode(result: CallResult): string | undefined {
  return (result.json as { error?: { code?: string } } | null)?.error?.code;
}
