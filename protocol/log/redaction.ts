import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex, utf8 } from "../bytes.ts";

/**
 * The one redaction rule for every log line any part writes (DESIGN.md, "Monitoring and incident response":
 * tokens, passwords, keys and payloads are never logged; addresses and emails only as keyed hashes). Pure: the
 * hash key is passed in; nothing here reads a clock, the environment or a random source.
 *
 * Three layers, applied in this order to each field:
 * 1. The field's NAME. It is split into lower-case words (camelCase, `_`, `-`, `.`). A name holding a word of
 *    {@link SECRET_WORDS} is a secret field: a string or number value becomes `"[redacted]"` (booleans and null
 *    say nothing and stay). A name holding a word of {@link ADDRESS_WORDS} is an address field: a string value
 *    becomes its keyed hash `h:<hex>`, or the field is dropped when no hash key is known; numbers, booleans and
 *    null stay (a count of addresses is not an address). Secret wins over address.
 *    A `code` field is a secret (a one-time enrollment code, a TOTP code) unless its value is an error code: a
 *    snake_case identifier (`unauthorized`) or an errno name (`EADDRINUSE`).
 * 2. Every remaining string VALUE, whatever its field name, is scanned ({@link scrubText}): PEM blocks, JWTs
 *    (`eyJ…`), `Bearer …` credentials, the project's token prefixes ({@link TOKEN_PREFIXES}), enrollment codes,
 *    and runs of 32 or more base64url/base64/hex characters mixing character classes (the shape of every key and
 *    random token we make; UUIDs are exempt, device ids and 16-byte ids are shorter) become `[redacted]`; email
 *    addresses, IPv4 and IPv6 addresses inside the text become their keyed hash (or `[email]` / `[address]`
 *    without a key).
 * 3. Bounds: at most {@link MAX_FIELDS} fields, names of at most 64 characters from `[A-Za-z0-9_.-]` (others are
 *    dropped), strings cut to {@link MAX_VALUE_CHARS} characters after scanning (and to {@link MAX_SCAN_CHARS}
 *    before, dropping the partial word at the cut so no fragment of a long secret survives), non-finite numbers
 *    become null, and anything that is not a scalar becomes `"[unsupported]"`.
 */

/** A log field value: scalars only, so nothing nested (a key object, a buffer) slips in. */
export type LogValue = string | number | boolean | null;
/** The fields of one log line. */
export type LogFields = Readonly<Record<string, LogValue>>;

/** Words that make a field a secret field (matched against the words of its name, lower-cased). */
export const SECRET_WORDS: ReadonlySet<string> = new Set([
  "token",
  "tokens",
  "password",
  "passwords",
  "passphrase",
  "pass",
  "pwd",
  "secret",
  "secrets",
  "key",
  "keys",
  "privkey",
  "pem",
  "jwk",
  "seed",
  "totp",
  "otp",
  "authorization",
  "auth",
  "bearer",
  "credential",
  "credentials",
  "cookie",
  "cookies",
  "ticket",
  "lease",
  "leases",
  "payload",
  "payloads",
  "body",
  "plaintext",
  "ciphertext",
  "signature",
  "sig",
  "proof",
  "nonce",
  "salt",
  "jwt",
  "code",
  "codes",
]);

/** Words that make a field an address field (its string value is replaced by a keyed hash). */
export const ADDRESS_WORDS: ReadonlySet<string> = new Set([
  "email",
  "emails",
  "mail",
  "ip",
  "ips",
  "ipv4",
  "ipv6",
  "address",
  "addresses",
  "addr",
  "addrs",
  "remote",
  "candidate",
  "candidates",
  "cidr",
]);

/**
 * Names that would match a secret word but name an identifier, never the secret itself: `keyId`, `kid`, `tokenId`,
 * `leaseKid`… A name whose LAST word is one of these is not a secret field (`tokenId` is fine, `idToken` is not).
 */
const IDENTIFIER_LAST_WORDS: ReadonlySet<string> = new Set([
  "id",
  "ids",
  "kid",
  "count",
  "kind",
  "type",
  "family",
  "bytes",
  "length",
  "len",
  "size",
  "ms",
  "secs",
  "exp",
  "iat",
  "age",
  "state",
  "status",
  "reason",
  "version",
  "alg",
]);

/**
 * Token prefixes this project issues (edge/middleware/admin-auth.ts `ADMIN_TOKEN_PREFIX`, edge/routes/admin-relays.ts
 * `RELAY_ENROLLMENT_TOKEN_PREFIX`, edge/services/signaling.ts ticket prefix) plus the Argon2 hash prefix. Any word
 * starting with one is redacted, however short (a truncated token is still part of a token).
 */
export const TOKEN_PREFIXES: readonly string[] = ["wvadm_", "wvrel_", "st1.", "$argon2"];

export const MAX_FIELDS = 32;
export const MAX_VALUE_CHARS = 512;
export const MAX_SCAN_CHARS = 4096;
export const REDACTED = "[redacted]";

const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const ERROR_CODE = /^(?:[a-z][a-z0-9_]{0,63}|E[A-Z0-9_]{1,31})$/;

/** The lower-case words of a field name: `relayAddr` → relay, addr; `x25519_private_key` → x25519, private, key. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[\s_.-]+/)
    .filter((word) => word !== "");
}

/** How a field is treated, decided by its name alone. */
export type FieldClass = "secret" | "code" | "address" | "plain";

