import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { CryptoBackend } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { runNoiseVectors } from "../../protocol/noise/test-vectors.ts";
import { ROOT, readSharedVector, sharedVectorPath } from "../support/vectors.ts";

const FILE = "noise/cacophony-25519-ChaChaPoly-BLAKE2s.json";

describe.each([nobleBackend, nodeBackend] as CryptoBackend[])(
  "cacophony vectors on the $name backend",
  (backend) => {
    it("passes all 59 vectors: handshake, handshake_hash and the transport messages after it", () => {
      const report = runNoiseVectors(readSharedVector(FILE), backend);
      const failed = report.outcomes.filter((o) => !o.passed);
      expect(failed).toEqual([]);
      expect(report.outcomes.length).toBe(59);
      expect(report.otherSuites).toBe(0);
    });

    it("fails a vector whose expected ciphertext is altered (the runner can fail)", () => {
      const document = readSharedVector(FILE) as { vectors: { messages: { ciphertext: string }[] }[] };
      const message = document.vectors[10]?.messages[3];
      if (message === undefined) throw new Error("vector layout changed");
      message.ciphertext = `${message.ciphertext.slice(0, -2)}${message.ciphertext.endsWith("00") ? "01" : "00"}`;
      const report = runNoiseVectors(document, backend);
      expect(report.outcomes.filter((o) => !o.passed).length).toBe(1);
    });
  },
);

function runCli(file: string) {
  const result = spawnSync(
    process.execPath,
    [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), "scripts/noise-vectors.ts", file],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  const lines = result.stdout.trim().split("\n");
  return { status: result.status, last: lines[lines.length - 1], stdout: result.stdout };
}

describe("noise:vectors command", () => {
  it("prints `59 passed, 0 failed` last and exits 0 on the shared file", () => {
    const run = runCli(sharedVectorPath(FILE));
    expect(run.last).toBe("59 passed, 0 failed");
    expect(run.status).toBe(0);
  });

  it("exits non-zero when a vector fails or a vector of the suite cannot be run, and ignores other suites", () => {
    const document = readSharedVector(FILE) as { vectors: Record<string, unknown>[] };
    const first = document.vectors[0] as { handshake_hash: string };
    first.handshake_hash = "00".repeat(32);
    document.vectors.push({ protocol_name: "Noise_XXfallback_25519_ChaChaPoly_BLAKE2s", messages: [] });
    document.vectors.push({ protocol_name: "Noise_XX_448_AESGCM_SHA512", messages: [] });
    const file = path.join(tmpdir(), `wavry-vectors-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(document));
    const run = runCli(file);
    expect(run.last).toBe("58 passed, 2 failed");
    expect(run.stdout).toContain("ignored 1 vectors of other cipher suites");
    expect(run.status).toBe(1);
  });
});
