/**
 * End-to-end media transport benchmark (`npm run bench:e2e`), loopback only: synthetic frames (random bytes
 * sized for 20 Mbit/s at 60 fps, a keyframe every 60 frames at 4x the size of the others) from a HostSession in
 * this process to a ClientSession in a child process (as host and client run on two machines), over a real
 * PeerLink: on the direct path, through a relay node in a third process with real leases, then through a seeded
 * lossy proxy (1%, 5%, 10% loss, plus 1% duplication and 2% reordering).
 *
 * Delay figures (ms; the client's completion times are mapped onto this process's clock by an offset measured
 * over IPC before each run, to within half the best round trip):
 * - transport: the frame's last data fragment leaving the pacer → the client completing the frame (seal,
 *   UDP, relay, open, reassembly);
 * - queued: the frame handed to the host session → complete (adds the pacer draining the frame).
 * The congestion controller is pinned to 25..50 Mbit/s (pacing ≥ 37.5 Mbit/s) so the synthetic source, which
 * cannot change its rate, never backs up the pacer: the figures are the transport's, not the controller's.
 * The relay node runs in its own process (the target's figure). Beside it, a bare forwarder: a plain Node dgram
 * proxy in its own process with no checks at all, the cheapest extra hop there is, so the figures separate what
 * any extra process on the path costs on this machine from what the relay's own work costs. Each of the six
 * clean rounds runs direct, relayed and forwarded once, one round per order of the three, so every path runs in
 * every position and after every other path equally often, and none is favoured by its place in a round. Each
 * path's frames are pooled, so all paths meet the same moments of a noisy machine (one 10 s run per path gave
 * p99 differences that swung by more than the target between runs). Two more rounds put the relay in the
 * host's process, for comparison.
 * CPU: process.cpuUsage of the host process and of the client process, each over its run.
 * GC: each process's collections over its runs (full and young-generation counts, total and longest main-thread
 * pause): on a two-core machine a collection in any process on the path, and the helper threads of a full one,
 * are what the p99 is made of, so the figures show which process's collections a path meets.
 * Node flags: every process runs with DAEMON_NODE_FLAGS (scripts/node-flags.ts), as the daemons and the relay it
 * stands for do; the children inherit them. Started without them (`tsx bench/e2e.ts`), it refuses and says how.
 * Last line: one JSON object with every figure.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import path from "node:path";
import {
  constants,
  monitorEventLoopDelay,
  type PerformanceEntry,
  PerformanceObserver,
} from "node:perf_hooks";
import { PeerLink, type UdpAddress } from "../endpoint/peer-link/peer-link.ts";
import { ClientSession } from "../endpoint/session/client-session.ts";
import { HostSession } from "../endpoint/session/host-session.ts";
import { SyntheticVideoSource } from "../endpoint/session/synthetic-source.ts";
import { constantTimeEqual } from "../protocol/bytes.ts";
import { generateX25519KeyPair } from "../protocol/crypto/backend.ts";
import { nodeBackend } from "../protocol/crypto/node-backend.ts";
import { FRAME_DROP_REASONS, type ReassemblyDropReason } from "../protocol/media/reassembler.ts";
import { loadConfig } from "../relay-node/config.ts";
import { silentLogger } from "../relay-node/log.ts";
import { startRelayNode } from "../relay-node/relay-node.ts";
import { DAEMON_NODE_FLAGS } from "../scripts/node-flags.ts";
import { LossyProxy } from "../test/support/lossy-proxy.ts";
import { FakeEdge } from "../test/support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  newSessionId,
  newTempDir,
  relayEnv,
  startTestRelay,
  waitFor,
} from "../test/support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority } from "../test/support/relay-lease-kit.ts";

const FPS = 60;
const BITRATE = 20_000_000;
const KEYFRAME_INTERVAL = 60;
// Average over a keyframe interval equals BITRATE / FPS: (4p + 59p) / 60 = bytes per frame.
const FRAME_BYTES = Math.round((BITRATE / 8 / FPS) * (KEYFRAME_INTERVAL / (KEYFRAME_INTERVAL + 3)));
const KEYFRAME_BYTES = 4 * FRAME_BYTES;
/** The clean rounds, CLEAN_SECONDS per path: each order of the three paths (0 direct, 1 relayed, 2 forwarded). */
const CLEAN_ORDERS = [
  [0, 1, 2],
  [1, 2, 0],
  [2, 0, 1],
  [0, 2, 1],
  [2, 1, 0],
  [1, 0, 2],
] as const;
const CLEAN_SECONDS = 5;
const IN_PROCESS_ROUNDS = 2;
const LOSSY_SECONDS = 7;
const DRAIN_MS = 500;

