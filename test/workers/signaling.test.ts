import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { Alert } from "../../durable/monitor/alert-store.ts";
import { DEFAULT_THRESHOLDS } from "../../durable/monitor/rules.ts";
import {
  addressRoom,
  deviceRoom,
  MAX_SOCKETS_PER_ADDRESS,
  MAX_SOCKETS_PER_DEVICE,
} from "../../durable/signaling/rooms.ts";
import { base64urlDecode, base64urlEncode } from "../../edge/security/tokens-util.ts";
import { MONITOR_NAME } from "../../edge/services/monitor.ts";
import { assignRelay, type RelayAssignment } from "../../edge/services/relay-assignment.ts";
import { signalUrl } from "../../edge/services/signaling.ts";
import { issueToken, TokenKind } from "../../edge/services/tokens.ts";
import { generateEd25519KeyPair, generateX25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { deviceIdFromKeys } from "../../protocol/identity/device-id.ts";
import {
  AUTO_PING_TEXT,
  AUTO_PONG_TEXT,
  type ServerMessage,
  type ServerMessageType,
  SIGNAL_CLOSE,
  SIGNAL_LIMITS,
} from "../../protocol/signaling/messages.ts";
import { newUser, type TestUser, testConfig } from "./fixtures.ts";
import { BOOTSTRAP, call, freshAddress } from "./helpers.ts";

// ---- Fixtures: users, devices and tokens without the full enrollment flow (rows + issueToken) -------------------

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

const config = testConfig;

type User = TestUser;

interface Device {
  readonly deviceId: string;
  readonly userId: string;
  readonly x25519: string;
  readonly token: string;
}

async function newDevice(user: User): Promise<Device> {
  const x = generateX25519KeyPair(nobleBackend, random);
  const ed = generateEd25519KeyPair(nobleBackend, random);
  const deviceId = deviceIdFromKeys(x.publicKey, ed.publicKey);
  const now = Date.now();
  await env.DB.prepare(
    `INSERT INTO devices (id, user_id, name, x25519_public_key, ed25519_public_key, created_at)
     VALUES (?1, ?2, 'test device', ?3, ?4, ?5)`,
  )
    .bind(deviceId, user.userId, base64urlEncode(x.publicKey), base64urlEncode(ed.publicKey), now)
    .run();
  const issued = await issueToken(
    env.DB,
    config(),
    TokenKind.deviceAccess,
    deviceId,
    [],
    { uid: user.userId },
    now,
  );
  return { deviceId, userId: user.userId, x25519: base64urlEncode(x.publicKey), token: issued.token };
}

async function grant(host: Device, grantee: Device): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO grants (id, owner_user_id, host_device_id, grantee_device_id, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5)`,
  )
    .bind(`g_${crypto.randomUUID()}`, host.userId, host.deviceId, grantee.deviceId, Date.now())
    .run();
}

/** A device id nobody enrolled. */
function ghostId(): string {
  return deviceIdFromKeys(random(32), random(32));
}

// ---- WebSocket client ---------------------------------------------------------------------------------------------

interface Client {
  readonly ws: WebSocket;
  /** Every message received, in order. */
  readonly received: ServerMessage[];
  readonly closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  /** The next not-yet-taken message of `type` (waits up to 2 s). */
  next<T extends ServerMessageType>(type: T): Promise<Extract<ServerMessage, { type: T }>>;
  /** Raw text of every message received. */
  readonly texts: string[];
}

function client(ws: WebSocket): Client {
  const received: ServerMessage[] = [];
  const texts: string[] = [];
  const taken = new Set<number>();
  const waiters: (() => void)[] = [];
  let resolveClosed: (value: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    resolveClosed = resolve;
  });
  ws.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : "<binary>";
    texts.push(text);
    received.push(JSON.parse(text) as ServerMessage);
    for (const wake of waiters.splice(0)) wake();
  });
  ws.addEventListener("close", (event) => {
    resolveClosed({ code: event.code, reason: event.reason });
    for (const wake of waiters.splice(0)) wake();
  });
  ws.accept();
  return {
    ws,
    received,
    texts,
    closed,
    send: (message) => ws.send(typeof message === "string" ? message : JSON.stringify(message)),
    async next<T extends ServerMessageType>(type: T) {
      const deadline = Date.now() + 2000;
      for (;;) {
        const index = received.findIndex((m, i) => m.type === type && !taken.has(i));
        if (index >= 0) {
          taken.add(index);
          return received[index] as Extract<ServerMessage, { type: T }>;
        }
        if (Date.now() > deadline) {
          throw new Error(`no ${type} message; got ${received.map((m) => m.type).join(", ")}`);
        }
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(50)]);
      }
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits (up to 2 s) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

interface ConnectOptions {
  readonly address?: string;
  readonly token?: string | null;
  readonly ticket?: string;
  readonly headers?: Record<string, string>;
}

async function upgrade(device: Device | null, options: ConnectOptions = {}): Promise<Response> {
  const headers: Record<string, string> = {
    Upgrade: "websocket",
    "CF-Connecting-IP": options.address ?? freshAddress(),
    ...options.headers,
  };
  const token = options.token === undefined ? device?.token : options.token;
  if (token !== null && token !== undefined && options.ticket === undefined)
    headers.Authorization = `Bearer ${token}`;
  const query = options.ticket === undefined ? "" : `?ticket=${encodeURIComponent(options.ticket)}`;
  return exports.default.fetch(`https://edge.test/v1/signal${query}`, { headers });
}

