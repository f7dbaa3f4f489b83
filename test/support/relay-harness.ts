import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Clock } from "../../relay-node/clock.ts";
import { loadConfig } from "../../relay-node/config.ts";
import { jsonLogger } from "../../relay-node/log.ts";
import { type RelayNode, startRelayNode } from "../../relay-node/relay-node.ts";
import type { FakeEdge } from "./relay-fake-edge.ts";
import type { LeaseAuthority } from "./relay-lease-kit.ts";

/**
 * Starts the real relay node in-process on 127.0.0.1 (UDP and health on ephemeral ports) against a fake edge, with
 * a key file in a fresh temporary directory, fast backoff, and every log line captured for assertions.
 */
export interface TestRelay {
  readonly node: RelayNode;
  readonly dir: string;
  readonly keyFile: string;
  /** Every log line the relay wrote, as text. */
  readonly logs: string[];
  /** GET on the health listener. */
  http(pathname: string): Promise<{ status: number; text: string }>;
  /** Stops the relay (keeps the directory). */
  stop(): Promise<void>;
  /** Stops the relay and removes the directory. */
  dispose(): Promise<void>;
}

/** The enrollment token test relays use (fake edges are started with it). */
export const ENROLLMENT_TOKEN = "test-enrollment-token-0123456789";

/** The environment a development relay against `edge` gets; `overrides` win. */
export function relayEnv(
  edge: FakeEdge,
  authority: LeaseAuthority | null,
  keyFile: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    WAVRY_ENVIRONMENT: "development",
    WAVRY_EDGE_URL: edge.url,
    WAVRY_RELAY_LISTEN: "127.0.0.1:0",
    WAVRY_RELAY_PUBLIC_ADDR: "127.0.0.1:7400",
    WAVRY_RELAY_HEALTH_LISTEN: "127.0.0.1:0",
    WAVRY_RELAY_KEY_FILE: keyFile,
    WAVRY_RELAY_ENROLLMENT_TOKEN: ENROLLMENT_TOKEN,
    WAVRY_RELAY_REGION: "test-1",
    // Every test peer is 127.0.0.1, so the per-IP handshake budget (10/s by default) is one for the whole file.
    WAVRY_RELAY_IP_HANDSHAKES_PER_SEC: "1000",
    WAVRY_RELAY_IP_HANDSHAKE_BURST: "1000",
    ...(authority === null ? {} : { WAVRY_RELAY_MASTER_PUBLIC_KEY: authority.masterPublicKey }),
    ...overrides,
  };
}

/** A fresh temporary directory (the caller removes it). */
export function newTempDir(): string {
  return mkdtempSync(path.join(tmpdir(), "wavry-relay-test-"));
}

/** Starts a relay node in-process; see {@link TestRelay}. */
export async function startTestRelay(options: {
  edge: FakeEdge;
  authority: LeaseAuthority | null;
  env?: Record<string, string>;
  dir?: string;
  clock?: Clock;
}): Promise<TestRelay> {
  const dir = options.dir ?? newTempDir();
  const keyFile = path.join(dir, "keys", "relay.key");
  const result = loadConfig(relayEnv(options.edge, options.authority, keyFile, options.env));
  if (!result.ok) throw new Error(`test relay config refused: ${result.problems.join("; ")}`);
  const logs: string[] = [];
  const clock = options.clock ?? { nowMs: () => Date.now() };
  const node = await startRelayNode({
    config: result.config,
    clock,
    log: jsonLogger((line) => logs.push(line), clock),
    backoff: { minMs: 50, maxMs: 400 },
    sweepIntervalMs: 100,
    processMetrics: false,
  });
  const base = `http://127.0.0.1:${node.healthAddress.port}`;
  return {
    node,
    dir,
    keyFile,
    logs,
    async http(pathname) {
      const response = await fetch(`${base}${pathname}`);
      return { status: response.status, text: await response.text() };
    },
    stop: () => node.stop(),
    async dispose() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` every 20 ms until it holds, or fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** 16 random bytes. */
export function newSessionId(): Uint8Array {
  return new Uint8Array(randomBytes(16));
}

/** The value of a Prometheus sample line such as `wavry_relay_drops_total{reason="malformed"}`. */
export function metricValue(text: string, sample: string): number | null {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return null;
}