const random = (length: number) => new Uint8Array(randomBytes(length));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * Garbage collection in one process while it is measured: main-thread pauses (a pause holds every datagram behind
 * it) and how many full (major) and young-generation (minor) collections ran. On a two-core machine V8's helper
 * threads also compete with the other processes on the path while a major collection marks.
 */
interface GcFigures {
  readonly major: number;
  readonly minor: number;
  readonly pauseMs: number;
  readonly maxPauseMs: number;
}

const NO_GC: GcFigures = { major: 0, minor: 0, pauseMs: 0, maxPauseMs: 0 };

/** Counts this process's collections between `start` and `stop`. */
function gcMeter() {
  let major = 0;
  let minor = 0;
  let pauseMs = 0;
  let maxPauseMs = 0;
  const count = (entries: readonly PerformanceEntry[]) => {
    for (const entry of entries) {
      const kind = (entry as PerformanceEntry & { readonly detail?: { readonly kind?: number } }).detail
        ?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
      pauseMs += entry.duration;
      maxPauseMs = Math.max(maxPauseMs, entry.duration);
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  return {
    start(): void {
      major = 0;
      minor = 0;
      pauseMs = 0;
      maxPauseMs = 0;
      observer.observe({ entryTypes: ["gc"] });
    },
    stop(): GcFigures {
      // Entries are delivered asynchronously: the ones not yet delivered are taken here.
      count(observer.takeRecords());
      observer.disconnect();
      return { major, minor, pauseMs: round2(pauseMs), maxPauseMs: round2(maxPauseMs) };
    },
  };
}

/** Sums the collections of several runs (the longest pause is the longest of any). */
function sumGc(all: readonly GcFigures[]): GcFigures {
  return {
    major: all.reduce((n, g) => n + g.major, 0),
    minor: all.reduce((n, g) => n + g.minor, 0),
    pauseMs: round2(all.reduce((n, g) => n + g.pauseMs, 0)),
    maxPauseMs: Math.max(0, ...all.map((g) => g.maxPauseMs)),
  };
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

interface RelayOption {
  readonly address: string;
  readonly port: number;
  readonly relayId: string;
  readonly authority: LeaseAuthority;
}

/**
 * Child mode: the bare forwarder, the floor for an extra hop. A plain dgram socket between the host (its port in
 * argv) and whoever else sends to it (the client): no checks, no table, no timers. Reports its port.
 */
function forwarderChild(): void {
  const upstream = Number(process.argv[3]);
  const socket = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  let clientPort = 0;
  socket.on("message", (msg, rinfo) => {
    if (rinfo.port === upstream) {
      if (clientPort !== 0) socket.send(msg, clientPort, "127.0.0.1");
      return;
    }
    clientPort = rinfo.port;
    socket.send(msg, upstream, "127.0.0.1");
  });
  process.on("disconnect", () => socket.close(() => process.exit(0)));
  socket.bind(0, "127.0.0.1", () => process.send?.({ port: socket.address().port }));
}

/** Child mode: runs a relay node from the environment, reports where it is, runs until killed. */
async function relayChild(): Promise<void> {
  const config = loadConfig(process.env);
  if (!config.ok) throw new Error(`relay config refused: ${config.problems.join("; ")}`);
  const node = await startRelayNode({
    config: config.config,
    clock: { nowMs: () => Date.now() },
    log: silentLogger,
    backoff: { minMs: 50, maxMs: 400 },
    sweepIntervalMs: 100,
    processMetrics: false,
  });
  await waitFor(() => node.ready(), "the relay's registration", 10_000);
  process.send?.({ address: node.udpAddress.address, port: node.udpAddress.port, relayId: node.relayId });
  // Asked for its counters after the run: forwarded datagrams and every drop by reason (none expected).
  const lag = monitorEventLoopDelay({ resolution: 1 });
  const gc = gcMeter();
  process.on("message", (request) => {
    if (request === "start") {
      lag.reset();
      lag.enable();
      gc.start();
      return;
    }
    if (request !== "stats") return;
    lag.disable();
    const collections = gc.stop();
    const drops = Object.fromEntries(Object.entries(node.stats.dropsByReason()).filter(([, n]) => n > 0));
    process.send?.({
      forwarded: node.stats.forwardedPackets,
      drops,
      loopDelayP99Ms: round2(lag.percentile(99) / 1e6),
      loopDelayMaxMs: round2(lag.max / 1e6),
      gc: collections,
    });
  });
  process.once("SIGTERM", () => {
    void node.stop().then(() => process.exit(0));
  });
}

const seed = (pair: Ed25519Pair) => {
  const d = pair.privateKey.export({ format: "jwk" }).d;
  if (typeof d !== "string") throw new Error("unexpected JWK export");
  return new Uint8Array(Buffer.from(d, "base64url"));
};

interface RelayCounters {
  readonly forwarded: number;
  readonly drops: Readonly<Record<string, number>>;
  /** The relay process's event-loop delay during the run (a stall there holds every datagram behind it). */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** The relay process's collections over the whole clean phase (it idles through the other paths' runs). */
  readonly gc: GcFigures;
}

interface RunResult {
  /** Rounds pooled (the clean paths alternate round by round, so each meets the same moments of the machine). */
  readonly rounds: number;
  readonly framesSent: number;
  readonly framesComplete: number;
  readonly completeRatio: number;
  readonly transportP50Ms: number;
  readonly transportP99Ms: number;
  readonly queuedP50Ms: number;
  readonly queuedP99Ms: number;
  /** process.cpuUsage of the host process over the run (with the relay, in the in-process relay run). */
  readonly hostCpuPercent: number;
  /** process.cpuUsage of the client process over the run. */
  readonly clientCpuPercent: number;
  readonly mbitPerSecond: number;
  readonly resent: number;
  /** NACKs the client sent: with no loss on the path, each is a stall of ≥ 10 ms somewhere (a CPU or GC pause). */
  readonly nacks: number;
  /** Frame-level reassembler drops by reason (a given-up frame, and the frames withheld until a keyframe). */
  readonly frameDrops: Readonly<Record<string, number>>;
  /** Event-loop delay of the host and the client process during the run (a stall holds every datagram). */
  readonly hostLoopDelayMaxMs: number;
  readonly clientLoopDelayMaxMs: number;
  /** Collections in the host and the client process during the runs. */
  readonly hostGc: GcFigures;
  readonly clientGc: GcFigures;
  /** Half the best IPC round trip of the clock-offset measurement: the bound on its error. */
  readonly clockErrorMs: number;
}

/** What one run measured, before it is pooled with the other rounds of its path. */
interface Sample {
  readonly transport: readonly number[];
  readonly queued: readonly number[];
  readonly framesSent: number;
  readonly framesComplete: number;
  readonly hostCpuMs: number;
  readonly hostWallMs: number;
  readonly clientCpuMs: number;
  readonly clientWallMs: number;
  readonly bytes: number;
  readonly resent: number;
  readonly nacks: number;
  readonly frameDrops: Readonly<Record<string, number>>;
  readonly hostLoopDelayMaxMs: number;
  readonly clientLoopDelayMaxMs: number;
  readonly hostGc: GcFigures;
  readonly clientGc: GcFigures;
  readonly clockErrorMs: number;
}

/** Pools the rounds of one path into its figures. */
function pooled(samples: readonly Sample[]): RunResult {
  const sum = (pick: (s: Sample) => number) => samples.reduce((total, s) => total + pick(s), 0);
  const max = (pick: (s: Sample) => number) => Math.max(...samples.map(pick));
  const transport = samples.flatMap((s) => s.transport);
  const queued = samples.flatMap((s) => s.queued);
  const framesSent = sum((s) => s.framesSent);
  const framesComplete = sum((s) => s.framesComplete);
  const frameDrops: Record<string, number> = {};
  for (const s of samples) {
    for (const [reason, n] of Object.entries(s.frameDrops))
      frameDrops[reason] = (frameDrops[reason] ?? 0) + n;
  }
  return {
    rounds: samples.length,
    framesSent,
    framesComplete,
    completeRatio: Math.round((framesComplete / framesSent) * 10_000) / 10_000,
    transportP50Ms: round2(percentile(transport, 0.5)),
    transportP99Ms: round2(percentile(transport, 0.99)),
    queuedP50Ms: round2(percentile(queued, 0.5)),
    queuedP99Ms: round2(percentile(queued, 0.99)),
    hostCpuPercent: Math.round((sum((s) => s.hostCpuMs) / sum((s) => s.hostWallMs)) * 1000) / 10,
    clientCpuPercent: Math.round((sum((s) => s.clientCpuMs) / sum((s) => s.clientWallMs)) * 1000) / 10,
    mbitPerSecond: round2((sum((s) => s.bytes) * 8) / (sum((s) => s.hostWallMs) / 1000) / 1e6),
    resent: sum((s) => s.resent),
    nacks: sum((s) => s.nacks),
    frameDrops,
    hostLoopDelayMaxMs: round2(max((s) => s.hostLoopDelayMaxMs)),
    clientLoopDelayMaxMs: round2(max((s) => s.clientLoopDelayMaxMs)),
    hostGc: sumGc(samples.map((s) => s.hostGc)),
    clientGc: sumGc(samples.map((s) => s.clientGc)),
    clockErrorMs: Math.round(max((s) => s.clockErrorMs) * 1000) / 1000,
  };
}

/** How the client reaches the host in one run. */
type PathSpec =
  | { readonly kind: "direct" }
  | { readonly kind: "relay"; readonly relay: RelayOption }
  | { readonly kind: "lossy"; readonly loss: number }
  | { readonly kind: "forwarder" };

/** Messages between this process and the client child. */
type ToClient =
  | { readonly kind: "clock" }
  | {
      readonly kind: "setup";
      readonly sessionId: string;
      readonly hostPublicKey: string;
      readonly candidate?: UdpAddress;
      readonly relay?: { address: string; port: number; lease: string; seed: string };
    }
  | { readonly kind: "finish" };
type FromClient =
  | { readonly kind: "hello"; readonly publicKey: string }
  | { readonly kind: "clock"; readonly at: number }
  | { readonly kind: "ready" }
  | {
      readonly kind: "results";
      /** [frame id, completion time on the client's epoch clock (ms)] */
      readonly completions: readonly (readonly [number, number])[];
      readonly bytes: number;
      readonly nacks: number;
      readonly frameDrops: Readonly<Record<string, number>>;
      readonly cpuMs: number;
      readonly wallMs: number;
      readonly loopDelayMaxMs: number;
      readonly gc: GcFigures;
    };

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, "base64url"));
/** Milliseconds on an epoch clock comparable between processes (each maps its monotonic clock onto it). */
const epochNow = () => performance.timeOrigin + performance.now();

