import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { type Finding, fail, pass } from "../findings.ts";

/**
 * "None committed in source files": scans the files git tracks under the root (or, outside a git checkout, every
 * file except node_modules, .git and .wrangler) for PEM private keys, the project's token prefixes followed by a
 * token, literal values of the secret settings, long high-entropy strings assigned to secret-like names, and
 * committed environment files. Known public values (the DEV_… defaults in edge/dev-defaults.ts, placeholders such as
 * `change-me`) are allowed explicitly. Paths matched by `.preflightignore` (globs, one a line, `#` comments) are
 * not scanned, and the count says how many were left out.
 */

export interface ScanInput {
  readonly root: string;
  /** Names of the secret settings (their literal values are findings). */
  readonly secretNames: readonly string[];
  /** Known public values (development defaults) never reported. */
  readonly allowedValues: readonly string[];
}

export interface ScanResult {
  readonly findings: readonly Finding[];
  readonly scanned: number;
  readonly ignored: number;
  readonly skipped: number;
}

const MAX_BYTES = 1024 * 1024;
const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\s*$/;
/** The first body line of a PEM: a key has one; a test that only names the header does not. */
const PEM_BODY = /^\s*["'`]?[A-Za-z0-9+/=]{40,}/;
/** Code files: a secret's value counts only when it is a quoted literal (not an expression). */
const CODE_FILE = /\.(ts|tsx|js|mjs|cjs|json|jsonc)$/;
const TOKEN_PREFIX_DECL = /\b[A-Z0-9_]*TOKEN[A-Z0-9_]*_PREFIX\s*=\s*["']([a-z0-9]{2,10}_)["']/g;
const SECRET_LIKE_NAME = /(secret|token|password|passwd|private_?key|api_?key|_key)$/i;
const ASSIGNED_LITERAL = /\b([A-Za-z_][A-Za-z0-9_]*)["']?\s*[:=]\s*["'`]([A-Za-z0-9+/=_\-.:~]{32,})["'`]/g;
const ENV_FILE = /^(\.dev\.vars|\.env(\..+)?)$/;
const TEMPLATE_SUFFIX = /\.(example|sample|template)$/;

/** Values that are placeholders, not secrets. */
function isPlaceholder(value: string): boolean {
  return (
    value === "" ||
    /change-?me|example|placeholder|<[^>]*>|\$\{|^\$[A-Z_]|x{6,}|\.\.\./i.test(value) ||
    new Set(value.replace(/^[^:]*:/, "")).size <= 4
  );
}

/** Shannon entropy in bits per character. */
export function entropy(value: string): number {
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / value.length) * Math.log2(n / value.length);
  return bits;
}

/** A value that looks random: long, mixed letters and digits, high entropy, not an identifier or a path. */
function looksRandom(value: string): boolean {
  // Made-up test values read as words ("revoke-test-token-0123"); random ones do not.
  const words = value.split(/[-_.:]/).filter((part) => /^[a-z]{3,}$/.test(part)).length;
  return (
    value.length >= 32 &&
    words < 3 &&
    /[0-9]/.test(value) &&
    /[A-Za-z]/.test(value) &&
    !/^[a-z]+(-[a-z0-9]+)+$/.test(value) &&
    !value.includes("/") &&
    entropy(value) >= 4
  );
}

/** `.preflightignore` globs: `**` any path, `*` within a segment, `?` one character; a trailing `/` a folder. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  const g = glob.endsWith("/") ? `${glob}**` : glob;
  for (let i = 0; i < g.length; i++) {
    const ch = g[i] ?? "";
    if (ch === "*" && g[i + 1] === "*") {
      source += g[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += g[i + 2] === "/" ? 2 : 1;
    } else if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else source += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

export function readIgnoreFile(root: string): RegExp[] {
  let text = "";
  try {
    text = readFileSync(path.join(root, ".preflightignore"), "utf8");
  } catch {
    return [];
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map(globToRegExp);
}

function listFiles(root: string): string[] {
  try {
    const out = execFileSync(
      "git",
      ["-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return out.split("\0").filter((f) => f !== "");
  } catch {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
        if ([".git", "node_modules", ".wrangler"].includes(entry.name)) continue;
        const rel = dir === "" ? entry.name : `${dir}/${entry.name}`;
        if (entry.isDirectory()) walk(rel);
        else if (entry.isFile()) files.push(rel);
      }
    };
    walk("");
    return files;
  }
}

export function scanForSecrets(input: ScanInput): ScanResult {
  const ignore = readIgnoreFile(input.root);
  const files = listFiles(input.root);
  const texts: { file: string; text: string }[] = [];
  let ignored = 0;
  let skipped = 0;
  for (const file of files) {
    if (ignore.some((re) => re.test(file))) {
      ignored++;
      continue;
    }
    let text: string;
    try {
      const full = path.join(input.root, file);
      if (statSync(full).size > MAX_BYTES) {
        skipped++;
        continue;
      }
      const bytes = readFileSync(full);
      if (bytes.subarray(0, 8192).includes(0)) {
        skipped++;
        continue;
      }
      text = bytes.toString("utf8");
    } catch {
      skipped++;
      continue;
    }
    texts.push({ file, text });
  }
  const prefixes = new Set<string>();
  for (const { text } of texts)
    for (const m of text.matchAll(TOKEN_PREFIX_DECL)) if (m[1]) prefixes.add(m[1]);
  const prefixPattern =
    prefixes.size === 0
      ? null
      : new RegExp(
          `(?:${[...prefixes].map((p) => p.replace(/[.+^$]/g, "\\$&")).join("|")})([A-Za-z0-9_-]{32,})`,
          "g",
        );
  const secretAssignment =
    input.secretNames.length === 0
      ? null
      : new RegExp(`\\b(${input.secretNames.join("|")})\\b["']?\\s*[:=]\\s*(["'\`]?)([^\\s"'\`,;]+)`, "g");
  const allowed = (value: string) => input.allowedValues.some((a) => a === value || value.includes(a));

  const findings: Finding[] = [];
  const reported = new Set<string>();
  // One finding a line: the first reason found is enough to act on it.
  const report = (file: string, line: number, kind: string): void => {
    if (reported.has(`${file}:${line}`)) return;
    reported.add(`${file}:${line}`);
    findings.push(
      fail(
        "committed-secrets",
        `${file}:${line}: ${kind} (value not shown)`,
        "remove it from the repository and rotate it (history keeps it); a test fixture goes in .preflightignore",
      ),
    );
  };
  for (const { file, text } of texts) {
    const base = path.posix.basename(file);
    if (ENV_FILE.test(base) && !TEMPLATE_SUFFIX.test(base)) {
      report(file, 1, "an environment file is committed");
    }
    const lines = text.split("\n");
    for (const [index, line] of lines.entries()) {
      const at = index + 1;
      if (PRIVATE_KEY.test(line) && PEM_BODY.test(lines[index + 1] ?? ""))
        report(file, at, "a PEM private key");
      // Real tokens are random (32 bytes, base64url); made-up test tokens ("AAAAbbbb…") are not.
      const prefixed = prefixPattern === null ? [] : [...line.matchAll(prefixPattern)];
      if (prefixed.some((m) => entropy(m[1] ?? "") >= 4)) {
        report(file, at, "a token with one of the project's token prefixes");
      }
      if (secretAssignment !== null) {
        secretAssignment.lastIndex = 0;
        for (const m of line.matchAll(secretAssignment)) {
          const quoted = (m[2] ?? "") !== "";
          const value = m[3] ?? "";
          if (
            (quoted || !CODE_FILE.test(file)) &&
            value.length >= 16 &&
            !isPlaceholder(value) &&
            !allowed(value) &&
            !/^[A-Za-z_.]+$/.test(value)
          ) {
            report(file, at, `a literal value for ${m[1]}`);
          }
        }
      }
      for (const m of line.matchAll(ASSIGNED_LITERAL)) {
        const name = m[1] ?? "";
        const value = m[2] ?? "";
        if (
          SECRET_LIKE_NAME.test(name) &&
          !/public/i.test(name) &&
          looksRandom(value) &&
          !isPlaceholder(value) &&
          !allowed(value)
        ) {
          report(file, at, `a high-entropy value assigned to ${name}`);
        }
      }
    }
  }
  const counted = `${texts.length} files scanned, ${ignored} left out by .preflightignore, ${skipped} binary or over 1 MiB`;
  if (findings.length === 0) findings.push(pass("committed-secrets", `no secret found (${counted})`));
  else {
    findings.push(
      fail(
        "committed-secrets",
        `${findings.length} finding(s) (${counted})`,
        "see the lines above; never commit secrets, set them with `wrangler secret put` or the deploy's secret store",
      ),
    );
  }
  return { findings, scanned: texts.length, ignored, skipped };
}