/** Connects, checks the hello, and (unless `quiet`) sends a first ping so the socket counts as online. */
async function connect(device: Device, options: ConnectOptions & { quiet?: boolean } = {}): Promise<Client> {
  const res = await upgrade(device, options);
  expect(res.status).toBe(101);
  if (res.webSocket === null) throw new Error("no WebSocket in the 101 response");
  const c = client(res.webSocket);
  const hello = await c.next("hello");
  expect(hello.deviceId).toBe(device.deviceId);
  if (options.quiet !== true) {
    c.send({ v: 1, type: "ping", id: "first" });
    await c.next("pong");
  }
  return c;
}

async function stats(deviceId: string) {
  return deviceRoom(env, deviceId).stats();
}

/** Replaces a room's clock by a fixed time (the room's timers read only this clock). */
async function setClock(deviceId: string, now: number): Promise<void> {
  await runInDurableObject(deviceRoom(env, deviceId), (room) => {
    room.clock = { now: () => now };
  });
}

/** Requests a session from `from` to `to` and returns the session id once the host accepted. */
async function establish(clientSide: Client, hostSide: Client, to: Device, id = "req") {
  clientSide.send({ v: 1, type: "session.request", id, to: to.deviceId, candidates: ["192.0.2.10:5000"] });
  const offer = await hostSide.next("session.offer");
  hostSide.send({
    v: 1,
    type: "session.accept",
    sessionId: offer.sessionId,
    candidates: ["198.51.100.7:6000"],
  });
  const accepted = await clientSide.next("session.accepted");
  return { offer, accepted };
}

async function noMore(c: Client, type: ServerMessageType, ms = 150): Promise<void> {
  await sleep(ms);
  expect(c.received.filter((m) => m.type === type)).toEqual([]);
}

let adminToken = "";

beforeAll(async () => {
  const r = await call<{ token: string }>("/v1/admin/bootstrap", {
    body: { name: "signaling tests" },
    headers: { Authorization: `Bearer ${BOOTSTRAP}` },
    address: freshAddress(),
  });
  expect(r.status).toBe(201);
  adminToken = r.json.token;
});

// ---- Tests --------------------------------------------------------------------------------------------------------