/** Child mode: the client half of one run, driven over IPC by the host process. */
async function clientChild(): Promise<void> {
  const send = (message: FromClient) => process.send?.(message);
  const keys = generateX25519KeyPair(nodeBackend, random);
  let link: PeerLink | null = null;
  let session: ClientSession | null = null;
  const completions: [number, number][] = [];
  let bytes = 0;
  const lag = monitorEventLoopDelay({ resolution: 1 });
  const gc = gcMeter();
  let cpu = process.cpuUsage();
  let began = 0;
  process.on("message", (raw) => {
    const message = raw as ToClient;
    if (message.kind === "clock") {
      send({ kind: "clock", at: epochNow() });
      return;
    }
    if (message.kind === "setup") {
      void (async () => {
        const hostKey = unb64(message.hostPublicKey);
        const relay = message.relay;
        const live = await PeerLink.client({
          sessionId: unb64(message.sessionId),
          staticKeyPair: keys,
          verifyRemoteStatic: (key) => constantTimeEqual(key, hostKey),
          bind: { address: "127.0.0.1" },
          tickMs: 10,
          ...(message.candidate !== undefined && { candidates: [message.candidate] }),
          ...(relay !== undefined && {
            relay: {
              address: relay.address,
              port: relay.port,
              lease: relay.lease,
              signingKey: unb64(relay.seed),
            },
          }),
        });
        link = live;
        await once(live, "established", { signal: AbortSignal.timeout(10_000) });
        session = new ClientSession({
          link: live,
          onFrame: (unit, info) => {
            bytes += unit.data.length;
            completions.push([info.frameId, performance.timeOrigin + info.completedAt]);
          },
        });
        lag.enable();
        gc.start();
        cpu = process.cpuUsage();
        began = performance.now();
        send({ kind: "ready" });
      })();
      return;
    }
    const used = process.cpuUsage(cpu);
    const wallMs = performance.now() - began;
    lag.disable();
    const collections = session === null ? NO_GC : gc.stop();
    const stats = session?.stats;
    session?.close();
    send({
      kind: "results",
      completions,
      bytes,
      nacks: stats?.nacksSent ?? 0,
      frameDrops: Object.fromEntries(
        Object.entries(stats?.drops ?? {}).filter(
          ([reason, n]) => FRAME_DROP_REASONS.has(reason as ReassemblyDropReason) && (n ?? 0) > 0,
        ),
      ),
      cpuMs: (used.user + used.system) / 1000,
      wallMs,
      loopDelayMaxMs: round2(lag.max / 1e6),
      gc: collections,
    });
    void link?.close();
  });
  send({ kind: "hello", publicKey: b64(keys.publicKey) });
}

