/**
 * wavry-admin: operator commands for the relay trust chain (DESIGN.md: Relay nodes; issue 4).
 *
 *   master-keygen      creates the relay master key pair (keep the private file offline)
 *   certify-lease-key  signs a lease-key certificate with the master key (run where the master key lives)
 *   revoke-lease-key   revokes a lease key through the edge's admin API
 *
 * Keys and tokens are never printed or logged. Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { closeSync, fchmodSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { compactVerify, importJWK, SignJWT } from "jose";
import {
  LEASE_KEY_CERT_ISSUER,
  LEASE_KEY_CERT_MAX_TTL_SECS,
  LEASE_KEY_CERT_TYP,
  parseLeaseKeyCertClaims,
} from "../protocol/relay/lease.ts";

const USAGE = `wavry-admin: relay master key and lease key operations

Usage:
  npm run wavry-admin -- master-keygen --out FILE
      Writes a new Ed25519 relay master private key to FILE (PKCS#8 PEM, mode 0600; an existing file is never
      overwritten) and prints its public key (base64url): set it as WAVRY_RELAY_MASTER_PUBLIC_KEY on every relay
      and on the edge.
  npm run wavry-admin -- certify-lease-key --master-key FILE --kid KID --public-key B64URL [--days N]
      Prints a certificate (compact JWS, typ ${LEASE_KEY_CERT_TYP}) for the lease key KID whose public key is
      B64URL (both from POST /v1/admin/lease-keys), valid N days (default 30, at most 90). Upload it with
      POST /v1/admin/lease-keys/KID/certificate.
  npm run wavry-admin -- revoke-lease-key --edge URL --admin-token-file FILE --kid KID
      Revokes the lease key KID (needs an admin token with the "keys" scope, read from FILE).
  npm run wavry-admin -- --help
`;

/** Bad flags or arguments: exit 2 with the usage. */
class UsageError extends Error {}
/** The command ran and failed: exit 1. */
class CommandError extends Error {}

const KID = /^[A-Za-z0-9_-]{1,64}$/;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const DEFAULT_CERT_DAYS = 30;
const MAX_CERT_DAYS = LEASE_KEY_CERT_MAX_TTL_SECS / 86_400;

