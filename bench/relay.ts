/**
 * `npm run bench:relay`: the relay node's forwarding rate next to a bare Node dgram forwarder, in one run.
 *
 *  - forwarded packets per second of 1200-byte payloads (1220-byte FORWARD datagrams) for 1, 100 and 1,000
 *    concurrent sessions, through our relay and through a bare forwarder (a port -> port map, no checks at all),
 *    with the same peer sockets and the same packet count per round; plus each forwarder's CPU time per packet,
 *    which stays honest when the load generator (sharing the machine) is the bottleneck;
 *  - the relay's memory per bound session: heap and RSS after GC, before and after binding 1,000 sessions.
 *
 * Real leases: an in-process fake edge (test/support) certifies a lease key under a bench master key, and every
 * peer binds with its own EdDSA lease and proof, verified by the relay, once before measuring. Limits are raised
 * (every peer is 127.0.0.1), so the figures show the cost of the checks, not of hitting a limit. Each forwarder
 * runs in its own child process. Load is closed-loop (a fixed window of datagrams in flight, each delivery sending
 * the next on the next session, directions alternating), so neither forwarder is measured by overflowing socket
 * buffers; a stalled window counts its datagrams as lost. Rounds alternate between the contenders and the median
 * counts. The last line is one JSON object with every figure.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { rmSync } from "node:fs";
import path from "node:path";
import { encodeForward, RelayFrameType, Role } from "../protocol/wire/relay-frames.ts";
import { loadConfig } from "../relay-node/config.ts";
import { silentLogger } from "../relay-node/log.ts";
import { startRelayNode } from "../relay-node/relay-node.ts";
import { FakeEdge } from "../test/support/relay-fake-edge.ts";
import { ENROLLMENT_TOKEN, newTempDir, relayEnv } from "../test/support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority } from "../test/support/relay-lease-kit.ts";
import { RelayPeer } from "../test/support/relay-peer.ts";

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}
const PAYLOAD = 1200;
const SESSION_COUNTS = [1, 100, 1000] as const;
const MAX_SESSIONS = 1000;
const ROUNDS = positiveInt("BENCH_ROUNDS", 7);
const PACKETS = positiveInt("BENCH_PACKETS", 40_000);
const WINDOW = positiveInt("BENCH_WINDOW", 64);
const STALL_MS = 30;
const ROUND_TIMEOUT_MS = 15_000;
const SOCKET_BUFFER = 4 * 1024 * 1024;

type ToParent =
  | { type: "ready"; port: number; relayId: string }
  | { type: "memory"; heapUsed: number; rss: number }
  | { type: "cpu"; micros: number };
type ToChild = { type: "memory" } | { type: "cpu" } | { type: "expect"; pairs: number };

function reply(message: ToParent): void {
  process.send?.(message);
}

function memory(): ToParent {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
  const usage = process.memoryUsage();
  return { type: "memory", heapUsed: usage.heapUsed, rss: usage.rss };
}

/** Child: our relay, configured from the environment the parent passes. */
async function relayChild(): Promise<void> {
  const config = loadConfig(process.env);
  if (!config.ok) throw new Error(config.problems.join("; "));
  const node = await startRelayNode({ config: config.config, log: silentLogger, processMetrics: false });
  while (!node.ready()) await new Promise((resolve) => setTimeout(resolve, 20));
  let cpu = process.cpuUsage();
  process.on("message", (message: ToChild) => {
    if (message.type === "memory") reply(memory());
    if (message.type === "cpu") {
      const used = process.cpuUsage(cpu);
      cpu = process.cpuUsage();
      reply({ type: "cpu", micros: used.user + used.system });
    }
  });
  process.on("disconnect", () => void node.stop().then(() => process.exit(0)));
  reply({ type: "ready", port: node.udpAddress.port, relayId: node.relayId });
}

/**
 * Child: the floor. Learns pairs from one datagram per peer (the session id in the same header), then forwards by
 * source port with no check of anything.
 */