/** The client child's messages, one kind at a time. */
function inbox(child: ChildProcess) {
  const waiting: FromClient[] = [];
  const wanted: { kind: FromClient["kind"]; resolve: (m: FromClient) => void }[] = [];
  child.on("message", (raw) => {
    const message = raw as FromClient;
    const at = wanted.findIndex((w) => w.kind === message.kind);
    if (at >= 0) wanted.splice(at, 1)[0]?.resolve(message);
    else waiting.push(message);
  });
  return <K extends FromClient["kind"]>(kind: K): Promise<Extract<FromClient, { kind: K }>> => {
    const at = waiting.findIndex((m) => m.kind === kind);
    if (at >= 0) return Promise.resolve(waiting.splice(at, 1)[0] as Extract<FromClient, { kind: K }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client child: no ${kind} message`)), 30_000);
      wanted.push({
        kind,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<FromClient, { kind: K }>);
        },
      });
    });
  };
}

/** The child's epoch clock minus ours, from the IPC round trip with the least delay; and half that trip. */
async function clockOffset(child: ChildProcess, next: ReturnType<typeof inbox>) {
  let best = { offset: 0, halfTrip: Number.POSITIVE_INFINITY };
  for (let i = 0; i < 40; i++) {
    const t0 = epochNow();
    child.send({ kind: "clock" } satisfies ToClient);
    const { at } = await next("clock");
    const t1 = epochNow();
    if ((t1 - t0) / 2 < best.halfTrip) best = { offset: at - (t0 + t1) / 2, halfTrip: (t1 - t0) / 2 };
  }
  return best;
}

/** One run: a client child reaches this process's host over `spec` and streams for `seconds`; measures. */
async function run(spec: PathSpec, seconds: number): Promise<Sample> {
  const child = fork(import.meta.filename, ["client-child"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = inbox(child);
  let link: PeerLink | null = null;
  let proxy: LossyProxy | null = null;
  let forwarder: ChildProcess | null = null;
  try {
    const clientKey = unb64((await next("hello")).publicKey);
    const clock = await clockOffset(child, next);
    const sessionId = newSessionId();
    const hostKeys = generateX25519KeyPair(nodeBackend, random);
    const lease = (role: "host" | "client", relay: RelayOption) => {
      const cnf = ed25519Pair();
      return {
        lease: relay.authority.lease({ kid: "lk1", aud: relay.relayId, sid: sessionId, role, cnf }),
        cnf,
      };
    };
    const relay = spec.kind === "relay" ? spec.relay : undefined;
    const hostLease = relay === undefined ? undefined : lease("host", relay);
    const host = await PeerLink.host({
      sessionId,
      staticKeyPair: hostKeys,
      verifyRemoteStatic: (key) => constantTimeEqual(key, clientKey),
      bind: { address: "127.0.0.1" },
      tickMs: 10,
      ...(relay !== undefined &&
        hostLease !== undefined && {
          relay: {
            address: relay.address,
            port: relay.port,
            lease: hostLease.lease,
            signingKey: seed(hostLease.cnf),
          },
        }),
    });
    link = host;
    if (spec.kind === "lossy") {
      proxy = await LossyProxy.start({ upstream: host.localAddress, seed: 0x5eed + spec.loss * 100 });
    }
    let forwarderAddress: UdpAddress | undefined;
    if (spec.kind === "forwarder") {
      forwarder = fork(import.meta.filename, ["forwarder-child", String(host.localAddress.port)], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      const [{ port }] = (await once(forwarder, "message", { signal: AbortSignal.timeout(10_000) })) as [
        { port: number },
      ];
      forwarderAddress = { address: "127.0.0.1", port };
    }
    const clientLease = relay === undefined ? undefined : lease("client", relay);
    const hostUp = once(host, "established", { signal: AbortSignal.timeout(10_000) });
    child.send({
      kind: "setup",
      sessionId: b64(sessionId),
      hostPublicKey: b64(hostKeys.publicKey),
      ...(spec.kind === "direct" && { candidate: host.localAddress }),
      ...(proxy !== null && { candidate: proxy.address }),
      ...(forwarderAddress !== undefined && { candidate: forwarderAddress }),
      ...(relay !== undefined &&
        clientLease !== undefined && {
          relay: {
            address: relay.address,
            port: relay.port,
            lease: clientLease.lease,
            seed: b64(seed(clientLease.cnf)),
          },
        }),
    } satisfies ToClient);
    await Promise.all([hostUp, next("ready")]);
    // Impaired only once established: the handshake's own retransmission is not what is measured.
    if (proxy !== null && spec.kind === "lossy") {
      proxy.impairment = { loss: spec.loss, duplicate: 0.01, reorder: 0.02, reorderDelayMs: 3 };
    }

    const source = new SyntheticVideoSource({
      fps: FPS,
      frameBytes: FRAME_BYTES,
      keyframeBytes: KEYFRAME_BYTES,
      keyframeInterval: KEYFRAME_INTERVAL,
    });
    const queuedAt = new Map<number, number>();
    const sentAt = new Map<number, number>();
    const session = new HostSession({
      link: host,
      source,
      onInput: () => undefined,
      congestion: { startBitrate: 25_000_000, minBitrate: 25_000_000, maxBitrate: 50_000_000 },
      onFrameQueued: (frameId, _unit, at) => queuedAt.set(frameId, performance.timeOrigin + at),
      onFrameSent: (frameId, at) => sentAt.set(frameId, performance.timeOrigin + at),
    });
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const gc = gcMeter();
    gc.start();
    const cpu = process.cpuUsage();
    const began = performance.now();
    await sleep(seconds * 1000);
    // Stop producing but let the pacer drain: closing the session drops what it still holds.
    await source.stop();
    await sleep(DRAIN_MS);
    await session.close();
    const wall = performance.now() - began;
    const used = process.cpuUsage(cpu);
    lag.disable();
    const hostGc = gc.stop();
    child.send({ kind: "finish" } satisfies ToClient);
    const client = await next("results");
    if (proxy !== null)
      console.log(`loss ${spec.kind === "lossy" ? spec.loss * 100 : 0}% proxy`, proxy.stats);

    const transport: number[] = [];
    const queued: number[] = [];
    for (const [frameId, doneOnChild] of client.completions) {
      const done = doneOnChild - clock.offset;
      const q = queuedAt.get(frameId);
      const s = sentAt.get(frameId);
      if (q !== undefined) queued.push(done - q);
      if (s !== undefined) transport.push(done - s);
    }
    return {
      transport,
      queued,
      framesSent: session.stats.framesSent,
      framesComplete: client.completions.length,
      hostCpuMs: (used.user + used.system) / 1000,
      hostWallMs: wall,
      clientCpuMs: client.cpuMs,
      clientWallMs: client.wallMs,
      bytes: client.bytes,
      resent: session.stats.fragmentsResent,
      nacks: client.nacks,
      frameDrops: client.frameDrops,
      hostLoopDelayMaxMs: lag.max / 1e6,
      clientLoopDelayMaxMs: client.loopDelayMaxMs,
      hostGc,
      clientGc: client.gc,
      clockErrorMs: clock.halfTrip,
    };
  } finally {
    await link?.close();
    await proxy?.close();
    for (const spawned of [child, forwarder]) {
      if (spawned === null) continue;
      spawned.kill("SIGTERM");
      if (spawned.exitCode === null && spawned.signalCode === null) await once(spawned, "exit");
    }
  }
}

async function main(): Promise<void> {
  const missing = DAEMON_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
  if (missing.length > 0) {
    throw new Error(
      `bench:e2e measures the processes as they are deployed, with ${missing.join(" ")}: ` +
        `run it as \`npm run bench:e2e\` (node ${DAEMON_NODE_FLAGS.join(" ")} --import tsx bench/e2e.ts)`,
    );
  }
  console.log(
    `e2e: ${FPS} fps, ${FRAME_BYTES} B frames, ${KEYFRAME_BYTES} B keyframe every ${KEYFRAME_INTERVAL} ` +
      `(${BITRATE / 1e6} Mbit/s); host in this process, client in a child, relay in a third`,
  );
  const authority = new LeaseAuthority();
  const edge = await FakeEdge.start({
    enrollmentTokens: [ENROLLMENT_TOKEN],
    // Heartbeats at the edge's default interval (WAVRY_RELAY_HEARTBEAT_INTERVAL_MS), as deployed.
    control: { leaseKeys: [authority.certificate("lk1")], heartbeatIntervalMs: 5000 },
  });
  const direct: Sample[] = [];
  const relayed: Sample[] = [];
  const forwarded: Sample[] = [];
  const inProcess: Sample[] = [];
  let relayCounters: RelayCounters = {
    forwarded: 0,
    drops: {},
    loopDelayP99Ms: 0,
    loopDelayMaxMs: 0,
    gc: NO_GC,
  };
  try {
    // The relay in its own process, as deployed (on another machine in practice): the figure for the target.
    // Every round runs each path once, each round in another order, so all paths meet the same moments of a
    // noisy machine and none is favoured by its place in a round.
    const dir = newTempDir();
    const child = fork(import.meta.filename, ["relay-child"], {
      env: { ...process.env, ...relayEnv(edge, authority, path.join(dir, "keys", "relay.key")) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      const [info] = (await once(child, "message", { signal: AbortSignal.timeout(20_000) })) as [RelayOption];
      child.send("start");
      const paths = [
        { name: "direct", samples: direct, spec: { kind: "direct" } },
        { name: "relayed", samples: relayed, spec: { kind: "relay", relay: { ...info, authority } } },
        { name: "forwarded", samples: forwarded, spec: { kind: "forwarder" } },
      ] as const satisfies readonly { name: string; samples: Sample[]; spec: PathSpec }[];
      for (const [round, indices] of CLEAN_ORDERS.entries()) {
        const order = indices.map((index) => paths[index]);
        for (const path of order) path.samples.push(await run(path.spec, CLEAN_SECONDS));
        console.log(
          `clean round ${round + 1}/${CLEAN_ORDERS.length} done (${order.map((p) => p.name).join(", ")})`,
        );
      }
      child.send("stats");
      const [counters] = await once(child, "message", { signal: AbortSignal.timeout(5_000) });
      relayCounters = counters as RelayCounters;
      console.log("relay counters (child)", relayCounters);
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    // The relay sharing the host's event loop, for comparison.
    const relay = await startTestRelay({ edge, authority, dir });
    try {
      await waitFor(() => relay.node.ready(), "the relay's registration", 10_000);
      const { address, port } = relay.node.udpAddress;
      const option = { address, port, relayId: relay.node.relayId, authority };
      for (let round = 0; round < IN_PROCESS_ROUNDS; round++) {
        inProcess.push(await run({ kind: "relay", relay: option }, CLEAN_SECONDS));
      }
    } finally {
      await relay.dispose();
    }
  } finally {
    await edge.pause();
  }
  const directResult = pooled(direct);
  const relayedResult = pooled(relayed);
  const forwardedResult = pooled(forwarded);
  const inProcessResult = pooled(inProcess);
  console.log("direct", directResult);
  console.log("relayed (relay in its own process)", relayedResult);
  console.log("forwarded (bare dgram forwarder in its own process)", forwardedResult);
  console.log("relayed (relay in the host process)", inProcessResult);

  const lossy: Record<string, RunResult> = {};
  for (const loss of [0.01, 0.05, 0.1]) {
    const result = pooled([await run({ kind: "lossy", loss }, LOSSY_SECONDS)]);
    lossy[`${loss * 100}%`] = result;
    console.log(`loss ${loss * 100}%`, result);
  }

  const relayAddsP99Ms = round2(relayedResult.transportP99Ms - directResult.transportP99Ms);
  const summary = {
    bench: "e2e",
    nodeFlags: DAEMON_NODE_FLAGS,
    fps: FPS,
    bitrateMbps: BITRATE / 1e6,
    frameBytes: FRAME_BYTES,
    keyframeBytes: KEYFRAME_BYTES,
    cpuNote:
      "hostCpuPercent / clientCpuPercent: process.cpuUsage of the host and the client process over each run (the host's includes the relay only in relayedInProcess)",
    direct: directResult,
    relayed: relayedResult,
    relayCounters,
    forwarded: forwardedResult,
    relayedInProcess: inProcessResult,
    relayInProcessAddsP99Ms: round2(inProcessResult.transportP99Ms - directResult.transportP99Ms),
    relayAddsP50Ms: round2(relayedResult.transportP50Ms - directResult.transportP50Ms),
    relayAddsP99Ms,
    forwarderAddsP99Ms: round2(forwardedResult.transportP99Ms - directResult.transportP99Ms),
    relayOverForwarderP99Ms: round2(relayedResult.transportP99Ms - forwardedResult.transportP99Ms),
    lossy,
    targets: {
      relayAddsP99AtMost1Ms: relayAddsP99Ms <= 1,
      relayInProcessAddsP99AtMost1Ms: inProcessResult.transportP99Ms - directResult.transportP99Ms <= 1,
      completeAt5PercentLossAtLeast99: (lossy["5%"]?.completeRatio ?? 0) >= 0.99,
    },
  };
  console.log(JSON.stringify(summary));
}

if (process.argv[2] === "relay-child") await relayChild();
else if (process.argv[2] === "client-child") await clientChild();
else if (process.argv[2] === "forwarder-child") forwarderChild();
else await main();
