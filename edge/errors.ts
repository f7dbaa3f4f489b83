import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { logEvent } from "./log.ts";

/**
 * The closed set of error codes the API returns, as `{ "error": { "code", "message" } }`.
 * Messages are fixed per call site and never carry a stack, SQL text or a secret.
 */
export type ApiErrorCode =
  | "bad_request"
  | "invalid_body"
  | "payload_too_large"
  | "unsupported_media_type"
  | "upgrade_required"
  | "unauthorized"
  | "invalid_token"
  | "forbidden"
  | "insufficient_scope"
  | "not_found"
  | "conflict"
  | "gone"
  | "locked"
  | "rate_limited"
  | "address_blocked"
  | "configuration_error"
  | "unavailable"
  | "internal";

/** An HTTP error with an API code; thrown anywhere, rendered by {@link renderError}. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: ContentfulStatusCode;
  readonly code: ApiErrorCode;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: ContentfulStatusCode,
    code: ApiErrorCode,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** The JSON error body. */
export function errorBody(
  code: ApiErrorCode,
  message: string,
): { error: { code: ApiErrorCode; message: string } } {
  return { error: { code, message } };
}

/** Renders any thrown value; unknown errors become a generic 500 with nothing of the original. */
export function renderError(error: unknown, c: Context): Response {
  c.set("errorCode", error instanceof ApiError ? error.code : "internal");
  if (error instanceof ApiError) {
    for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
    return c.json(errorBody(error.code, error.message), error.status);
  }
  // Operators get the error class and message in the log (never returned to the client); request bodies, tokens
  // and secrets are not part of either.
  logEvent("error", "edge", "internal_error", "failed", {
    requestId: c.get("requestId") ?? null,
    error: error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 300) : "non-error thrown",
  });
  return c.json(errorBody("internal", "internal error"), 500);
}
