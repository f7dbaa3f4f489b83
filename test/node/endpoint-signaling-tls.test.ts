import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { SignalingClient, type SignalingClientOptions } from "../../endpoint/signaling/signaling-client.ts";
import { parseTlsPins, SignalingConfigError } from "../../endpoint/signaling/transport-policy.ts";
import { HELLO_LIMITS } from "../../protocol/signaling/messages.ts";
import { makeTlsChain, type TlsChain } from "../support/tls-fixture.ts";

/**
 * The signaling client's transport policy against a real TLS WebSocket server (node:https + ws) with a chain made by
 * openssl: pins are checked inside the handshake, so on a mismatch no upgrade request — and so no token — reaches
 * the server.
 */
const TOKEN = "test-device-token-never-to-be-sent-on-a-bad-pin";
const DEVICE = `d_${"a".repeat(26)}`;

let chain: TlsChain;
let server: Server;
let wss: WebSocketServer;
let url: string;
/** What the server saw: TCP connections, and the Authorization header of each upgrade request. */
const seen = { connections: 0, upgrades: [] as (string | undefined)[], requests: 0 };

beforeAll(async () => {
  chain = makeTlsChain();
  server = createServer({ cert: chain.leafPem, key: chain.leafKeyPem });
  server.on("connection", () => seen.connections++);
  server.on("request", (_request, response) => {
    seen.requests++;
    response.writeHead(404).end();
  });
  server.prependListener("upgrade", (request) => seen.upgrades.push(request.headers.authorization));
  wss = new WebSocketServer({ server });
  wss.on("connection", (socket) => {
    socket.send(JSON.stringify({ v: 1, type: "hello", deviceId: DEVICE, limits: HELLO_LIMITS }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/v1/signal`;
});

afterAll(async () => {
  for (const client of wss?.clients ?? []) client.terminate();
  await new Promise<void>((resolve) => wss?.close(() => resolve()));
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  chain?.cleanup();
});

function client(env: Record<string, string>, extra: Partial<SignalingClientOptions> = {}): SignalingClient {
  return new SignalingClient({
    url,
    getToken: async () => TOKEN,
    env: { WAVRY_ENVIRONMENT: "production", ...env },
    ca: chain.caPem,
    backoff: { initialMs: 5_000, maxMs: 5_000, factor: 1 },
    ...extra,
  });
}

function reset(): void {
  seen.connections = 0;
  seen.upgrades.length = 0;
  seen.requests = 0;
}

const colons = (hex: string) => (hex.toUpperCase().match(/../g) ?? []).join(":");

describe("signaling client over TLS with pins", () => {
  it("connects with the leaf's pin (colon form, upper case) and receives hello", async () => {
    reset();
    const c = client({ WAVRY_SIGNALING_TLS_PINS_SHA256: `${"ab".repeat(32)}, ${colons(chain.leafSha256)}` });
    try {
      const hello = c.next("hello", 5000);
      c.start();
      expect((await hello).deviceId).toBe(DEVICE);
      expect(seen.upgrades).toEqual([`Bearer ${TOKEN}`]);
    } finally {
      await c.close();
    }
  });

  it("connects with the root's pin", async () => {
    reset();
    const c = client({ WAVRY_SIGNALING_TLS_PINS_SHA256: chain.caSha256 });
    try {
      const hello = c.next("hello", 5000);
      c.start();
      await hello;
      expect(c.state).toBe("open");
    } finally {
      await c.close();
    }
  });

  it("connects without pins (normal validation against the given CA)", async () => {
    reset();
    const c = client({});
    try {
      const hello = c.next("hello", 5000);
      c.start();
      await hello;
    } finally {
      await c.close();
    }
  });

  it("refuses a wrong pin inside the handshake: no upgrade request, no token reaches the server", async () => {
    reset();
    const c = client({ WAVRY_SIGNALING_TLS_PINS_SHA256: "00".repeat(32) });
    try {
      const problem = c.next("problem", 5000);
      const closed = c.next("disconnected", 5000);
      c.start();
      expect((await problem).code).toBe("pin_mismatch");
      expect((await closed).retryInMs).toBeGreaterThan(0);
      // Give a request that was (wrongly) written time to arrive before checking that none did.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(seen.connections).toBe(1);
      expect(seen.upgrades).toEqual([]);
      expect(seen.requests).toBe(0);
      expect(c.stats().problems.pin_mismatch).toBe(1);
    } finally {
      await c.close();
    }
  });

  it("still validates the chain: without the test CA the connection fails as TLS, not as a pin", async () => {
    reset();
    const c = new SignalingClient({
      url,
      getToken: async () => TOKEN,
      env: { WAVRY_ENVIRONMENT: "production", WAVRY_SIGNALING_TLS_PINS_SHA256: chain.leafSha256 },
      backoff: { initialMs: 5_000, maxMs: 5_000, factor: 1 },
    });
    try {
      const problem = c.next("problem", 5000);
      c.start();
      expect((await problem).code).toBe("tls");
      expect(seen.upgrades).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("refuses a malformed pin list at start, naming the setting", () => {
    for (const pins of [
      "abc",
      `${chain.leafSha256},`,
      `${chain.leafSha256};${chain.caSha256}`,
      "zz".repeat(32),
    ]) {
      expect(() => client({ WAVRY_SIGNALING_TLS_PINS_SHA256: pins })).toThrow(
        /WAVRY_SIGNALING_TLS_PINS_SHA256/,
      );
    }
    expect(parseTlsPins(` ${colons(chain.leafSha256)} ,${chain.caSha256.toUpperCase()}`)).toEqual([
      chain.leafSha256,
      chain.caSha256,
    ]);
  });

  it("refuses ws:// in production, and the insecure flag in production", () => {
    const insecure = url.replace("wss:", "ws:");
    const attempt = (env: Record<string, string>) => () =>
      new SignalingClient({ url: insecure, getToken: async () => TOKEN, env });
    expect(attempt({ WAVRY_ENVIRONMENT: "production" })).toThrow(/wss:\/\/ URL in production/);
    // An unset environment counts as production.
    expect(attempt({})).toThrow(SignalingConfigError);
    expect(attempt({ WAVRY_ENVIRONMENT: "production", WAVRY_ALLOW_INSECURE_SIGNALING: "1" })).toThrow(
      /WAVRY_ALLOW_INSECURE_SIGNALING=1 is refused in production/,
    );
    // Even with a wss:// URL the flag is a production misconfiguration.
    expect(() => client({ WAVRY_ALLOW_INSECURE_SIGNALING: "1" })).toThrow(/WAVRY_ALLOW_INSECURE_SIGNALING/);
    // Outside production ws:// needs the flag.
    expect(attempt({ WAVRY_ENVIRONMENT: "development" })).toThrow(/WAVRY_ALLOW_INSECURE_SIGNALING=1/);
    expect(
      attempt({ WAVRY_ENVIRONMENT: "development", WAVRY_ALLOW_INSECURE_SIGNALING: "1" })(),
    ).toBeInstanceOf(SignalingClient);
  });
});