function bareChild(): void {
  const socket = createSocket({ type: "udp4", recvBufferSize: SOCKET_BUFFER, sendBufferSize: SOCKET_BUFFER });
  const pairs = new Map<number, number>();
  const pending = new Map<string, number>();
  let expected = Number.POSITIVE_INFINITY;
  socket.on("message", (msg, rinfo) => {
    const to = pairs.get(rinfo.port);
    if (to !== undefined) {
      socket.send(msg, to, "127.0.0.1");
      return;
    }
    const sid = msg.toString("latin1", 4, 20);
    const other = pending.get(sid);
    if (other === undefined) pending.set(sid, rinfo.port);
    else if (other !== rinfo.port) {
      pending.delete(sid);
      pairs.set(rinfo.port, other);
      pairs.set(other, rinfo.port);
      if (pairs.size >= expected) reply({ type: "ready", port: -1, relayId: "" });
    }
  });
  let cpu = process.cpuUsage();
  process.on("message", (message: ToChild) => {
    if (message.type === "expect") {
      expected = message.pairs * 2;
      if (pairs.size >= expected) reply({ type: "ready", port: -1, relayId: "" });
    }
    if (message.type === "cpu") {
      const used = process.cpuUsage(cpu);
      cpu = process.cpuUsage();
      reply({ type: "cpu", micros: used.user + used.system });
    }
  });
  process.on("disconnect", () => socket.close(() => process.exit(0)));
  socket.bind(0, "127.0.0.1", () => reply({ type: "ready", port: socket.address().port, relayId: "" }));
}

class Child {
  private readonly waiting: ((message: ToParent) => void)[] = [];
  private readonly queued: ToParent[] = [];
  constructor(readonly process: ChildProcess) {
    process.on("message", (message: ToParent) => {
      const waiter = this.waiting.shift();
      if (waiter === undefined) this.queued.push(message);
      else waiter(message);
    });
  }
  static start(role: "relay" | "bare", env: NodeJS.ProcessEnv): Child {
    return new Child(
      fork(import.meta.filename, [role], {
        env,
        execArgv: [...process.execArgv, "--expose-gc"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }),
    );
  }
  next(): Promise<ToParent> {
    const queued = this.queued.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("child did not answer")), 60_000);
      this.waiting.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }
  async ask(message: ToChild): Promise<ToParent> {
    const answer = this.next();
    this.process.send(message);
    return answer;
  }
  stop(): void {
    if (this.process.connected) this.process.disconnect();
  }
}

interface SessionPeers {
  readonly sid: Uint8Array;
  readonly host: RelayPeer;
  readonly client: RelayPeer;
  /** The FORWARD datagram this session sends, built once. */
  readonly frame: Uint8Array;
}

interface RoundResult {
  readonly pps: number;
  readonly lost: number;
  readonly cpuMicros: number;
}

