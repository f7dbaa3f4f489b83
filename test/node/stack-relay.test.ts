import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { enrollmentProofMessage, tokenChallengeMessage } from "../../protocol/identity/device-proofs.ts";
import { encodeForward, RelayFrameType, Role } from "../../protocol/wire/relay-frames.ts";
import {
  callEdge,
  type EdgeCallOptions,
  freePort,
  type LocalEdge,
  startLocalEdge,
} from "../support/local-edge.ts";
import { compactJws, type Ed25519Pair, ed25519Pair } from "../support/relay-lease-kit.ts";
import { RelayPeer } from "../support/relay-peer.ts";
import { ROOT } from "../support/vectors.ts";

/**
 * The whole relay path with real parts on loopback: the edge in workerd (wrangler dev, real D1 migrations), the
 * wavry-relay process enrolled with an admin token and registered by signed requests, two devices that get leases
 * through signaling, present them over UDP and exchange datagrams both ways; then the edge goes away and the live
 * session keeps forwarding.
 */
let edge: LocalEdge;
let relay: ChildProcess;
let relayDir: string;
let relayUdpPort: number;
let relayHealthPort: number;
let relayLog = "";

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const PASSWORD = "correct horse battery staple";

function api<T = Record<string, unknown>>(route: string, options: EdgeCallOptions = {}) {
  return callEdge<T>(edge.url, route, options);
}

interface Device {
  readonly id: string;
  readonly ed: Ed25519Pair;
  token: string;
}

async function enrollDevice(userId: string, userToken: string, name: string): Promise<Device> {
  const ed = ed25519Pair();
  const x = generateKeyPairSync("x25519").publicKey.export({ format: "jwk" }).x as string;
  const x25519Public = Buffer.from(x, "base64url");
  const ed25519Public = Buffer.from(ed.x, "base64url");
  const timestampMs = Date.now();
  const proof = sign(
    null,
    enrollmentProofMessage({ userIdOrCode: userId, x25519Public, ed25519Public, name, timestampMs }),
    ed.privateKey,
  );
  const enrolled = await api<{ deviceId: string }>("/v1/devices", {
    token: userToken,
    body: { name, x25519PublicKey: x, ed25519PublicKey: ed.x, timestampMs, proof: b64url(proof) },
  });
  expect(enrolled.status).toBe(201);
  const deviceId = enrolled.json.deviceId;
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
  const token = await api<{ accessToken: string }>("/v1/devices/token", {
    body: { challengeId: challenge.json.challengeId, signature: b64url(signature) },
  });
  expect(token.status).toBe(200);
  return { id: deviceId, ed, token: token.json.accessToken };
}