describe("signaling: authentication before the upgrade", () => {
  it("refuses a request that is not an upgrade with 426, even with a valid token", async () => {
    const device = await newDevice(await newUser("signal"));
    const r = await call("/v1/signal", { token: device.token, address: freshAddress() });
    expect(r.status).toBe(426);
    expect(r.headers.get("upgrade")).toBe("websocket");
  });

  it("refuses the upgrade without a token, with a bad token, and for a revoked device", async () => {
    const user = await newUser("signal");
    const device = await newDevice(user);
    const none = await upgrade(device, { token: null });
    expect(none.status).toBe(401);
    expect(none.webSocket).toBeNull();
    const forged = `${device.token.slice(0, -4)}${device.token.endsWith("AAAA") ? "BAAA" : "AAAA"}`;
    expect((await upgrade(device, { token: forged })).status).toBe(401);
    // A user token is not a device token.
    expect((await upgrade(device, { token: user.token })).status).toBe(401);
    await env.DB.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?")
      .bind(Date.now(), device.deviceId)
      .run();
    const revoked = await upgrade(device);
    expect(revoked.status).toBe(401);
    expect(await revoked.json()).toEqual({
      error: { code: "invalid_token", message: "invalid or expired token" },
    });
  });

  it("authenticates as the token's device whatever identity headers the client adds", async () => {
    const mine = await newDevice(await newUser("signal"));
    const other = await newDevice(await newUser("signal"));
    const c = await connect(mine, {
      headers: { "x-wavry-room-device": other.deviceId, "x-wavry-room-user": other.userId },
    });
    expect(c.received[0]).toMatchObject({ type: "hello", deviceId: mine.deviceId });
    expect((await stats(other.deviceId)).sockets).toBe(0);
    // A browser page from an origin that is not allowed cannot open a socket, even with a valid credential.
    const foreign = await upgrade(mine, { headers: { Origin: "https://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(c.received[0]).toEqual({
      v: 1,
      type: "hello",
      deviceId: mine.deviceId,
      limits: {
        maxMessageBytes: 65_536,
        messagesPerSecond: SIGNAL_LIMITS.messagesPerSecond,
        messageBurst: SIGNAL_LIMITS.messageBurst,
        firstMessageTimeoutSecs: SIGNAL_LIMITS.firstMessageTimeoutSecs,
        idleTimeoutSecs: SIGNAL_LIMITS.idleTimeoutSecs,
        pingIntervalSecs: SIGNAL_LIMITS.pingIntervalSecs,
      },
    });
  });

  it("a browser ticket works once, within its lifetime only", async () => {
    const device = await newDevice(await newUser("signal"));
    const issue = async () => {
      const r = await call<{ ticket: string; expiresIn: number }>("/v1/signal/tickets", {
        method: "POST",
        token: device.token,
        address: freshAddress(),
      });
      expect(r.status).toBe(200);
      expect(r.json.expiresIn).toBeGreaterThan(0);
      expect(r.json.expiresIn).toBeLessThanOrEqual(60);
      return r.json;
    };
    expect((await call("/v1/signal/tickets", { method: "POST", address: freshAddress() })).status).toBe(401);

    const first = await issue();
    const res = await upgrade(device, { ticket: first.ticket });
    expect(res.status).toBe(101);
    const c = client(res.webSocket as WebSocket);
    expect((await c.next("hello")).deviceId).toBe(device.deviceId);
    // Single use.
    expect((await upgrade(device, { ticket: first.ticket })).status).toBe(401);

    // Expiry: the room's clock moves past the ticket's lifetime.
    const second = await issue();
    await setClock(device.deviceId, Date.now() + (second.expiresIn + 1) * 1000);
    expect((await upgrade(device, { ticket: second.ticket })).status).toBe(401);
    await setClock(device.deviceId, Date.now());

    // Malformed, foreign, and token-plus-ticket.
    expect((await upgrade(device, { ticket: "st1.nonsense" })).status).toBe(401);
    const other = await newDevice(await newUser("signal"));
    const forgedForOther = first.ticket.replace(device.deviceId, other.deviceId);
    expect((await upgrade(other, { ticket: forgedForOther })).status).toBe(401);
    const third = await issue();
    const both = await upgrade(device, {
      ticket: third.ticket,
      headers: { Authorization: `Bearer ${device.token}` },
    });
    expect(both.status).toBe(400);
  });

  it("a ticket of a device revoked after it was issued is refused", async () => {
    const user = await newUser("signal");
    const device = await newDevice(user);
    const r = await call<{ ticket: string }>("/v1/signal/tickets", {
      method: "POST",
      token: device.token,
      address: freshAddress(),
    });
    const revoked = await call(`/v1/devices/${device.deviceId}`, { method: "DELETE", token: user.token });
    expect(revoked.status).toBe(204);
    expect((await upgrade(device, { ticket: r.json.ticket })).status).toBe(401);
  });

  it("hands out a ws:// URL only in development, wss:// otherwise", async () => {
    const info = await call<{ url: string }>("/v1/signal/info", { address: freshAddress() });
    expect(info.status).toBe(200);
    expect(info.json.url).toBe(signalUrl(config()));
    expect(signalUrl({ issuer: "https://edge.example.com", environment: "production" })).toBe(
      "wss://edge.example.com/v1/signal",
    );
    expect(signalUrl({ issuer: "https://edge.example.com/base/", environment: "production" })).toBe(
      "wss://edge.example.com/base/v1/signal",
    );
    expect(signalUrl({ issuer: "http://127.0.0.1:8787", environment: "development" })).toBe(
      "ws://127.0.0.1:8787/v1/signal",
    );
    expect(() => signalUrl({ issuer: "http://edge.example.com", environment: "production" })).toThrow(
      /https/,
    );
  });
});

describe("signaling: sessions", () => {
  it("failed session reports reach the monitor: the one that completes a surge raises the handshake alert", async () => {
    // First among the session tests: no failed report has reached this file's Monitor before it.
    const monitor = env.MONITOR.get(env.MONITOR.idFromName(MONITOR_NAME));
    const handshakeAlerts = async () =>
      ((await monitor.list("all", 1000)) as Alert[]).filter((a) => a.rule === "handshake_failures");
    // One short of the threshold, fed straight in (each one a failed report, so failures are most reports)...
    const now = Date.now();
    await monitor.report(
      Array.from({ length: DEFAULT_THRESHOLDS.handshakeFailures.count - 1 }, () => ({
        kind: "session_report" as const,
        at: now,
        failed: true,
      })),
    );
    expect(await handshakeAlerts()).toHaveLength(0);
    // ...and the one that reaches it comes from an endpoint over its signaling socket.
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    const { offer } = await establish(c, h, host);
    c.send({
      v: 1,
      type: "session.report",
      sessionId: offer.sessionId,
      outcome: { result: "failed", reason: "handshake_timeout" },
    });
    for (let i = 0; i < 300 && (await handshakeAlerts()).length === 0; i++) await sleep(10);
    const [alert] = await handshakeAlerts();
    expect(alert).toMatchObject({ rule: "handshake_failures", subject: "all", severity: "critical" });
  });

  it("a host and a client of one user: the host gets the offer, the client the host's key and candidates", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    c.send({
      v: 1,
      type: "session.request",
      id: "r1",
      to: host.deviceId,
      candidates: ["192.0.2.10:5000", "[2001:db8::7]:5000"],
    });
    const offer = await h.next("session.offer");
    expect(offer).toEqual({
      v: 1,
      type: "session.offer",
      sessionId: expect.any(String),
      from: laptop.deviceId,
      fromX25519PublicKey: laptop.x25519,
      candidates: ["192.0.2.10:5000", "[2001:db8::7]:5000"],
      wantRelay: false,
    });
    const pending = await c.next("session.pending");
    expect(pending).toEqual({
      v: 1,
      type: "session.pending",
      id: "r1",
      sessionId: offer.sessionId,
      host: host.deviceId,
    });
    h.send({ v: 1, type: "session.accept", sessionId: offer.sessionId, candidates: ["198.51.100.7:6000"] });
    expect(await c.next("session.accepted")).toEqual({
      v: 1,
      type: "session.accepted",
      id: "r1",
      sessionId: offer.sessionId,
      host: host.deviceId,
      hostX25519PublicKey: host.x25519,
      candidates: ["198.51.100.7:6000"],
    });
    // 16 random bytes, and a fresh id per session.
    expect(base64urlDecode(offer.sessionId)?.length).toBe(16);
    const second = await establish(c, h, host, "r2");
    expect(second.offer.sessionId).not.toBe(offer.sessionId);
    expect(new Set(base64urlDecode(offer.sessionId)).size).toBeGreaterThan(4);

    // Trickled candidates reach the other side, tagged with the sender.
    c.send({ v: 1, type: "candidates", sessionId: offer.sessionId, candidates: ["203.0.113.9:7000"] });
    expect(await h.next("candidates")).toEqual({
      v: 1,
      type: "candidates",
      sessionId: offer.sessionId,
      from: laptop.deviceId,
      candidates: ["203.0.113.9:7000"],
    });
    // Each side reports; the reports are counted and kept.
    c.send({
      v: 1,
      type: "session.report",
      sessionId: offer.sessionId,
      outcome: { result: "established", path: "direct", handshakeMs: 42 },
    });
    h.send({
      v: 1,
      type: "session.report",
      id: "rep",
      sessionId: offer.sessionId,
      outcome: { result: "failed", reason: "handshake_timeout" },
    });
    h.send({
      v: 1,
      type: "session.report",
      id: "again",
      sessionId: offer.sessionId,
      outcome: { result: "failed", reason: "other" },
    });
    expect(await h.next("error")).toMatchObject({ code: "invalid_state", ref: "again" });
    const clientStats = await stats(laptop.deviceId);
    expect(clientStats.counters["report.established.direct"]).toBe(1);
    expect(clientStats.reports[0]).toMatchObject({
      sessionId: offer.sessionId,
      role: "client",
      result: "established",
      detail: "direct",
      handshakeMs: 42,
    });
    expect((await stats(host.deviceId)).counters["report.failed.handshake_timeout"]).toBe(1);

    // Cancel: the other side is told, and the session is gone on both.
    c.send({ v: 1, type: "session.cancel", sessionId: offer.sessionId });
    expect(await h.next("session.failed")).toEqual({
      v: 1,
      type: "session.failed",
      sessionId: offer.sessionId,
      reason: "cancelled",
    });
    h.send({ v: 1, type: "candidates", id: "late", sessionId: offer.sessionId, candidates: ["192.0.2.1:1"] });
    expect(await h.next("error")).toMatchObject({ code: "unknown_session", ref: "late" });
  });

  it("a host may reject; a device cannot act on a session that is not its own", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const intruder = await newDevice(await newUser("signal"));
    const h = await connect(host);
    const c = await connect(laptop);
    const i = await connect(intruder);
    c.send({ v: 1, type: "session.request", id: "q", to: host.deviceId, candidates: [] });
    const offer = await h.next("session.offer");
    // Someone else's session id is unknown to the intruder's room: nothing reaches either side.
    for (const type of ["session.accept", "candidates"] as const) {
      i.send({ v: 1, type, id: type, sessionId: offer.sessionId, candidates: ["192.0.2.66:66"] });
      expect(await i.next("error")).toMatchObject({ code: "unknown_session", ref: type });
    }
    i.send({ v: 1, type: "session.cancel", id: "c", sessionId: offer.sessionId });
    expect(await i.next("error")).toMatchObject({ code: "unknown_session" });
    // The client cannot accept its own request either.
    c.send({ v: 1, type: "session.accept", id: "self", sessionId: offer.sessionId, candidates: [] });
    expect(await c.next("error")).toMatchObject({ code: "unknown_session", ref: "self" });

    h.send({ v: 1, type: "session.reject", sessionId: offer.sessionId, reason: "busy" });
    expect(await c.next("session.rejected")).toEqual({
      v: 1,
      type: "session.rejected",
      id: "q",
      sessionId: offer.sessionId,
      reason: "busy",
    });
    await noMore(c, "session.accepted");
    await noMore(h, "candidates", 0);
  });

  it("unreachable, nonexistent and offline devices get the very same answer, and no offer is sent", async () => {
    const owner = await newUser("signal");
    const host = await newDevice(owner);
    const offlineOwn = await newDevice(owner);
    const stranger = await newDevice(await newUser("signal"));
    const h = await connect(host);
    const s = await connect(stranger);
    const sameUser = await connect(await newDevice(owner));

    const answers: string[] = [];
    for (const to of [host.deviceId, ghostId(), stranger.deviceId]) {
      s.send({ v: 1, type: "session.request", id: "same", to, candidates: ["192.0.2.1:1000"] });
      await s.next("session.failed");
      answers.push(s.texts.at(-1) ?? "");
    }
    // Another user's device that exists and is online, one that does not exist, and oneself.
    sameUser.send({ v: 1, type: "session.request", id: "same", to: offlineOwn.deviceId, candidates: [] });
    await sameUser.next("session.failed");
    answers.push(sameUser.texts.at(-1) ?? "");
    expect(new Set(answers).size).toBe(1);
    expect(JSON.parse(answers[0] ?? "")).toEqual({
      v: 1,
      type: "session.failed",
      id: "same",
      reason: "unreachable",
    });
    await noMore(h, "session.offer");
    expect((await stats(host.deviceId)).openSessions).toBe(0);
    expect((await stats(stranger.deviceId)).openSessions).toBe(0);
    expect((await stats(stranger.deviceId)).counters["session.unreachable"]).toBe(3);
  });

  it("a grant from the host's owner lets another user's device reach the host; revoking it stops that", async () => {
    const owner = await newUser("signal");
    const host = await newDevice(owner);
    const friend = await newDevice(await newUser("signal"));
    const h = await connect(host);
    const f = await connect(friend);
    await grant(host, friend);
    const { offer, accepted } = await establish(f, h, host);
    expect(offer.from).toBe(friend.deviceId);
    expect(offer.fromX25519PublicKey).toBe(friend.x25519);
    expect(accepted.hostX25519PublicKey).toBe(host.x25519);
    // The grant lets the friend reach the host, not the other way round.
    h.send({ v: 1, type: "session.request", id: "back", to: friend.deviceId, candidates: [] });
    expect(await h.next("session.failed")).toMatchObject({ reason: "unreachable" });
    await env.DB.prepare("UPDATE grants SET revoked_at = ? WHERE host_device_id = ?")
      .bind(Date.now(), host.deviceId)
      .run();
    f.send({ v: 1, type: "session.request", id: "after", to: host.deviceId, candidates: [] });
    expect(await f.next("session.failed")).toEqual({
      v: 1,
      type: "session.failed",
      id: "after",
      reason: "unreachable",
    });
  });

  it("presence lists only devices the asker may reach that are online", async () => {
    const owner = await newUser("signal");
    const asker = await newDevice(owner);
    const ownOnline = await newDevice(owner);
    const ownOffline = await newDevice(owner);
    const ownQuiet = await newDevice(owner);
    const otherUser = await newUser("signal");
    const strangerOnline = await newDevice(otherUser);
    const grantedOnline = await newDevice(otherUser);
    await grant(grantedOnline, asker);
    const a = await connect(asker);
    await connect(ownOnline);
    await connect(strangerOnline);
    await connect(grantedOnline);
    // Connected but has sent nothing yet: not online.
    await connect(ownQuiet, { quiet: true });
    const ghost = ghostId();
    a.send({
      v: 1,
      type: "presence.query",
      id: "p",
      devices: [
        strangerOnline.deviceId,
        ownOffline.deviceId,
        grantedOnline.deviceId,
        ghost,
        ownOnline.deviceId,
        ownQuiet.deviceId,
      ],
    });
    expect(await a.next("presence")).toEqual({
      v: 1,
      type: "presence",
      id: "p",
      online: [grantedOnline.deviceId, ownOnline.deviceId],
    });
  });

  it("relay.request answers a clear error when no relay can be assigned, and so does wantRelay", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    const { offer } = await establish(c, h, host);
    c.send({ v: 1, type: "relay.request", id: "relay-1", sessionId: offer.sessionId });
    expect(await c.next("error")).toEqual({
      v: 1,
      type: "error",
      code: "relay_unavailable",
      message: "no relay is available right now; keep trying the direct path and ask again later",
      ref: "relay-1",
    });
    // Before acceptance there is nothing to relay.
    c.send({ v: 1, type: "session.request", id: "w", to: host.deviceId, candidates: [], wantRelay: true });
    const wanted = await h.next("session.offer");
    expect(wanted.wantRelay).toBe(true);
    c.send({ v: 1, type: "relay.request", id: "early", sessionId: wanted.sessionId });
    expect(await c.next("error")).toMatchObject({ code: "invalid_state", ref: "early" });
    h.send({ v: 1, type: "session.accept", sessionId: wanted.sessionId, candidates: [] });
    await c.next("session.accepted");
    expect(await c.next("error")).toMatchObject({ code: "relay_unavailable", ref: "w" });
    expect((await stats(host.deviceId)).counters["relay.unavailable"]).toBe(1);
    await noMore(h, "relay.assigned", 0);
  });
  it("a relay assignment gives each peer its own lease, never the other's", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    const { offer } = await establish(c, h, host);
    const relayId = `r_${"a".repeat(26)}`;
    const assignment: RelayAssignment = {
      relayId,
      publicAddr: "relay.example.net:4500",
      leases: [
        { deviceId: host.deviceId, role: "host", lease: "aG9zdA.aG9zdC1jbGFpbXM.aG9zdC1zaWc" },
        { deviceId: laptop.deviceId, role: "client", lease: "Y2xp.Y2xpZW50LWNsYWltcw.Y2xpZW50LXNpZw" },
      ],
      expiresAt: 1_900_000_000,
    };
    // The registry's assignRelay, replaced in the client's room: only what the room does with a result is tested.
    const asked: Parameters<typeof assignRelay>[2][] = [];
    await runInDurableObject(deviceRoom(env, laptop.deviceId), (room) => {
      room.relays = async (_env, _config, request) => {
        asked.push(request);
        return assignment;
      };
    });
    try {
      c.send({ v: 1, type: "relay.request", id: "rl", sessionId: offer.sessionId });
      const mine = await c.next("relay.assigned");
      const theirs = await h.next("relay.assigned");
      const common = {
        v: 1,
        type: "relay.assigned",
        sessionId: offer.sessionId,
        relayId,
        relayAddr: "relay.example.net:4500",
        expiresAt: 1_900_000_000,
      };
      expect(mine).toEqual({ ...common, id: "rl", lease: "Y2xp.Y2xpZW50LWNsYWltcw.Y2xpZW50LXNpZw" });
      expect(theirs).toEqual({ ...common, lease: "aG9zdA.aG9zdC1jbGFpbXM.aG9zdC1zaWc" });
      expect(c.texts.join("\n")).not.toContain("aG9zdC1zaWc");
      expect(h.texts.join("\n")).not.toContain("Y2xpZW50LXNpZw");
      // The registry was asked for exactly these two peers, with their enrolled Ed25519 keys and the session id.
      const request = asked[0];
      expect(base64urlEncode(request?.sessionId ?? new Uint8Array())).toBe(offer.sessionId);
      expect(request?.peers).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ deviceId: host.deviceId, role: "host" }),
          expect.objectContaining({ deviceId: laptop.deviceId, role: "client" }),
        ]),
      );
      expect(request?.peers).toHaveLength(2);
      // Per-session budget of relay assignments.
      for (let i = 1; i < SIGNAL_LIMITS.maxRelayRequests; i++) {
        c.send({ v: 1, type: "relay.request", sessionId: offer.sessionId });
        await c.next("relay.assigned");
      }
      // (A relay request costs several bucket tokens: let the bucket refill so only the session budget speaks.)
      await setClock(laptop.deviceId, Date.now() + 10_000);
      c.send({ v: 1, type: "relay.request", id: "more", sessionId: offer.sessionId });
      expect(await c.next("error")).toMatchObject({ code: "limit_reached", ref: "more" });
    } finally {
      await runInDurableObject(deviceRoom(env, laptop.deviceId), (room) => {
        room.relays = assignRelay;
      });
    }
  });
});

