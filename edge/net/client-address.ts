/**
 * The client address the edge uses for rate limits, lockouts and audit entries.
 */
import { formatIp, parseIp, unmapIPv4 } from "./ip.ts";

/** How far the edge trusts forwarding headers; read once from `WAVRY_TRUST_PROXY_HEADERS`. */
export interface ClientAddressOptions {
  /** True only when the edge runs behind a proxy we operate that appends to `X-Forwarded-For`. */
  readonly trustProxyHeaders: boolean;
}

/**
 * Strips optional whitespace, which is spaces and tabs only (RFC 9110 §5.6.3): String.prototype.trim would also
 * drop U+00A0 and friends. A loop, not a regex, so a long run of blanks costs linear time.
 */
function trimOws(text: string): string {
  const blank = (i: number) => text[i] === " " || text[i] === "\t";
  let start = 0;
  let end = text.length;
  while (start < end && blank(start)) start++;
  while (end > start && blank(end - 1)) end--;
  return text.slice(start, end);
}

function canonical(text: string): string | null {
  const bytes = parseIp(trimOws(text));
  return bytes === null ? null : formatIp(unmapIPv4(bytes));
}

/**
 * The client's IP address in canonical text (dotted quad, or RFC 5952 IPv6; an IPv4-mapped address is given as the
 * IPv4 address, so one client has one rate-limit key), or null when it cannot be trusted or parsed.
 *
 * The rule (DESIGN.md, "Edge: auth, tokens, rate limits"):
 * 1. `CF-Connecting-IP` when present. Cloudflare sets it on every request and overwrites any value a client sent.
 *    If it is present but not a valid address the answer is null; there is no fallback to other headers.
 * 2. Only when `trustProxyHeaders` is true and `CF-Connecting-IP` is absent: the RIGHTMOST `X-Forwarded-For` entry.
 *    Each proxy appends the address it received the connection from (RFC 7239 §5.2 describes the same chain for
 *    `Forwarded`), so the rightmost entry was written by our own proxy, while every entry to its left, including
 *    the leftmost "original client", is whatever the client chose to send. Several `X-Forwarded-For` header lines
 *    count as one list (the Fetch `Headers` object joins them with ", "). The entry must be a bare address: no port,
 *    brackets or zone id.
 * 3. Otherwise null: without a trusted proxy, `X-Forwarded-For` is attacker input and is never read.
 */
export function clientAddress(headers: Headers, options: ClientAddressOptions): string | null {
  const connecting = headers.get("CF-Connecting-IP");
  if (connecting !== null) return canonical(connecting);
  if (!options.trustProxyHeaders) return null;
  const forwarded = headers.get("X-Forwarded-For");
  if (forwarded === null) return null;
  // lastIndexOf, not split: the client controls how many entries precede ours.
  return canonical(forwarded.slice(forwarded.lastIndexOf(",") + 1));
}