/** A signaling socket with a queue of parsed messages. */
async function signal(device: Device) {
  const ws = new WebSocket(`${edge.url.replace("http", "ws")}/v1/signal`, {
    headers: { authorization: `Bearer ${device.token}` },
  });
  const queue: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.on("message", (data) => {
    queue.push(JSON.parse(String(data)) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const next = async (type: string, timeoutMs = 10_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = queue.findIndex((m) => m.type === type);
      if (at >= 0) return queue.splice(at, 1)[0] as Record<string, unknown>;
      if (Date.now() > deadline)
        throw new Error(`no ${type} within ${timeoutMs} ms; got ${JSON.stringify(queue)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  const send = (message: Record<string, unknown>) => ws.send(JSON.stringify({ v: 1, ...message }));
  await next("hello");
  // A socket counts as online once it has sent its first valid message.
  send({ type: "ping" });
  await next("pong");
  return { ws, next, send };
}

beforeAll(async () => {
  edge = await startLocalEdge();
  // Admin: the bootstrap token, a lease key certified by a master key held only by this test, a relay enrollment token.
  const root = await api<{ token: string }>("/v1/admin/bootstrap", {
    token: edge.bootstrapToken,
    body: { name: "e2e" },
  });
  expect(root.status).toBe(201);
  const admin = root.json.token;
  const master = ed25519Pair();
  const leaseKey = await api<{ kid: string; publicJwk: { x: string } }>("/v1/admin/lease-keys", {
    token: admin,
    body: {},
  });
  expect(leaseKey.status).toBe(201);
  const now = Math.floor(Date.now() / 1000);
  const certificate = compactJws(
    { alg: "EdDSA", typ: "wavry-lease-key-cert+jwt" },
    {
      iss: "wavry-relay-master",
      sub: leaseKey.json.kid,
      jwk: { kty: "OKP", crv: "Ed25519", x: leaseKey.json.publicJwk.x },
      iat: now,
      exp: now + 86_400,
    },
    master.privateKey,
  );
  expect(
    (
      await api(`/v1/admin/lease-keys/${leaseKey.json.kid}/certificate`, {
        token: admin,
        body: { certificate },
      })
    ).status,
  ).toBe(200);
  const enrollment = await api<{ token: string }>("/v1/admin/relays/enrollment-tokens", {
    token: admin,
    body: {},
  });
  expect(enrollment.status).toBe(201);

  // The relay process, with its own key file, against the real edge.
  relayDir = mkdtempSync(path.join(tmpdir(), "wavry-e2e-relay-"));
  relayUdpPort = await freePort();
  relayHealthPort = await freePort();
  relay = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "relay-node/main.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      WAVRY_ENVIRONMENT: "development",
      WAVRY_EDGE_URL: edge.url,
      WAVRY_RELAY_LISTEN: `127.0.0.1:${relayUdpPort}`,
      WAVRY_RELAY_PUBLIC_ADDR: `127.0.0.1:${relayUdpPort}`,
      WAVRY_RELAY_HEALTH_LISTEN: `127.0.0.1:${relayHealthPort}`,
      WAVRY_RELAY_KEY_FILE: path.join(relayDir, "relay.key"),
      WAVRY_RELAY_ENROLLMENT_TOKEN: enrollment.json.token,
      WAVRY_RELAY_REGION: "local-1",
      WAVRY_RELAY_MASTER_PUBLIC_KEY: master.x,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  relay.stdout?.on("data", (chunk: Buffer) => {
    relayLog = (relayLog + chunk.toString()).slice(-6000);
  });
  relay.stderr?.on("data", (chunk: Buffer) => {
    relayLog = (relayLog + chunk.toString()).slice(-6000);
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${relayHealthPort}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || relay.exitCode !== null)
      throw new Error(`the relay never became ready:\n${relayLog}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}, 120_000);

afterAll(async () => {
  relay?.kill("SIGTERM");
  await edge?.stop();
  if (relayDir !== undefined) rmSync(relayDir, { recursive: true, force: true });
});

describe("edge + signaling + relay on loopback", () => {
  it("registers the relay, hands each peer its own lease, forwards both ways, and survives an edge outage", async () => {
    const email = `e2e-${crypto.randomUUID()}@example.com`;
    const reg = await api<{ userId: string }>("/v1/auth/register", { body: { email, password: PASSWORD } });
    expect(reg.status).toBe(201);
    const login = await api<{ accessToken: string }>("/v1/auth/login", {
      body: { email, password: PASSWORD },
    });
    const host = await enrollDevice(reg.json.userId, login.json.accessToken, "host");
    const client = await enrollDevice(reg.json.userId, login.json.accessToken, "client");

    const hostSignal = await signal(host);
    const clientSignal = await signal(client);
    clientSignal.send({
      type: "session.request",
      to: host.id,
      candidates: ["127.0.0.1:40000"],
      wantRelay: true,
    });
    const offer = await hostSignal.next("session.offer");
    expect(offer.from).toBe(client.id);
    hostSignal.send({ type: "session.accept", sessionId: offer.sessionId, candidates: ["127.0.0.1:40001"] });
    const accepted = await clientSignal.next("session.accepted");
    expect(accepted.host).toBe(host.id);
    const hostRelay = await hostSignal.next("relay.assigned");
    const clientRelay = await clientSignal.next("relay.assigned");
    expect(hostRelay.relayAddr).toBe(`127.0.0.1:${relayUdpPort}`);
    expect(hostRelay.lease).not.toBe(clientRelay.lease);

    const sessionId = Buffer.from(String(offer.sessionId), "base64url");
    const relayAddress = { address: "127.0.0.1", family: "IPv4", port: relayUdpPort };
    const hostPeer = await RelayPeer.open(relayAddress);
    const clientPeer = await RelayPeer.open(relayAddress);
    try {
      const hostAck = await hostPeer.present(sessionId, Role.Host, String(hostRelay.lease), host.ed);
      expect(hostAck.type).toBe(RelayFrameType.LeaseAck);
      const clientAck = await clientPeer.present(
        sessionId,
        Role.Client,
        String(clientRelay.lease),
        client.ed,
      );
      expect(clientAck.type, JSON.stringify(clientAck)).toBe(RelayFrameType.LeaseAck);
      // The host may get an unasked LEASE_ACK (peer bound) when the client binds: drain it.
      await hostPeer.silentFor(200);

      const exchange = async (label: string) => {
        const toHost = Uint8Array.from(Buffer.from(`${label}: client -> host`));
        clientPeer.send(encodeForward(sessionId, toHost));
        const atHost = await hostPeer.nextFrame(3000);
        expect(atHost.type === RelayFrameType.Forward && Buffer.from(atHost.payload).toString()).toBe(
          `${label}: client -> host`,
        );
        const toClient = Uint8Array.from(Buffer.from(`${label}: host -> client`));
        hostPeer.send(encodeForward(sessionId, toClient));
        const atClient = await clientPeer.nextFrame(3000);
        expect(atClient.type === RelayFrameType.Forward && Buffer.from(atClient.payload).toString()).toBe(
          `${label}: host -> client`,
        );
      };
      await exchange("live");

      // The relay registered with the real edge, by signed requests.
      const metrics = await (await fetch(`http://127.0.0.1:${relayHealthPort}/metrics`)).text();
      expect(metrics).toMatch(/forwarded/);

      hostSignal.ws.close();
      clientSignal.ws.close();
      await edge.stop();
      await exchange("edge down");
    } finally {
      await hostPeer.close();
      await clientPeer.close();
    }
  }, 90_000);
});