describe("signaling: limits", () => {
  it("invalid messages and unknown types get an error and are counted by reason", async () => {
    const device = await newDevice(await newUser("signal"));
    const c = await connect(device);
    c.send("{not json");
    expect(await c.next("error")).toEqual({
      v: 1,
      type: "error",
      code: "not_json",
      message: "invalid message",
    });
    c.send({ v: 1, type: "session.steal", id: "u1" });
    expect(await c.next("error")).toEqual({
      v: 1,
      type: "error",
      code: "unknown_type",
      message: "unknown message type",
      ref: "u1",
    });
    c.send({ v: 1, type: "ping", id: "x1", extra: true });
    expect(await c.next("error")).toMatchObject({ code: "invalid_message", ref: "x1" });
    c.send({ v: 2, type: "ping" });
    expect(await c.next("error")).toMatchObject({ code: "unsupported_version" });
    c.ws.send(new Uint8Array([1, 2, 3]));
    expect(await c.next("error")).toMatchObject({ code: "binary_not_supported" });
    const counters = (await stats(device.deviceId)).counters;
    expect(counters).toMatchObject({
      "refused.not_json": 1,
      "refused.unknown_type": 1,
      "refused.invalid_message": 1,
      "refused.unsupported_version": 1,
      "refused.binary_not_supported": 1,
    });
    // A valid message resets the run of refusals; the socket stays open.
    c.send({ v: 1, type: "ping", id: "ok" });
    expect(await c.next("pong")).toEqual({ v: 1, type: "pong", id: "ok" });
  });

  it("too many refused messages in a row close the socket (1008)", async () => {
    const device = await newDevice(await newUser("signal"));
    const c = await connect(device);
    for (let i = 0; i < SIGNAL_LIMITS.maxConsecutiveRefusals; i++) c.send("nope");
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.policy);
    expect((await stats(device.deviceId)).counters["closed.policy"]).toBe(1);
  });

  it("an oversized message closes the socket (1009)", async () => {
    const device = await newDevice(await newUser("signal"));
    const c = await connect(device);
    c.send(`{"v":1,"type":"ping","id":"big","pad":"${"x".repeat(SIGNAL_LIMITS.maxMessageBytes)}"}`);
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.tooLarge);
    expect((await stats(device.deviceId)).counters["refused.too_large"]).toBe(1);
  });

  it("the per-socket rate limit is a token bucket refilled by the clock", async () => {
    const device = await newDevice(await newUser("signal"));
    const start = Date.now() + 1000;
    await setClock(device.deviceId, start);
    const c = await connect(device, { quiet: true });
    const pongs = () => c.received.filter((m) => m.type === "pong").length;
    const limited = () => c.received.filter((m) => m.type === "error" && m.code === "rate_limited");
    // The runtime may deliver a burst out of order, so count answers instead of matching them one by one.
    for (let i = 0; i <= SIGNAL_LIMITS.messageBurst; i++) c.send({ v: 1, type: "ping", id: `b${i}` });
    await until(() => pongs() + limited().length === SIGNAL_LIMITS.messageBurst + 1);
    expect(pongs()).toBe(SIGNAL_LIMITS.messageBurst);
    // Refused before it is parsed (that is the point of the bucket), so without a ref.
    expect(limited()).toEqual([
      { v: 1, type: "error", code: "rate_limited", message: "slow down: too many messages" },
    ]);
    // Time does not pass: still refused.
    c.send({ v: 1, type: "ping", id: "still" });
    await until(() => limited().length === 2);
    // One second later the bucket holds `messagesPerSecond` tokens again, and no more.
    await setClock(device.deviceId, start + 1000);
    for (let i = 0; i <= SIGNAL_LIMITS.messagesPerSecond; i++) c.send({ v: 1, type: "ping", id: `s${i}` });
    await until(
      () => pongs() + limited().length === SIGNAL_LIMITS.messageBurst + SIGNAL_LIMITS.messagesPerSecond + 3,
    );
    expect(pongs()).toBe(SIGNAL_LIMITS.messageBurst + SIGNAL_LIMITS.messagesPerSecond);
    expect(limited()).toHaveLength(3);
    expect((await stats(device.deviceId)).counters["refused.rate_limited"]).toBe(3);
    // Flooding on: the socket is closed once refusals run on.
    for (let i = 0; i < SIGNAL_LIMITS.maxConsecutiveRefusals; i++) c.send({ v: 1, type: "ping", id: "f" });
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.policy);
  });

  it("a socket that never sends a valid message is closed by the alarm after the first-message timeout", async () => {
    const device = await newDevice(await newUser("signal"));
    const start = Date.now();
    await setClock(device.deviceId, start);
    const c = await connect(device, { quiet: true });
    await setClock(device.deviceId, start + (SIGNAL_LIMITS.firstMessageTimeoutSecs - 1) * 1000);
    await runDurableObjectAlarm(deviceRoom(env, device.deviceId));
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    await setClock(device.deviceId, start + (SIGNAL_LIMITS.firstMessageTimeoutSecs + 1) * 1000);
    expect(await runDurableObjectAlarm(deviceRoom(env, device.deviceId))).toBe(true);
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.firstMessageTimeout);
  });

  it("an idle socket is closed by the alarm without sending anything", async () => {
    const device = await newDevice(await newUser("signal"));
    const start = Date.now();
    await setClock(device.deviceId, start);
    const c = await connect(device);
    // Still alive just before the idle deadline; the alarm reschedules itself.
    await setClock(device.deviceId, start + (SIGNAL_LIMITS.idleTimeoutSecs - 1) * 1000);
    await runDurableObjectAlarm(deviceRoom(env, device.deviceId));
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    await setClock(device.deviceId, start + (SIGNAL_LIMITS.idleTimeoutSecs + 1) * 1000);
    expect(await runDurableObjectAlarm(deviceRoom(env, device.deviceId))).toBe(true);
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.idleTimeout);
    expect((await stats(device.deviceId)).counters["closed.idle_timeout"]).toBe(1);
  });

  it("the auto-answered ping keeps a socket online and alive", async () => {
    const device = await newDevice(await newUser("signal"));
    const c = await connect(device, { quiet: true });
    c.send(AUTO_PING_TEXT);
    await c.next("pong");
    expect(c.texts.at(-1)).toBe(AUTO_PONG_TEXT);
    expect(await deviceRoom(env, device.deviceId).isOnline(device.deviceId)).toBe(true);
  });

  it("an unanswered request fails with timeout for the client when the alarm runs", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    c.send({ v: 1, type: "session.request", id: "slow", to: host.deviceId, candidates: [] });
    const offer = await h.next("session.offer");
    const later = Date.now() + (SIGNAL_LIMITS.offerTimeoutSecs + 1) * 1000;
    await setClock(laptop.deviceId, later);
    await runDurableObjectAlarm(deviceRoom(env, laptop.deviceId));
    expect(await c.next("session.failed")).toEqual({
      v: 1,
      type: "session.failed",
      id: "slow",
      sessionId: offer.sessionId,
      reason: "timeout",
    });
  });

  it("sockets per device are limited (429 on the upgrade)", async () => {
    const device = await newDevice(await newUser("signal"));
    const sockets: Client[] = [];
    for (let i = 0; i < MAX_SOCKETS_PER_DEVICE; i++) sockets.push(await connect(device));
    const refused = await upgrade(device);
    expect(refused.status).toBe(429);
    expect(refused.webSocket).toBeNull();
    // Closing one frees its place.
    sockets[0]?.ws.close(1000, "bye");
    await sleep(100);
    sockets.push(await connect(device));
  });

  it("sockets per address are limited across devices (429 on the upgrade)", async () => {
    const user = await newUser("signal");
    const address = freshAddress();
    const sockets: Client[] = [];
    const devices: Device[] = [];
    for (let i = 0; i < Math.ceil(MAX_SOCKETS_PER_ADDRESS / MAX_SOCKETS_PER_DEVICE) + 1; i++) {
      devices.push(await newDevice(user));
    }
    for (let i = 0; i < MAX_SOCKETS_PER_ADDRESS; i++) {
      const device = devices[Math.floor(i / MAX_SOCKETS_PER_DEVICE)] as Device;
      sockets.push(await connect(device, { address, quiet: true }));
    }
    const spare = devices.at(-1) as Device;
    expect((await upgrade(spare, { address })).status).toBe(429);
    // Another address is not affected.
    expect((await upgrade(spare)).status).toBe(101);
    sockets[0]?.ws.close(1000, "bye");
    await sleep(100);
    await connect(spare, { address });
  });
  it("an address slot whose socket is gone is reclaimed at the limit", async () => {
    const address = freshAddress();
    const slots = addressRoom(env, address);
    const past = Date.now() - 60_000;
    await runInDurableObject(slots, (room) => {
      room.clock = { now: () => past };
    });
    // Slots of sockets no room knows (as if a device room had been reset without reporting the closes).
    for (let i = 0; i < MAX_SOCKETS_PER_ADDRESS; i++) {
      expect(
        await slots.acquireSlot(address, base64urlEncode(random(16)), ghostId(), MAX_SOCKETS_PER_ADDRESS),
      ).toBe(true);
    }
    // Too young to reclaim: refused.
    expect(
      await slots.acquireSlot(address, base64urlEncode(random(16)), ghostId(), MAX_SOCKETS_PER_ADDRESS),
    ).toBe(false);
    await runInDurableObject(slots, (room) => {
      room.clock = { now: () => Date.now() };
    });
    await connect(await newDevice(await newUser("signal")), { address });
  });

  it("expired sessions of a device without sockets are dropped and its alarm stops", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    await establish(c, h, host);
    c.ws.close(1000, "bye");
    await c.closed;
    await sleep(100);
    // Accepted sessions outlive the socket (the peers may still need a relay); unanswered ones do not.
    expect((await stats(laptop.deviceId)).openSessions).toBe(1);
    await setClock(laptop.deviceId, Date.now() + (SIGNAL_LIMITS.sessionTtlSecs + 1) * 1000);
    expect(await runDurableObjectAlarm(deviceRoom(env, laptop.deviceId))).toBe(true);
    expect((await stats(laptop.deviceId)).openSessions).toBe(0);
    expect(await runDurableObjectAlarm(deviceRoom(env, laptop.deviceId))).toBe(false);
  });
});