function required(values: Record<string, string | boolean | undefined>, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

function parse(args: string[], names: readonly string[]) {
  try {
    return parseArgs({
      args,
      options: Object.fromEntries(names.map((n) => [n, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | undefined>;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : "bad arguments");
  }
}

/** Warns when a secret file is readable by others (like ssh, but a warning: the operator may have reasons). */
function warnIfShared(file: string, what: string): void {
  if ((statSync(file).mode & 0o077) !== 0) {
    process.stderr.write(`warning: ${what} ${file} is readable by other users; chmod 600 it\n`);
  }
}

function masterKeygen(args: string[]): void {
  const out = required(parse(args, ["out"]), "out");
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  let fd: number;
  try {
    // "wx": fail if the file exists, so an existing master key is never replaced by accident.
    fd = openSync(out, "wx", 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CommandError(
      code === "EEXIST"
        ? `${out} already exists; refusing to overwrite it`
        : `cannot create ${out} (${code})`,
    );
  }
  try {
    // The umask cannot widen 0600, but a pre-set ACL or odd umask handling could; set the mode explicitly.
    fchmodSync(fd, 0o600);
    writeSync(fd, pem);
  } finally {
    closeSync(fd);
  }
  process.stdout.write(`${publicKeyOf(publicKey)}\n`);
  process.stderr.write(
    `wrote the master private key to ${out} (mode 0600); keep it offline.\n` +
      "set the public key above as WAVRY_RELAY_MASTER_PUBLIC_KEY on every relay and on the edge.\n",
  );
}

function publicKeyOf(key: KeyObject): string {
  const x = key.export({ format: "jwk" }).x;
  if (typeof x !== "string" || !B64URL_32.test(x)) throw new CommandError("unexpected public key export");
  return x;
}

async function certifyLeaseKey(args: string[]): Promise<void> {
  const values = parse(args, ["master-key", "kid", "public-key", "days"]);
  const file = required(values, "master-key");
  const kid = required(values, "kid");
  const leasePublicKey = required(values, "public-key");
  const daysText = values.days ?? String(DEFAULT_CERT_DAYS);
  if (!KID.test(kid)) throw new UsageError("--kid must be 1 to 64 characters of A-Z a-z 0-9 _ -");
  if (!B64URL_32.test(leasePublicKey) || Buffer.from(leasePublicKey, "base64url").length !== 32) {
    throw new UsageError("--public-key must be a 32-byte Ed25519 public key in base64url (43 characters)");
  }
  const days = /^\d{1,3}$/.test(daysText) ? Number(daysText) : Number.NaN;
  if (!(days >= 1 && days <= MAX_CERT_DAYS)) {
    throw new UsageError(`--days must be a whole number from 1 to ${MAX_CERT_DAYS}`);
  }
  const certificate = await signLeaseKeyCertificate(
    loadMasterKey(file),
    kid,
    leasePublicKey,
    days,
    Date.now(),
  );
  process.stdout.write(`${certificate}\n`);
  process.stderr.write(
    `certified ${kid} for ${days} days; upload it: POST /v1/admin/lease-keys/${kid}/certificate {"certificate": ...}\n`,
  );
}

/**
 * Reads the relay master private key (PKCS#8 PEM, Ed25519) from `file`, warning when others can read it. Also used
 * by `wavry admin rotate-lease-key`. Throws an error whose message names the file, never key material.
 */
export function loadMasterKey(file: string): KeyObject {
  let master: KeyObject;
  try {
    warnIfShared(file, "master key file");
    master = createPrivateKey(readFileSync(file));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CommandError(
      `cannot read the master key from ${file}${code === undefined ? "" : ` (${code})`}`,
    );
  }
  if (master.asymmetricKeyType !== "ed25519") throw new CommandError(`${file} is not an Ed25519 private key`);
  return master;
}

/**
 * Signs the certificate of lease key `kid` (public key `leasePublicKey`, base64url) with the master key, valid
 * `days` days from `nowMs`, and checks it as relays will before returning it. Also used by
 * `wavry admin rotate-lease-key`.
 */
export async function signLeaseKeyCertificate(
  master: KeyObject,
  kid: string,
  leasePublicKey: string,
  days: number,
  nowMs: number,
): Promise<string> {
  if (!KID.test(kid)) throw new CommandError("the lease key id is malformed");
  if (!B64URL_32.test(leasePublicKey)) throw new CommandError("the lease public key is malformed");
  if (!(Number.isInteger(days) && days >= 1 && days <= MAX_CERT_DAYS))
    throw new CommandError(`a certificate lasts 1 to ${MAX_CERT_DAYS} days`);
  const jwk = master.export({ format: "jwk" });
  if (typeof jwk.x !== "string" || typeof jwk.d !== "string") throw new CommandError("unexpected key export");
  const signingKey = await importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d }, "EdDSA");
  const iat = Math.floor(nowMs / 1000);
  const certificate = await new SignJWT({ jwk: { kty: "OKP", crv: "Ed25519", x: leasePublicKey } })
    .setProtectedHeader({ alg: "EdDSA", typ: LEASE_KEY_CERT_TYP })
    .setIssuer(LEASE_KEY_CERT_ISSUER)
    .setSubject(kid)
    .setIssuedAt(iat)
    .setExpirationTime(iat + days * 86_400)
    .sign(signingKey);
  // Self-check: what relays will do with it (verify under the master public key, then parse the claims).
  const verifier = await importJWK(
    { kty: "OKP", crv: "Ed25519", x: publicKeyOf(createPublicKey(master)) },
    "EdDSA",
  );
  const { payload } = await compactVerify(certificate, verifier, { algorithms: ["EdDSA"] });
  if (parseLeaseKeyCertClaims(JSON.parse(Buffer.from(payload).toString("utf8"))) === null) {
    throw new CommandError("the certificate failed its own check");
  }
  return certificate;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

async function revokeLeaseKey(args: string[]): Promise<void> {
  const values = parse(args, ["edge", "admin-token-file", "kid"]);
  const edgeText = required(values, "edge");
  const tokenFile = required(values, "admin-token-file");
  const kid = required(values, "kid");
  if (!KID.test(kid)) throw new UsageError("--kid must be 1 to 64 characters of A-Z a-z 0-9 _ -");
  let edge: URL;
  try {
    edge = new URL(edgeText);
  } catch {
    throw new UsageError("--edge must be a URL such as https://edge.example.com");
  }
  // An admin token never crosses a network in clear; plain http is for a local edge only.
  if (edge.protocol !== "https:" && !(edge.protocol === "http:" && isLoopback(edge.hostname))) {
    throw new UsageError("--edge must be https (plain http only for a loopback address)");
  }
  let token: string;
  try {
    warnIfShared(tokenFile, "admin token file");
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (error) {
    throw new CommandError(`cannot read ${tokenFile} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (token === "" || /\s/.test(token)) throw new CommandError(`${tokenFile} does not hold one admin token`);
  const url = new URL(`/v1/admin/lease-keys/${kid}/revoke`, edge);
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    throw new CommandError(`cannot reach ${url.origin}`);
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text.slice(0, 200);
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error !== undefined) detail = `${body.error.code ?? "error"}: ${body.error.message ?? ""}`;
    } catch {
      // Not JSON (a proxy's page): show its start.
    }
    throw new CommandError(`the edge refused (HTTP ${response.status}) ${detail}`);
  }
  process.stdout.write(`revoked ${kid}; relays drop it with their next heartbeat\n`);
}

const COMMANDS: Record<string, (args: string[]) => void | Promise<void>> = {
  "master-keygen": masterKeygen,
  "certify-lease-key": certifyLeaseKey,
  "revoke-lease-key": revokeLeaseKey,
};

/** Runs one command; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  const run = command === undefined ? undefined : COMMANDS[command];
  try {
    if (run === undefined) {
      throw new UsageError(command === undefined ? "no command given" : `unknown command: ${command}`);
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(USAGE);
      return 0;
    }
    await run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    // Messages only (never a stack): node:crypto and jose errors name the problem, not key material.
    const message = error instanceof Error ? error.message : "unexpected failure";
    process.stderr.write(`error: ${message}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
