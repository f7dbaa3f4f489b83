import { generateKeyPairSync, sign } from "node:crypto";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { SignalingClient, type SignalingClock } from "../../endpoint/signaling/signaling-client.ts";
import { enrollmentProofMessage, tokenChallengeMessage } from "../../protocol/identity/device-proofs.ts";
import { AUTO_PING_TEXT, HELLO_LIMITS } from "../../protocol/signaling/messages.ts";
import { callEdge, type EdgeCallOptions, type LocalEdge, startLocalEdge } from "../support/local-edge.ts";
import { type Ed25519Pair, ed25519Pair } from "../support/relay-lease-kit.ts";

/**
 * The signaling client against the real edge (workerd via wrangler, real D1 migrations) on loopback, allowed to use
 * ws:// by development mode: hello, pings, a session request → offer → accept → accepted between two clients, and a
 * reconnect with a fresh token after the edge closes the socket. Invalid server messages are checked against a tiny
 * fake server, since the real edge never sends one.
 */
const DEV_ENV = { WAVRY_ENVIRONMENT: "development", WAVRY_ALLOW_INSECURE_SIGNALING: "1" };
const FAST_BACKOFF = { initialMs: 100, maxMs: 400, factor: 2 };
const PASSWORD = "correct horse battery staple";
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

let edge: LocalEdge;
let adminToken: string;
let signalUrl: string;

function api<T = Record<string, unknown>>(route: string, options: EdgeCallOptions = {}) {
  return callEdge<T>(edge.url, route, options);
}

interface Device {
  readonly id: string;
  readonly ed: Ed25519Pair;
  /** Mints a fresh device access token by signing a challenge (what the endpoint's token source does). */
  token(): Promise<string>;
}

async function newUser(): Promise<{ userId: string; token: string }> {
  const email = `signal-${crypto.randomUUID()}@example.com`;
  const reg = await api<{ userId: string }>("/v1/auth/register", { body: { email, password: PASSWORD } });
  expect(reg.status).toBe(201);
  const login = await api<{ accessToken: string }>("/v1/auth/login", { body: { email, password: PASSWORD } });
  expect(login.status).toBe(200);
  return { userId: reg.json.userId, token: login.json.accessToken };
}

async function enrollDevice(user: { userId: string; token: string }, name: string): Promise<Device> {
  const ed = ed25519Pair();
  const x = generateKeyPairSync("x25519").publicKey.export({ format: "jwk" }).x as string;
  const timestampMs = Date.now();
  const proof = sign(
    null,
    enrollmentProofMessage({
      userIdOrCode: user.userId,
      x25519Public: Buffer.from(x, "base64url"),
      ed25519Public: Buffer.from(ed.x, "base64url"),
      name,
      timestampMs,
    }),
    ed.privateKey,
  );
  const enrolled = await api<{ deviceId: string }>("/v1/devices", {
    token: user.token,
    body: { name, x25519PublicKey: x, ed25519PublicKey: ed.x, timestampMs, proof: b64url(proof) },
  });
  expect(enrolled.status).toBe(201);
  const deviceId = enrolled.json.deviceId;
  const token = async () => {
    const challenge = await api<{ challengeId: string; challenge: string }>("/v1/devices/challenge", {
      body: { deviceId },
    });
    const signature = sign(
      null,
      tokenChallengeMessage({
        challengeId: challenge.json.challengeId,
        challenge: Buffer.from(challenge.json.challenge, "base64url"),
        deviceId,
      }),
      ed.privateKey,
    );
    const minted = await api<{ accessToken: string }>("/v1/devices/token", {
      body: { challengeId: challenge.json.challengeId, signature: b64url(signature) },
    });
    if (minted.status !== 200) throw new Error(`device token: HTTP ${minted.status}`);
    return minted.json.accessToken;
  };
  return { id: deviceId, ed, token };
}

