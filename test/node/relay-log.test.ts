import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { utf8 } from "../../protocol/bytes.ts";
import { hashedValue } from "../../protocol/log/redaction.ts";
import { loadConfig } from "../../relay-node/config.ts";
import { jsonLogger } from "../../relay-node/log.ts";

/** Made at run time, so no token-shaped literal sits in the repository (the preflight scans for them). */
const FAKE_TOKEN = `wvrel_${randomBytes(24).toString("base64url")}`;

/**
 * The relay's log lines go through the shared helper: peer addresses become keyed hashes under
 * WAVRY_RELAY_LOG_HASH_KEY (or a random per-process key when it is unset), and secret-shaped text is redacted.
 */
const clock = { nowMs: () => Date.UTC(2026, 0, 1) };
const KEY = "relay-log-hash-key-for-tests-0123456789";

function lines(hashKey: string | null): Record<string, unknown>[] {
  const out: string[] = [];
  const log = jsonLogger((line) => out.push(line), clock, hashKey);
  log.log("info", "lease_present", "accepted", {
    peerAddr: "192.0.2.55",
    sessionId: "AAAAAAAAAAAAAAAAAAAAAA",
  });
  log.log("error", "relay_main", "bug", {
    error: `Error: token ${FAKE_TOKEN} from 192.0.2.55`,
  });
  return out.map((line) => {
    expect(line.endsWith("\n")).toBe(true);
    return JSON.parse(line) as Record<string, unknown>;
  });
}

describe("relay log lines", () => {
  it("hash peer addresses with the configured key and redact tokens in text", () => {
    const [present, bug] = lines(KEY);
    expect(present).toMatchObject({
      component: "relay",
      event: "lease_present",
      outcome: "accepted",
      peerAddr: hashedValue(utf8(KEY), "192.0.2.55"),
      sessionId: "AAAAAAAAAAAAAAAAAAAAAA",
    });
    expect(bug?.error).toBe(`Error: token [redacted] from ${hashedValue(utf8(KEY), "192.0.2.55")}`);
  });

  it("use one random key per process when none is configured: stable within the run, not the configured one", () => {
    const [a] = lines(null);
    const [b] = lines(null);
    expect(a?.peerAddr).toMatch(/^h:[0-9a-f]{32}$/);
    expect(a?.peerAddr).toBe(b?.peerAddr);
    expect(a?.peerAddr).not.toBe(hashedValue(utf8(KEY), "192.0.2.55"));
  });

  it("read WAVRY_RELAY_LOG_HASH_KEY from the environment: optional, 32 to 512 characters", () => {
    const base = {
      WAVRY_ENVIRONMENT: "development",
      WAVRY_EDGE_URL: "http://127.0.0.1:8787",
      WAVRY_RELAY_PUBLIC_ADDR: "127.0.0.1:7400",
      WAVRY_RELAY_KEY_FILE: "/tmp/relay.key",
      WAVRY_RELAY_REGION: "test-1",
      WAVRY_RELAY_INSECURE_DEV: "1",
    };
    const unset = loadConfig(base);
    expect(unset.ok && unset.config.logHashKey).toBe(null);
    const set = loadConfig({ ...base, WAVRY_RELAY_LOG_HASH_KEY: KEY });
    expect(set.ok && set.config.logHashKey).toBe(KEY);
    const short = loadConfig({ ...base, WAVRY_RELAY_LOG_HASH_KEY: "short" });
    expect(short.ok).toBe(false);
    expect(short.ok ? [] : short.problems).toEqual([expect.stringMatching(/^WAVRY_RELAY_LOG_HASH_KEY: /)]);
  });
});
