import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { loadEndpointConfig } from "../../endpoint/config.ts";
import { createIdentity, identityPath, loadIdentity } from "../../endpoint/identity/device-identity.ts";
import { PrivateFileError } from "../../endpoint/identity/private-file.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { deviceFingerprint, deviceIdFromKeys, isDeviceId } from "../../protocol/identity/device-id.ts";
import { tokenChallengeMessage } from "../../protocol/identity/device-proofs.ts";

const dirs: string[] = [];
function home(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-id-"));
  dirs.push(dir);
  return path.join(dir, "state");
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("endpoint device identity", () => {
  it("creates a 0600 file in a 0700 directory, and loads the same identity back", () => {
    const dir = home();
    const created = createIdentity(dir, 1_700_000_000_000);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(identityPath(dir)).mode & 0o777).toBe(0o600);
    const loaded = loadIdentity(dir);
    expect(loaded?.deviceId).toBe(created.deviceId);
    expect(loaded?.fingerprint).toBe(created.fingerprint);
    expect(loaded?.createdAt).toBe(1_700_000_000_000);
  });

  it("derives the id and fingerprint exactly as protocol/identity does", () => {
    const identity = createIdentity(home());
    expect(isDeviceId(identity.deviceId)).toBe(true);
    expect(identity.deviceId).toBe(deviceIdFromKeys(identity.x25519PublicKey, identity.ed25519PublicKey));
    expect(identity.fingerprint).toBe(deviceFingerprint(identity.x25519PublicKey, identity.ed25519PublicKey));
    const pair = identity.noiseStaticKeyPair();
    expect(nodeBackend.x25519PublicKey(pair.privateKey)).toEqual(identity.x25519PublicKey);
    const message = tokenChallengeMessage({
      challengeId: "c".repeat(22),
      challenge: new Uint8Array(32),
      deviceId: identity.deviceId,
    });
    expect(nodeBackend.ed25519Verify(identity.ed25519PublicKey, message, identity.sign(message))).toBe(true);
  });

  it("refuses to overwrite an existing identity", () => {
    const dir = home();
    const first = createIdentity(dir);
    const before = readFileSync(identityPath(dir), "utf8");
    expect(() => createIdentity(dir)).toThrow(/already exists/);
    expect(readFileSync(identityPath(dir), "utf8")).toBe(before);
    expect(loadIdentity(dir)?.deviceId).toBe(first.deviceId);
  });

  it.each([0o640, 0o604, 0o660])("refuses a file with mode %o, saying chmod 600", (mode) => {
    const dir = home();
    createIdentity(dir);
    chmodSync(identityPath(dir), mode);
    let caught: unknown;
    try {
      loadIdentity(dir);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PrivateFileError);
    expect((caught as PrivateFileError).code).toBe("insecure-permissions");
    expect((caught as PrivateFileError).message).toContain(`chmod 600 ${identityPath(dir)}`);
  });

  it("refuses a malformed file without quoting its content, and returns null when there is none", () => {
    const dir = home();
    expect(loadIdentity(dir)).toBeNull();
    createIdentity(dir);
    const secret = "SECRET-CONTENT-xyz";
    writeFileSync(identityPath(dir), `{"version":1,"x25519PrivateKey":"${secret}"}`, { mode: 0o600 });
    expect(() => loadIdentity(dir)).toThrow(/not a valid wavry identity file/);
    try {
      loadIdentity(dir);
    } catch (error) {
      expect(String(error)).not.toContain(secret);
    }
  });

  it("never exposes private keys through JSON or inspect", () => {
    const dir = home();
    const identity = createIdentity(dir);
    const file = JSON.parse(readFileSync(identityPath(dir), "utf8")) as Record<string, string>;
    const secrets = [file.x25519PrivateKey, file.ed25519PrivateKey];
    const shown = JSON.stringify(identity) + inspect(identity, { depth: 5, showHidden: true });
    for (const secret of secrets) {
      expect(typeof secret).toBe("string");
      expect(shown).not.toContain(secret);
      expect(shown).not.toContain(Buffer.from(secret ?? "", "base64url").toString("hex"));
    }
  });
});

describe("endpoint config", () => {
  it("defaults to production and ~/.wavry, and requires https in production", () => {
    const ok = loadEndpointConfig({}, "/home/u");
    expect(ok).toEqual({
      ok: true,
      config: { environment: "production", home: "/home/u/.wavry", edgeUrl: null },
    });
    const plain = loadEndpointConfig({ WAVRY_EDGE_URL: "http://127.0.0.1:8787" }, "/home/u");
    expect(plain.ok).toBe(false);
    if (!plain.ok) expect(plain.problems[0]).toMatch(/^WAVRY_EDGE_URL must use https/);
    const dev = loadEndpointConfig(
      { WAVRY_EDGE_URL: "http://127.0.0.1:8787", WAVRY_ENVIRONMENT: "development", WAVRY_HOME: "/srv/w" },
      "/home/u",
    );
    expect(dev.ok && dev.config.edgeUrl?.origin).toBe("http://127.0.0.1:8787");
    expect(dev.ok && dev.config.home).toBe("/srv/w");
  });

  it("names each bad setting", () => {
    const bad = loadEndpointConfig(
      { WAVRY_ENVIRONMENT: "prod", WAVRY_HOME: "relative/dir", WAVRY_EDGE_URL: "https://e.example/path" },
      "/home/u",
    );
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.problems.map((p) => p.split(" ")[0])).toEqual([
        "WAVRY_ENVIRONMENT",
        "WAVRY_HOME",
        "WAVRY_EDGE_URL",
      ]);
    }
  });
});