/** A client whose token source mints a new token per call, counting the calls. */
function clientFor(device: Device) {
  const calls = { tokens: 0 };
  const client = new SignalingClient({
    url: signalUrl,
    getToken: async () => {
      calls.tokens++;
      return await device.token();
    },
    env: DEV_ENV,
    backoff: FAST_BACKOFF,
  });
  return { client, calls };
}

describe("signaling client against the real edge", () => {
  let host: Device;
  let guest: Device;
  const open: SignalingClient[] = [];

  beforeAll(async () => {
    edge = await startLocalEdge();
    const root = await api<{ token: string }>("/v1/admin/bootstrap", {
      token: edge.bootstrapToken,
      body: { name: "signaling-e2e" },
    });
    expect(root.status).toBe(201);
    adminToken = root.json.token;
    const info = await api<{ url: string }>("/v1/signal/info");
    expect(info.status).toBe(200);
    signalUrl = info.json.url;
    expect(signalUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/signal$/);
    const user = await newUser();
    host = await enrollDevice(user, "host");
    guest = await enrollDevice(user, "guest");
  }, 120_000);

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await edge?.stop();
  });

  it("connects, receives hello for its device, and gets pongs", async () => {
    const { client, calls } = clientFor(host);
    open.push(client);
    const hello = client.next("hello", 10_000);
    const autoPong = client.next("pong", 10_000);
    client.start();
    const greeting = await hello;
    expect(greeting.deviceId).toBe(host.id);
    expect(greeting.limits.pingIntervalSecs).toBe(HELLO_LIMITS.pingIntervalSecs);
    // The ping sent on open (the edge's auto-response) …
    await autoPong;
    // … and one with an id, answered by the room with the id echoed.
    const pong = client.next("pong", 10_000, (m) => m.id === "probe-1");
    expect(client.ping({ id: "probe-1" })).toBe(true);
    await pong;
    expect(calls.tokens).toBe(1);
    expect(client.stats().invalid).toEqual({
      too_large: 0,
      not_json: 0,
      unsupported_version: 0,
      unknown_type: 0,
      invalid_message: 0,
    });
    await client.close();
    expect(client.state).toBe("closed");
  });

  it("sets up a session through two clients: request → offer → accept → accepted", async () => {
    const hostSide = clientFor(host).client;
    const guestSide = clientFor(guest).client;
    open.push(hostSide, guestSide);
    // Online once the first ping is answered.
    const hostReady = hostSide.next("pong", 10_000);
    const guestReady = guestSide.next("pong", 10_000);
    hostSide.start();
    guestSide.start();
    await Promise.all([hostReady, guestReady]);

    const offer = hostSide.next("session.offer", 10_000);
    const pending = guestSide.next("session.pending", 10_000);
    expect(guestSide.requestSession({ id: "req-1", to: host.id, candidates: ["127.0.0.1:40000"] })).toBe(
      true,
    );
    const offered = await offer;
    expect(offered.from).toBe(guest.id);
    expect(offered.candidates).toEqual(["127.0.0.1:40000"]);
    expect((await pending).sessionId).toBe(offered.sessionId);

    const accepted = guestSide.next("session.accepted", 10_000);
    expect(hostSide.acceptSession({ sessionId: offered.sessionId, candidates: ["127.0.0.1:40001"] })).toBe(
      true,
    );
    const answer = await accepted;
    expect(answer.sessionId).toBe(offered.sessionId);
    expect(answer.host).toBe(host.id);
    expect(answer.candidates).toEqual(["127.0.0.1:40001"]);

    // The edge's refusals arrive as typed `error` events, not as invalid frames.
    const refused = hostSide.next("error", 10_000, (m) => m.ref === "cancel-1");
    hostSide.cancelSession({ id: "cancel-1", sessionId: "A".repeat(22) });
    expect((await refused).code).toBe("unknown_session");
    await Promise.all([hostSide.close(), guestSide.close()]);
  });

  it("reconnects with a fresh token after the edge closes the socket (tokens revoked)", async () => {
    const user = await newUser();
    const device = await enrollDevice(user, "revoked");
    const { client, calls } = clientFor(device);
    open.push(client);
    // Wait for hello and the first pong together: the edge answers the client's opening ping without waking the
    // room, so that pong can arrive before hello and would be missed by a waiter registered after it.
    const first = client.next("hello", 10_000);
    const firstPong = client.next("pong", 10_000);
    client.start();
    await first;
    await firstPong;

    const dropped = client.next("disconnected", 10_000);
    const again = client.next("hello", 20_000, () => true);
    const revoked = await api(`/v1/admin/users/${user.userId}/revoke-tokens`, {
      token: adminToken,
      body: {},
    });
    expect(revoked.status).toBe(204);
    const closed = await dropped;
    expect(closed.code).toBe(4003);
    expect(closed.retryInMs).not.toBeNull();
    expect((await again).deviceId).toBe(device.id);
    expect(client.state).toBe("open");
    expect(calls.tokens).toBeGreaterThanOrEqual(2);
    expect(client.stats().connects).toBeGreaterThanOrEqual(2);
    await client.close();
  });

  it("reports an invalid token as unauthorized and keeps retrying", async () => {
    const client = new SignalingClient({
      url: signalUrl,
      getToken: async () => "not-a-token",
      env: DEV_ENV,
      backoff: FAST_BACKOFF,
    });
    open.push(client);
    const problem = client.next("problem", 10_000);
    const retry = client.next("disconnected", 10_000);
    client.start();
    expect((await problem).code).toBe("unauthorized");
    expect((await retry).retryInMs).toBeGreaterThan(0);
    await client.close();
  });
});

