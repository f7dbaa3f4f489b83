import type { Context } from "hono";
import type { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Reads a JSON body with the configured size limit (413), strict UTF-8 and JSON (400), then validates it
 * against `schema` (400 naming the first bad field, never echoing its value).
 */
export async function readJson<S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> {
  const limit = c.get("config").maxBodyBytes;
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > limit) throw tooLarge();
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json(\s*;\s*charset=utf-8)?$/i.test(type.trim())) {
    throw new ApiError(415, "unsupported_media_type", "send application/json");
  }
  const bytes = await readLimited(c.req.raw, limit);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new ApiError(400, "invalid_body", "body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_body", "body is not valid JSON");
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? "body" : issue.path.join(".");
    throw new ApiError(400, "invalid_body", `invalid field: ${where.slice(0, 64)}`);
  }
  return parsed.data;
}

function tooLarge(): ApiError {
  return new ApiError(413, "payload_too_large", "request body too large");
}

/** Reads at most `limit` bytes of a body, refusing more without buffering it. */
async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