/** The class of a field name (rule 1 above). */
export function classifyField(name: string): FieldClass {
  const words = nameWords(name);
  const last = words[words.length - 1];
  const identifier = last !== undefined && IDENTIFIER_LAST_WORDS.has(last);
  if (!identifier && words.some((word) => SECRET_WORDS.has(word))) {
    return last === "code" && words.filter((word) => SECRET_WORDS.has(word)).length === 1 ? "code" : "secret";
  }
  if (!identifier && words.some((word) => ADDRESS_WORDS.has(word))) return "address";
  return "plain";
}

/** HMAC-SHA-256 of `value` under `key`, first 16 bytes, hex: the construction of edge/security/keyed-hash.ts. */
export function keyedHashHex(key: Uint8Array, value: string): string {
  return toHex(hmac(sha256, key, utf8(value)).subarray(0, 16));
}

/** `h:<hex>`, the printed form of a hashed address or email. */
export function hashedValue(key: Uint8Array, value: string): string {
  return `h:${keyedHashHex(key, value)}`;
}

const PEM = /-----BEGIN [^-\n]{0,64}-----[\s\S]*?(?:-----END [^-\n]{0,64}-----|$)/g;
const BEARER = /\b(?:bearer|basic)\s+\S+/gi;
const JWT = /eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}/g;
const PREFIXED = new RegExp(
  `(?:${TOKEN_PREFIXES.map((p) => p.replace(/[.*+?^${}()|[\]\\$]/g, "\\$&")).join("|")})[A-Za-z0-9_.$=,+/-]*`,
  "g",
);
/** A one-time enrollment code (protocol/identity/device-proofs.ts: 20 base32 characters, shown in groups of 4). */
const ENROLLMENT_CODE =
  /(?<![A-Za-z0-9])(?:[A-Z2-7]{20}|[A-Za-z2-7]{4}(?:-[A-Za-z2-7]{4}){4})(?![A-Za-z0-9])/g;
/** A UUID (request ids, user ids, token ids) is an identifier, not a secret: kept as is. */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/**
 * Runs that could be key material or a random token: base64url, base64 or hex, 32 characters or more, mixing at
 * least two of lower case, upper case and digits (random text of that length always does; an `UPPER_SNAKE` constant
 * does not). A run with a `/` must mix upper and lower case (standard base64 always does), so a lower-case route or
 * path such as `/v1/admin/relays/enrollment-tokens` stays readable.
 */
const LONG_RUN = /[A-Za-z0-9_+/=-]{32,}/g;

function looksRandom(run: string): boolean {
  if (UUID.test(run)) return false;
  const lower = /[a-z]/.test(run);
  const upper = /[A-Z]/.test(run);
  if (run.includes("/") && !(lower && upper)) return false;
  return Number(lower) + Number(upper) + Number(/[0-9]/.test(run)) >= 2;
}
const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+/g;
const IPV4 = /(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d])/g;
/**
 * An IPv6 candidate: hex groups and colons (with an optional embedded IPv4 tail and zone). It counts as an address
 * only with a `::` or exactly seven colons (the full form), so a clock time like `12:34:56` is left alone.
 */
const IPV6 =
  /(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?:%[\w.]+)?/g;

function isIpv6(candidate: string): boolean {
  const colons = candidate.split(":").length - 1;
  return candidate.includes("::") || colons === 7 || (colons === 6 && candidate.includes("."));
}

/**
 * Cuts `text` to `limit` characters; when something was cut, the partial word at the cut goes too, so the head of a
 * long secret cut in the middle does not survive as a shorter run that no longer looks like one.
 */
function cut(text: string, limit: number): { text: string; cut: boolean } {
  if (text.length <= limit) return { text, cut: false };
  const head = text.slice(0, limit);
  return { text: head.replace(/[^\s"'<>()[\]{},;]*$/, ""), cut: true };
}

/**
 * Rule 2: the secrets, emails and addresses inside free text. `key` null means no hash key is known: emails and
 * addresses become `[email]` / `[address]`.
 */
export function scrubText(text: string, key: Uint8Array | null): string {
  const bounded = cut(text, MAX_SCAN_CHARS);
  let out = bounded.text
    .replace(PEM, REDACTED)
    .replace(BEARER, (match) => `${match.split(/\s/)[0] ?? "Bearer"} ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(PREFIXED, REDACTED)
    .replace(LONG_RUN, (run) => (looksRandom(run) ? REDACTED : run))
    .replace(ENROLLMENT_CODE, REDACTED)
    .replace(EMAIL, (email) => (key === null ? "[email]" : hashedValue(key, email)))
    .replace(IPV6, (candidate) => {
      if (!isIpv6(candidate)) return candidate;
      return key === null ? "[address]" : hashedValue(key, candidate);
    })
    .replace(IPV4, (address) => (key === null ? "[address]" : hashedValue(key, address)));
  if (bounded.cut) out += "…";
  return cut(out, MAX_VALUE_CHARS).text;
}

/**
 * One field after rules 1–3, or undefined when it must be dropped (an address with no hash key, a bad name).
 */
export function redactField(name: string, value: unknown, key: Uint8Array | null): LogValue | undefined {
  if (!NAME.test(name)) return undefined;
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number") {
    const kind = classifyField(name);
    if (kind === "secret" || kind === "code") return REDACTED;
    return Number.isFinite(value) ? value : null;
  }
  if (typeof value !== "string") return "[unsupported]";
  switch (classifyField(name)) {
    case "secret":
      return REDACTED;
    case "code":
      return ERROR_CODE.test(value) ? value : REDACTED;
    case "address":
      return key === null ? undefined : hashedValue(key, cut(value, MAX_SCAN_CHARS).text);
    case "plain":
      return scrubText(value, key);
  }
}