describe("signaling: disconnect at once", () => {
  it("revoking a device (owner or admin) closes its sockets at once and tells its peers", async () => {
    const user = await newUser("signal");
    const host = await newDevice(user);
    const laptop = await newDevice(user);
    const h = await connect(host);
    const c = await connect(laptop);
    const { offer } = await establish(c, h, host);
    const r = await call(`/v1/devices/${laptop.deviceId}`, { method: "DELETE", token: user.token });
    expect(r.status).toBe(204);
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.revoked);
    expect(await h.next("session.failed")).toEqual({
      v: 1,
      type: "session.failed",
      sessionId: offer.sessionId,
      reason: "peer_gone",
    });

    const adminRevoked = await connect(await newDevice(user));
    const id = (adminRevoked.received[0] as { deviceId: string }).deviceId;
    const a = await call(`/v1/admin/devices/${id}/revoke`, {
      method: "POST",
      token: adminToken,
      address: freshAddress(),
    });
    expect(a.status).toBe(204);
    expect((await adminRevoked.closed).code).toBe(SIGNAL_CLOSE.revoked);
  });

  it("suspending a user closes every socket of every device of theirs", async () => {
    const user = await newUser("signal");
    const bystander = await connect(await newDevice(await newUser("signal")));
    const first = await connect(await newDevice(user));
    const second = await connect(await newDevice(user));
    const r = await call(`/v1/admin/users/${user.userId}/suspend`, {
      body: { reason: "abuse" },
      token: adminToken,
      address: freshAddress(),
    });
    expect(r.status).toBe(204);
    expect((await first.closed).code).toBe(SIGNAL_CLOSE.revoked);
    expect((await second.closed).code).toBe(SIGNAL_CLOSE.revoked);
    bystander.send({ v: 1, type: "ping", id: "still" });
    expect(await bystander.next("pong")).toMatchObject({ id: "still" });
  });

  it("a revocation that missed the room is caught by the periodic standing check", async () => {
    const device = await newDevice(await newUser("signal"));
    const c = await connect(device);
    // Revoked in D1 behind the edge's back (no disconnect call).
    await env.DB.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?")
      .bind(Date.now(), device.deviceId)
      .run();
    await setClock(device.deviceId, Date.now() + 6 * 60_000);
    // Keep it from the idle timeout so only the standing check can close it.
    await runInDurableObject(deviceRoom(env, device.deviceId), (_room, state) => {
      for (const ws of state.getWebSockets()) {
        const attachment = ws.deserializeAttachment() as { lastSeenAt: number };
        ws.serializeAttachment({ ...attachment, lastSeenAt: Date.now() + 6 * 60_000 });
      }
    });
    await runDurableObjectAlarm(deviceRoom(env, device.deviceId));
    expect((await c.closed).code).toBe(SIGNAL_CLOSE.revoked);
  });
});
