import { toHex, utf8 } from "../../protocol/bytes.ts";

/**
 * Alert delivery to WAVRY_ALERT_WEBHOOK_URL (issue 6). The body is JSON; the `X-Wavry-Signature` header is
 * `t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, t + "." + body)>`, so a receiver holding the secret can check that
 * the alert comes from this edge and refuse an old one replayed later (compare `t` with its own clock). Pure apart
 * from WebCrypto.
 */

export const SIGNATURE_HEADER = "X-Wavry-Signature";

/** The signature header value for `body` at `unixSecs`. */
export async function signatureHeader(secret: string, unixSecs: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign("HMAC", key, utf8(`${unixSecs}.${body}`));
  return `t=${unixSecs},v1=${toHex(new Uint8Array(mac))}`;
}

/** First retry after this; each later one waits twice as long, up to {@link MAX_RETRY_DELAY_MS}. */
export const FIRST_RETRY_DELAY_MS = 30_000;
export const MAX_RETRY_DELAY_MS = 60 * 60_000;

/** When to try again after `attempts` failed attempts (1 = the first one failed). */
export function retryDelayMs(attempts: number): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 20);
  return Math.min(MAX_RETRY_DELAY_MS, FIRST_RETRY_DELAY_MS * 2 ** exponent);
}