/** A clock whose timers fire only when the test advances it. */
function manualClock() {
  let now = 1_000_000;
  let nextId = 1;
  const timers = new Map<number, { at: number; callback: () => void }>();
  const clock: SignalingClock = {
    now: () => now,
    setTimeout: (callback, ms) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimeout: (handle) => {
      if (typeof handle === "number") timers.delete(handle);
    },
  };
  const advance = (ms: number) => {
    now += ms;
    const due = [...timers].filter(([, t]) => t.at <= now).sort((a, b) => a[1].at - b[1].at);
    for (const [id, timer] of due) {
      timers.delete(id);
      timer.callback();
    }
  };
  return { clock, advance };
}

describe("signaling client against a fake server", () => {
  let wss: WebSocketServer;
  let fakeUrl: string;
  const DEVICE = `d_${"b".repeat(25)}a`;
  let onConnection: (socket: WebSocket) => void = () => {};
  const received: { at: number; text: string }[] = [];

  beforeAll(async () => {
    wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    wss.on("connection", (socket) => {
      socket.on("message", (data) => received.push({ at: Date.now(), text: String(data) }));
      onConnection(socket);
    });
    await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
    fakeUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/signal`;
  });

  afterAll(async () => {
    for (const socket of wss.clients) socket.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });

  const hello = (pingIntervalSecs: number) =>
    JSON.stringify({ v: 1, type: "hello", deviceId: DEVICE, limits: { ...HELLO_LIMITS, pingIntervalSecs } });

  it("counts and drops invalid server messages, still delivering valid ones", async () => {
    onConnection = (socket) => {
      socket.send("{not json");
      socket.send(JSON.stringify({ v: 2, type: "pong" }));
      socket.send(JSON.stringify({ v: 1, type: "surprise" }));
      socket.send(JSON.stringify({ v: 1, type: "hello", deviceId: "nobody", limits: HELLO_LIMITS }));
      socket.send(JSON.stringify({ v: 1, type: "pong", extra: true }));
      socket.send(Buffer.from([1, 2, 3]), { binary: true });
      socket.send(JSON.stringify({ v: 1, type: "pong", pad: "x".repeat(70 * 1024) }).slice(0, 60_000));
      socket.send(hello(25));
    };
    const client = new SignalingClient({ url: fakeUrl, getToken: async () => "t", env: DEV_ENV });
    const invalid: string[] = [];
    client.on("invalid", (event) => invalid.push(event.code));
    let hellos = 0;
    client.on("hello", () => hellos++);
    try {
      const greeting = client.next("hello", 5000);
      client.start();
      expect((await greeting).deviceId).toBe(DEVICE);
      expect(hellos).toBe(1);
      expect(client.stats().invalid).toEqual({
        too_large: 0,
        not_json: 2,
        unsupported_version: 1,
        unknown_type: 1,
        invalid_message: 3,
      });
      expect(invalid).toHaveLength(7);
    } finally {
      await client.close();
    }
  });

  it("pings at hello's interval, detects a silent edge, and reconnects with backoff", async () => {
    let connections = 0;
    onConnection = (socket) => {
      connections++;
      // Answers nothing after hello: the client must notice within two ping intervals.
      socket.send(hello(1));
    };
    received.length = 0;
    let tokens = 0;
    const client = new SignalingClient({
      url: fakeUrl,
      getToken: async () => `token-${++tokens}`,
      env: DEV_ENV,
      backoff: FAST_BACKOFF,
      random: () => 0,
    });
    try {
      const stale = client.next("problem", 6000);
      const dropped = client.next("disconnected", 6000);
      client.start();
      expect((await stale).code).toBe("stale");
      // Equal jitter with random() = 0: half the first ceiling.
      expect((await dropped).retryInMs).toBe(FAST_BACKOFF.initialMs / 2);
      const pings = received.filter((r) => r.text === AUTO_PING_TEXT);
      // One on open, then one a second later; the socket is dropped once two pings in a row went unanswered.
      expect(pings.length).toBeGreaterThanOrEqual(2);
      const [firstPing, secondPing] = pings;
      expect(
        secondPing !== undefined && firstPing !== undefined && secondPing.at - firstPing.at,
      ).toBeGreaterThan(900);
      await client.next("hello", 5000);
      expect(connections).toBe(2);
      expect(tokens).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("runs its timers on an injected clock: pings every 25 s, drops a silent edge, retries after the backoff", async () => {
    onConnection = (socket) => socket.send(hello(25));
    received.length = 0;
    const manual = manualClock();
    const client = new SignalingClient({
      url: fakeUrl,
      getToken: async () => "t",
      env: DEV_ENV,
      clock: manual.clock,
      random: () => 1,
    });
    const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
    const pings = () => received.filter((r) => r.text === AUTO_PING_TEXT).length;
    try {
      const greeting = client.next("hello", 60_000);
      client.start();
      await greeting;
      await settle();
      expect(pings()).toBe(1);
      manual.advance(24_999);
      await settle();
      expect(pings()).toBe(1);
      manual.advance(1);
      await settle();
      expect(pings()).toBe(2);
      const dropped = client.next("disconnected", 600_000);
      manual.advance(25_000);
      await settle();
      expect(client.state).toBe("open");
      manual.advance(25_000);
      const closed = await dropped;
      expect(client.stats().problems.stale).toBe(1);
      // random() = 1: the full first ceiling of the default backoff.
      expect(closed.retryInMs).toBe(500);
      const again = client.next("hello", 600_000);
      manual.advance(499);
      await settle();
      expect(client.state).toBe("waiting");
      manual.advance(1);
      await again;
    } finally {
      await client.close();
    }
  });

  it("refuses to send an invalid message and returns false while not connected", () => {
    const client = new SignalingClient({ url: fakeUrl, getToken: async () => "t", env: DEV_ENV });
    expect(client.requestSession({ to: DEVICE, candidates: [] })).toBe(false);
    expect(() => client.requestSession({ to: "someone", candidates: [] })).toThrow(/invalid session.request/);
  });
});
