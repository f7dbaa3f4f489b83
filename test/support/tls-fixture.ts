import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A throwaway certificate chain for TLS tests, made with the `openssl` CLI: a root CA and a leaf for 127.0.0.1 and
 * localhost signed by it, with their SHA-256 fingerprints as `openssl x509 -outform DER | openssl dgst -sha256`
 * prints them (computed by openssl, not by the code under test).
 */
export interface TlsChain {
  readonly caPem: string;
  readonly leafPem: string;
  readonly leafKeyPem: string;
  /** Lowercase hex. */
  readonly caSha256: string;
  readonly leafSha256: string;
  /** Removes the temporary directory. */
  cleanup(): void;
}

function openssl(args: readonly string[], cwd: string, input?: Buffer): Buffer {
  return execFileSync("openssl", args, { cwd, input, stdio: ["pipe", "pipe", "pipe"] });
}

function derSha256(pemFile: string, cwd: string): string {
  const der = openssl(["x509", "-in", pemFile, "-outform", "DER"], cwd);
  // Prints e.g. "SHA2-256(stdin)= 3f…" (OpenSSL 3) or "(stdin)= 3f…" (1.1).
  const printed = openssl(["dgst", "-sha256"], cwd, der).toString("utf8").trim();
  const hex = printed.split("= ").pop() ?? "";
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`unexpected openssl dgst output: ${printed}`);
  return hex;
}

/** Generates a fresh root → leaf chain in a temporary directory; fails with the install command without openssl. */
export function makeTlsChain(): TlsChain {
  const probe = spawnSync("openssl", ["version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error("these tests need the openssl CLI: install it with `sudo apt-get install -y openssl`");
  }
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-tls-"));
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
      [
        "req",
        "-x509",
        ...ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Wavry Test Root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      dir,
    );
    openssl(["req", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"], dir);
    writeFileSync(
      path.join(dir, "leaf.ext"),
      [
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "",
      ].join("\n"),
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
      ],
      dir,
    );
    return {
      caPem: readFileSync(path.join(dir, "ca.pem"), "utf8"),
      leafPem: readFileSync(path.join(dir, "leaf.pem"), "utf8"),
      leafKeyPem: readFileSync(path.join(dir, "leaf.key"), "utf8"),
      caSha256: derSha256("ca.pem", dir),
      leafSha256: derSha256("leaf.pem", dir),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
