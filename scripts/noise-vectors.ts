/**
 * `npm run -s noise:vectors -- FILE [--backend noble|node|both]`
 *
 * Runs every Noise_*_25519_ChaChaPoly_BLAKE2s vector in FILE (Noise wiki test-vector JSON) and prints
 * one line per failure, then `N passed, M failed` as the last line. Exits non-zero when M > 0 or when a
 * vector of that suite could not be run (which counts as failed).
 */
import { readFileSync } from "node:fs";
import type { CryptoBackend } from "../protocol/crypto/backend.ts";
import { nobleBackend } from "../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../protocol/crypto/node-backend.ts";
import { runNoiseVectors } from "../protocol/noise/test-vectors.ts";

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run -s noise:vectors -- FILE [--backend noble|node|both]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let file: string | undefined;
let which = "both";
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg === "--backend") {
    which = args[++i] ?? usage("--backend needs a value");
  } else if (arg.startsWith("--")) {
    usage(`unknown option ${arg}`);
  } else if (file === undefined) {
    file = arg;
  } else {
    usage("only one FILE is accepted");
  }
}
if (file === undefined) usage("missing FILE");
const backends: CryptoBackend[] =
  which === "both"
    ? [nobleBackend, nodeBackend]
    : which === "noble"
      ? [nobleBackend]
      : which === "node"
        ? [nodeBackend]
        : usage(`unknown backend ${which}`);

let document: unknown;
try {
  document = JSON.parse(readFileSync(file, "utf8"));
} catch (error) {
  process.stderr.write(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.stdout.write("0 passed, 1 failed\n");
  process.exit(1);
}

// A vector counts once: it passes when it passes on every selected backend.
let passed = 0;
let failed = 0;
try {
  const reports = backends.map((backend) => ({ backend, report: runNoiseVectors(document, backend) }));
  const first = reports[0]?.report;
  if (first !== undefined && first.otherSuites > 0) {
    process.stdout.write(`ignored ${first.otherSuites} vectors of other cipher suites\n`);
  }
  const count = first?.outcomes.length ?? 0;
  for (let i = 0; i < count; i++) {
    const failures = reports.filter(({ report }) => report.outcomes[i]?.passed !== true);
    if (failures.length === 0) {
      passed++;
      continue;
    }
    failed++;
    for (const { backend, report } of failures) {
      const outcome = report.outcomes[i];
      process.stdout.write(
        `FAIL [${backend.name}] ${outcome?.name ?? `#${i}`}: ${outcome?.reason ?? "failed"}\n`,
      );
    }
  }
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  failed++;
}
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
