import { execFile } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { compactVerify, decodeProtectedHeader, importJWK } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import {
  LEASE_KEY_CERT_ISSUER,
  LEASE_KEY_CERT_TYP,
  parseLeaseKeyCertClaims,
} from "../../protocol/relay/lease.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TSX = path.join(ROOT, "node_modules/tsx/dist/cli.mjs");
const SCRIPT = path.join(ROOT, "scripts/wavry-admin.ts");
const dir = mkdtempSync(path.join(tmpdir(), "wavry-admin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as an operator would (tsx, a working directory of its own), without blocking the event loop. */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TSX, SCRIPT, ...args],
      { cwd: dir, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const KID = "lk_Q2VydGlmeU1lUGxlYXNlMA";

function leasePublicKey(): string {
  const x = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error("export");
  return x;
}

describe("wavry-admin", () => {
  it("prints usage for --help and exits 0", async () => {
    const r = await cli("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("master-keygen --out FILE");
    expect(r.stdout).toContain("certify-lease-key");
    expect(r.stdout).toContain("revoke-lease-key");
  });

  it("master-keygen writes a 0600 PKCS#8 key, prints its public key, and never overwrites", async () => {
    const r = await cli("master-keygen", "--out", "master.pem");
    expect(r.code, r.stderr).toBe(0);
    const file = path.join(dir, "master.pem");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pem = readFileSync(file, "utf8");
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const printed = r.stdout.trim();
    expect(printed).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(createPublicKey(pem).export({ format: "jwk" }).x).toBe(printed);
    // Nothing secret on either stream.
    expect(r.stdout + r.stderr).not.toContain("PRIVATE KEY");

    const again = await cli("master-keygen", "--out", "master.pem");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    expect(readFileSync(file, "utf8")).toBe(pem);
  });

  it("certify-lease-key prints a certificate that verifies with the master public key and parses", async () => {
    const keygen = await cli("master-keygen", "--out", "certify.pem");
    expect(keygen.code).toBe(0);
    const masterX = keygen.stdout.trim();
    const x = leasePublicKey();
    const r = await cli(
      "certify-lease-key",
      "--master-key",
      "certify.pem",
      "--kid",
      KID,
      "--public-key",
      x,
      "--days",
      "7",
    );
    expect(r.code, r.stderr).toBe(0);
    const certificate = r.stdout.trim();
    expect(decodeProtectedHeader(certificate)).toEqual({ alg: "EdDSA", typ: LEASE_KEY_CERT_TYP });
    const master = await importJWK({ kty: "OKP", crv: "Ed25519", x: masterX }, "EdDSA");
    const { payload } = await compactVerify(certificate, master, { algorithms: ["EdDSA"] });
    const claims = parseLeaseKeyCertClaims(JSON.parse(Buffer.from(payload).toString("utf8")));
    expect(claims).toMatchObject({
      iss: LEASE_KEY_CERT_ISSUER,
      sub: KID,
      jwk: { kty: "OKP", crv: "Ed25519", x },
    });
    expect((claims?.exp ?? 0) - (claims?.iat ?? 0)).toBe(7 * 86_400);
    expect(Math.abs((claims?.iat ?? 0) - Date.now() / 1000)).toBeLessThan(60);

    // Another master key's public half does not verify it.
    const other = await importJWK({ kty: "OKP", crv: "Ed25519", x: leasePublicKey() }, "EdDSA");
    await expect(compactVerify(certificate, other, { algorithms: ["EdDSA"] })).rejects.toThrow();
  });

  it("refuses bad commands and flags with exit 2 and a message, and failures with exit 1", async () => {
    const x = leasePublicKey();
    writeFileSync(path.join(dir, "token"), "wvadm_test-token-value\n", { mode: 0o600 });
    const certify = (...extra: string[]) => ["certify-lease-key", "--master-key", "certify.pem", ...extra];
    const usage: [string[], RegExp][] = [
      [[], /no command/],
      [["frobnicate"], /unknown command/],
      [["master-keygen"], /--out is required/],
      [["master-keygen", "--out", "x.pem", "--force"], /Unknown option/],
      [["master-keygen", "extra"], /positional/i],
      [certify("--kid", KID, "--public-key", x, "--days", "0"), /--days/],
      [certify("--kid", KID, "--public-key", x, "--days", "91"), /--days/],
      [certify("--kid", KID, "--public-key", x, "--days", "seven"), /--days/],
      [certify("--kid", KID, "--public-key", "not-a-key"), /--public-key/],
      [certify("--kid", "bad kid!", "--public-key", x), /--kid/],
      [
        [
          "revoke-lease-key",
          "--edge",
          "http://edge.example.com",
          "--admin-token-file",
          "token",
          "--kid",
          KID,
        ],
        /https/,
      ],
      [["revoke-lease-key", "--edge", "not a url", "--admin-token-file", "token", "--kid", KID], /--edge/],
    ];
    // One at a time: the machine is shared, and each run starts a Node process.
    for (const [args, message] of usage) {
      const r = await cli(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    const missing = await cli(
      "certify-lease-key",
      "--master-key",
      "nope.pem",
      "--kid",
      KID,
      "--public-key",
      x,
    );
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the master key/);
    expect(statSync(path.join(dir, "x.pem"), { throwIfNoEntry: false })).toBeUndefined();
  });

  it("revoke-lease-key calls the admin API with the token and reports the edge's answer", async () => {
    const token = "wvadm_revoke-test-token-0123456789";
    writeFileSync(path.join(dir, "admin-token"), `${token}\n`, { mode: 0o600 });
    const seen: { method: string | undefined; url: string | undefined; auth: string | undefined }[] = [];
    let status = 200;
    const server = createServer((req: IncomingMessage, res) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization });
      req.resume();
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(
        status === 200
          ? JSON.stringify({ kid: KID, status: "revoked" })
          : JSON.stringify({ error: { code: "not_found", message: "no such lease key" } }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const edge = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ok = await cli(
        "revoke-lease-key",
        "--edge",
        edge,
        "--admin-token-file",
        "admin-token",
        "--kid",
        KID,
      );
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(`revoked ${KID}`);
      expect(seen).toEqual([
        { method: "POST", url: `/v1/admin/lease-keys/${KID}/revoke`, auth: `Bearer ${token}` },
      ]);
      status = 404;
      const refused = await cli(
        "revoke-lease-key",
        "--edge",
        edge,
        "--admin-token-file",
        "admin-token",
        "--kid",
        KID,
      );
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/HTTP 404.*not_found/);
      for (const r of [ok, refused]) expect(r.stdout + r.stderr).not.toContain(token);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
