import { describe, expect, it } from "vitest";
import { findViolations, importsOf, type Rule, readTree } from "../support/import-graph.ts";
import { ROOT } from "../support/vectors.ts";

// DESIGN.md: control plane and data plane are separate, the relay cannot decrypt, protocol/ does no I/O.
const isNoiseOrTransport = (m: string) =>
  m.startsWith("protocol/noise/") || m.startsWith("protocol/transport/");
const canDecrypt = (m: string) =>
  isNoiseOrTransport(m) ||
  m.startsWith("protocol/crypto/") ||
  m.startsWith("@noble/ciphers") ||
  m === "noise-c.wasm";
const isIo = (m: string) =>
  m.startsWith("node:") ||
  ["fs", "net", "dgram", "http", "https", "child_process", "os", "crypto"].includes(m);

const RULES: readonly Rule[] = [
  { name: "edge/ must not reach Noise or transport code", from: "edge/", forbids: isNoiseOrTransport },
  { name: "durable/ must not reach Noise or transport code", from: "durable/", forbids: isNoiseOrTransport },
  { name: "relay-node/ must not reach anything that can decrypt", from: "relay-node/", forbids: canDecrypt },
  {
    name: "protocol/ must do no I/O",
    from: "protocol/",
    // The node:crypto backend is the one sanctioned exception: it is pure computation, used by the daemons.
    forbids: (m) => isIo(m) && m !== "node:crypto",
  },
];

// Globals that mean clock, randomness, environment or network: not allowed anywhere in protocol/.
const IMPURE =
  /\bDate\.now\(|new Date\(|Math\.random\(|\bprocess\.|getRandomValues\(|\bfetch\(|setTimeout\(|setInterval\(|performance\.now\(/;

describe("trust boundaries (import graph)", () => {
  const tree = readTree(ROOT, ["protocol", "edge", "durable", "relay-node", "endpoint"]);

  it("holds on the real tree", () => {
    expect(tree.size).toBeGreaterThan(10);
    expect(findViolations(tree, RULES)).toEqual([]);
  });

  it("node:crypto appears in protocol/ only in the node backend", () => {
    const users = [...tree].filter(
      ([file, src]) => file.startsWith("protocol/") && importsOf(src).some((s) => s.startsWith("node:")),
    );
    expect(users.map(([file]) => file)).toEqual(["protocol/crypto/node-backend.ts"]);
  });

  it("protocol/ never reads the clock, randomness, the environment or the network itself", () => {
    const offenders = [...tree].filter(
      ([file, src]) =>
        file.startsWith("protocol/") && IMPURE.test(src.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "")),
    );
    expect(offenders.map(([file]) => file)).toEqual([]);
  });

  it("the relay never names a decryption API", () => {
    const offenders = [...tree].filter(
      ([file, src]) =>
        file.startsWith("relay-node/") &&
        /createDecipheriv|aeadOpen|decryptWithAd|chacha20poly1305/.test(src),
    );
    expect(offenders.map(([file]) => file)).toEqual([]);
  });

  it("catches violations, transitively, on a synthetic tree (the checker can fail)", () => {
    const synthetic = new Map([
      ["edge/routes.ts", 'import { x } from "./helper.ts";'],
      ["edge/helper.ts", 'export { y } from "../protocol/transport/session.ts";'],
      ["protocol/transport/session.ts", "export const y = 1;"],
      [
        "relay-node/loop.ts",
        'import type { Backend } from "../protocol/crypto/backend.ts";\nconst m = await import("@noble/ciphers/chacha.js");',
      ],
      ["protocol/crypto/backend.ts", "export type Backend = 1;"],
      ["protocol/clock.ts", 'import { readFileSync } from "node:fs";'],
      ["durable/room.ts", 'import "../protocol/noise/handshake-state.ts";'],
    ]);
    const found = findViolations(synthetic, RULES);
    expect(found).toContain(
      "edge/ must not reach Noise or transport code: edge/routes.ts -> edge/helper.ts -> protocol/transport/session.ts",
    );
    expect(found).toContain(
      "relay-node/ must not reach anything that can decrypt: relay-node/loop.ts -> protocol/crypto/backend.ts",
    );
    expect(found).toContain(
      "relay-node/ must not reach anything that can decrypt: relay-node/loop.ts -> @noble/ciphers/chacha.js",
    );
    expect(found).toContain("protocol/ must do no I/O: protocol/clock.ts -> node:fs");
    expect(found).toContain(
      "durable/ must not reach Noise or transport code: durable/room.ts -> protocol/noise/handshake-state.ts",
    );
  });
});