/** One closed-loop round of `PACKETS` datagrams through the forwarder at `port`, over the first `count` sessions. */
async function round(
  sessions: readonly SessionPeers[],
  count: number,
  port: number,
  child: Child,
): Promise<RoundResult> {
  await child.ask({ type: "cpu" });
  let sent = 0;
  let received = 0;
  let lost = 0;
  let cursor = 0;
  let lastProgress = received;
  const started = performance.now();
  let finished = started;
  const sendNext = () => {
    if (sent >= PACKETS) return;
    const index = cursor % count;
    const session = sessions[index] as SessionPeers;
    // Alternate directions lap by lap, so both halves of every session forward.
    const from = Math.floor(cursor / count) % 2 === 0 ? session.host : session.client;
    cursor++;
    sent++;
    from.socket.send(session.frame, port, "127.0.0.1");
  };
  await new Promise<void>((resolve, reject) => {
    const onMessage = () => {
      received++;
      finished = performance.now();
      if (received + lost >= PACKETS) done();
      else sendNext();
    };
    const sockets = sessions.slice(0, count).flatMap((s) => [s.host.socket, s.client.socket]);
    for (const socket of sockets) socket.on("message", onMessage);
    const stall = setInterval(() => {
      if (received !== lastProgress) {
        lastProgress = received;
        return;
      }
      // Nothing arrived for a while: what is in flight is lost; refill the window.
      lost += sent - received - lost;
      if (received + lost >= PACKETS) return done();
      for (let i = 0; i < WINDOW; i++) sendNext();
    }, STALL_MS);
    const timeout = setTimeout(() => {
      cleanup();
      reject(new Error(`round timed out after ${received} of ${PACKETS} datagrams`));
    }, ROUND_TIMEOUT_MS);
    const cleanup = () => {
      clearInterval(stall);
      clearTimeout(timeout);
      for (const socket of sockets) socket.off("message", onMessage);
    };
    function done() {
      cleanup();
      resolve();
    }
    for (let i = 0; i < WINDOW; i++) sendNext();
  });
  const cpu = await child.ask({ type: "cpu" });
  const seconds = (finished - started) / 1000;
  return {
    pps: received / seconds,
    lost,
    cpuMicros: cpu.type === "cpu" ? cpu.micros / Math.max(1, received) : 0,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function bindAll(
  sessions: SessionPeers[],
  authority: LeaseAuthority,
  relayId: string,
  keys: readonly Ed25519Pair[],
): Promise<void> {
  const bindOne = async (session: SessionPeers, index: number) => {
    const lease = (role: "host" | "client", cnf: Ed25519Pair) =>
      authority.lease({
        kid: "bench-lk",
        aud: relayId,
        sid: session.sid,
        role,
        cnf,
        bw: { kbps: 100_000_000, burstKb: 1_000_000 },
      });
    const hostKey = keys[2 * index] as Ed25519Pair;
    const clientKey = keys[2 * index + 1] as Ed25519Pair;
    const host = await session.host.present(session.sid, Role.Host, lease("host", hostKey), hostKey);
    const client = await session.client.present(
      session.sid,
      Role.Client,
      lease("client", clientKey),
      clientKey,
    );
    if (host.type !== RelayFrameType.LeaseAck || client.type !== RelayFrameType.LeaseAck) {
      throw new Error("a bench lease was refused");
    }
    await session.host.nextFrame(); // peer_bound update
  };
  const batch = 25;
  for (let at = 0; at < sessions.length; at += batch) {
    await Promise.all(sessions.slice(at, at + batch).map((s, i) => bindOne(s, at + i)));
  }
}

async function main(): Promise<void> {
  const authority = new LeaseAuthority();
  const edge = await FakeEdge.start({
    enrollmentTokens: [ENROLLMENT_TOKEN],
    control: { leaseKeys: [authority.certificate("bench-lk")], heartbeatIntervalMs: 5000 },
  });
  const dir = newTempDir();
  const children: Child[] = [];
  const peers: RelayPeer[] = [];
  const cleanup = () => {
    for (const child of children) child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  try {
    const env = {
      ...process.env,
      ...relayEnv(edge, authority, path.join(dir, "relay.key"), {
        WAVRY_RELAY_MAX_SESSIONS: String(MAX_SESSIONS),
        WAVRY_RELAY_IP_PACKETS_PER_SEC: "100000000",
        WAVRY_RELAY_IP_PACKET_BURST: "100000000",
        WAVRY_RELAY_IP_HANDSHAKES_PER_SEC: "1000000",
        WAVRY_RELAY_IP_HANDSHAKE_BURST: "1000000",
        WAVRY_RELAY_HANDSHAKES_PER_SEC: "1000000",
        WAVRY_RELAY_SESSION_MAX_KBPS: "100000000",
        WAVRY_RELAY_SESSION_MAX_BURST_KB: "10000000",
        WAVRY_RELAY_SESSION_IDLE_SECS: "600",
      }),
    };
    const relay = Child.start("relay", env);
    children.push(relay);
    const bare = Child.start("bare", process.env);
    children.push(bare);
    const relayReady = await relay.next();
    const bareReady = await bare.next();
    if (relayReady.type !== "ready" || bareReady.type !== "ready") throw new Error("children did not start");
    const relayAddress = { address: "127.0.0.1", family: "IPv4", port: relayReady.port };

    process.stdout.write(`binding ${MAX_SESSIONS} sessions (${2 * MAX_SESSIONS} peers, real leases)...\n`);
    const sessions: SessionPeers[] = [];
    for (let i = 0; i < MAX_SESSIONS; i++) {
      const sid = new Uint8Array(randomBytes(16));
      const [host, client] = [await RelayPeer.open(relayAddress), await RelayPeer.open(relayAddress)];
      peers.push(host, client);
      sessions.push({ sid, host, client, frame: encodeForward(sid, randomBytes(PAYLOAD)) });
    }
    const keys = Array.from({ length: 2 * MAX_SESSIONS }, () => ed25519Pair());
    const relayId = relayReady.relayId;
    const before = await relay.ask({ type: "memory" });
    const bindStart = performance.now();
    await bindAll(sessions, authority, relayId, keys);
    const bindSecs = (performance.now() - bindStart) / 1000;
    const after = await relay.ask({ type: "memory" });
    if (before.type !== "memory" || after.type !== "memory") throw new Error("no memory figures");

    // The bare forwarder learns the same pairs from one datagram per peer.
    const paired = bare.ask({ type: "expect", pairs: MAX_SESSIONS });
    for (const [i, s] of sessions.entries()) {
      s.host.socket.send(s.frame, bareReady.port, "127.0.0.1");
      s.client.socket.send(s.frame, bareReady.port, "127.0.0.1");
      if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await paired;
    for (const peer of peers) peer.socket.removeAllListeners("message");

    const figures: Record<string, Record<string, number>> = {};
    for (const count of SESSION_COUNTS) {
      // Warm-up: one round each, not counted.
      await round(sessions, count, relayReady.port, relay);
      await round(sessions, count, bareReady.port, bare);
      const ours: RoundResult[] = [];
      const floor: RoundResult[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        if (r % 2 === 0) {
          ours.push(await round(sessions, count, relayReady.port, relay));
          floor.push(await round(sessions, count, bareReady.port, bare));
        } else {
          floor.push(await round(sessions, count, bareReady.port, bare));
          ours.push(await round(sessions, count, relayReady.port, relay));
        }
      }
      const relayPps = median(ours.map((r) => r.pps));
      const barePps = median(floor.map((r) => r.pps));
      const relayCpu = median(ours.map((r) => r.cpuMicros));
      const bareCpu = median(floor.map((r) => r.cpuMicros));
      figures[String(count)] = {
        relayPps: Math.round(relayPps),
        barePps: Math.round(barePps),
        ratio: Number((relayPps / barePps).toFixed(3)),
        relayCpuMicrosPerPacket: Number(relayCpu.toFixed(2)),
        bareCpuMicrosPerPacket: Number(bareCpu.toFixed(2)),
        cpuRatio: Number((bareCpu / relayCpu).toFixed(3)),
        relayLost: ours.reduce((sum, r) => sum + r.lost, 0),
        bareLost: floor.reduce((sum, r) => sum + r.lost, 0),
      };
      process.stdout.write(
        `${String(count).padStart(5)} sessions: relay ${Math.round(relayPps)} pkt/s, bare ${Math.round(barePps)} pkt/s ` +
          `(${((100 * relayPps) / barePps).toFixed(1)}%); CPU/packet relay ${relayCpu.toFixed(2)} µs, ` +
          `bare ${bareCpu.toFixed(2)} µs\n`,
      );
    }
    const heapPer1000 = Math.round(after.heapUsed - before.heapUsed);
    const rssPer1000 = Math.round(after.rss - before.rss);
    process.stdout.write(
      `memory: ${(heapPer1000 / 1024).toFixed(0)} KiB heap, ${(rssPer1000 / 1024).toFixed(0)} KiB RSS per 1000 bound ` +
        `sessions (${Math.round(heapPer1000 / MAX_SESSIONS)} B heap per session); binding took ${bindSecs.toFixed(2)} s\n`,
    );
    const ratios = SESSION_COUNTS.map((count) => figures[String(count)]?.ratio ?? 0);
    const summary = {
      bench: "relay",
      payloadBytes: PAYLOAD,
      datagramBytes: PAYLOAD + 20,
      leases: "real: EdDSA leases under a certified lease key, verified with proof and cookie at bind, once",
      rounds: ROUNDS,
      packetsPerRound: PACKETS,
      window: WINDOW,
      sessions: figures,
      memory: {
        boundSessions: MAX_SESSIONS,
        heapBytesPer1000Sessions: heapPer1000,
        rssBytesPer1000Sessions: rssPer1000,
        heapBytesPerSession: Math.round(heapPer1000 / MAX_SESSIONS),
      },
      bindSeconds: Number(bindSecs.toFixed(2)),
      target: 0.85,
      meetsTarget: ratios.every((ratio) => ratio >= 0.85),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    cleanup();
    await edge.pause();
  }
}

const role = process.argv[2];
if (role === "relay") await relayChild();
else if (role === "bare") bareChild();
else await main();
