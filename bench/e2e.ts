/**
 * End-to-end media transport benchmark (`npm run bench:e2e`), loopback only: synthetic frames (random bytes
 * sized for 20 Mbit/s at 60 fps, a keyframe every 60 frames at 4x the size of the others) from a HostSession
 * to a ClientSession over a real PeerLink, on the direct path and through an in-process relay node with real
 * leases, then through a seeded lossy proxy (1%, 5%, 10% loss, plus 1% duplication and 2% reordering).
 *
 * Delay figures (ms, one process, one clock):
 * - transport: the frame's last data fragment leaving the pacer → the client completing the frame (seal,
 *   UDP, relay, open, reassembly);
 * - queued: the frame handed to the host session → complete (adds the pacer draining the frame).
 * The congestion controller is pinned to 25..50 Mbit/s (pacing ≥ 37.5 Mbit/s) so the synthetic source, which
 * cannot change its rate, never backs up the pacer: the figures are the transport's, not the controller's.
 * The relayed run uses a relay node in a child process (the target's figure); a second relayed run shares this
 * process's event loop with host and client, for comparison.
 * CPU is process.cpuUsage of this process: host and client share it (and the relay, in the in-process run only).
 * Last line: one JSON object with every figure.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { PeerLink, type PeerLinkOptions, type UdpAddress } from "../endpoint/peer-link/peer-link.ts";
import { ClientSession } from "../endpoint/session/client-session.ts";
import { HostSession } from "../endpoint/session/host-session.ts";
import { SyntheticVideoSource } from "../endpoint/session/synthetic-source.ts";
import { constantTimeEqual } from "../protocol/bytes.ts";
import { generateX25519KeyPair, type KeyPair } from "../protocol/crypto/backend.ts";
import { nodeBackend } from "../protocol/crypto/node-backend.ts";
import { FRAME_DROP_REASONS, type ReassemblyDropReason } from "../protocol/media/reassembler.ts";
import { loadConfig } from "../relay-node/config.ts";
import { silentLogger } from "../relay-node/log.ts";
import { startRelayNode } from "../relay-node/relay-node.ts";
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
const CLEAN_SECONDS = 10;
const LOSSY_SECONDS = 7;
const DRAIN_MS = 500;

const random = (length: number) => new Uint8Array(randomBytes(length));
const is = (keys: KeyPair) => (key: Uint8Array) => constantTimeEqual(key, keys.publicKey);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round2 = (value: number) => Math.round(value * 100) / 100;

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

interface Links {
  readonly host: PeerLink;
  readonly client: PeerLink;
  close(): Promise<void>;
}

interface RelayOption {
  readonly address: string;
  readonly port: number;
  readonly relayId: string;
  readonly authority: LeaseAuthority;
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
  process.on("message", (request) => {
    if (request === "start") {
      lag.reset();
      lag.enable();
      return;
    }
    if (request !== "stats") return;
    lag.disable();
    const drops = Object.fromEntries(Object.entries(node.stats.dropsByReason()).filter(([, n]) => n > 0));
    process.send?.({
      forwarded: node.stats.forwardedPackets,
      drops,
      loopDelayP99Ms: round2(lag.percentile(99) / 1e6),
      loopDelayMaxMs: round2(lag.max / 1e6),
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

/** Establishes a link pair: direct to `candidate(host)`, or relay-only when `relay` is given. */
async function links(options: {
  candidate?: (host: UdpAddress) => Promise<UdpAddress>;
  relay?: RelayOption;
}): Promise<Links> {
  const sessionId = newSessionId();
  const hostKeys = generateX25519KeyPair(nodeBackend, random);
  const clientKeys = generateX25519KeyPair(nodeBackend, random);
  const common: Partial<PeerLinkOptions> & { sessionId: Uint8Array } = {
    sessionId,
    bind: { address: "127.0.0.1" },
    tickMs: 10,
  };
  const relay = options.relay;
  const assignment = (role: "host" | "client") => {
    if (relay === undefined) return {};
    const cnf = ed25519Pair();
    const lease = relay.authority.lease({ kid: "lk1", aud: relay.relayId, sid: sessionId, role, cnf });
    return { relay: { address: relay.address, port: relay.port, lease, signingKey: seed(cnf) } };
  };
  const host = await PeerLink.host({
    ...common,
    staticKeyPair: hostKeys,
    verifyRemoteStatic: is(clientKeys),
    ...assignment("host"),
  });
  const hostUp = once(host, "established", { signal: AbortSignal.timeout(10_000) });
  const candidate = options.candidate === undefined ? undefined : await options.candidate(host.localAddress);
  const client = await PeerLink.client({
    ...common,
    staticKeyPair: clientKeys,
    verifyRemoteStatic: is(hostKeys),
    ...assignment("client"),
    ...(candidate !== undefined && { candidates: [candidate] }),
  });
  await Promise.all([once(client, "established", { signal: AbortSignal.timeout(10_000) }), hostUp]);
  return {
    host,
    client,
    close: async () => {
      await Promise.all([host.close(), client.close()]);
    },
  };
}

interface RelayCounters {
  readonly forwarded: number;
  readonly drops: Readonly<Record<string, number>>;
  /** The relay process's event-loop delay during the run (a stall there holds every datagram behind it). */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

interface RunResult {
  readonly framesSent: number;
  readonly framesComplete: number;
  readonly completeRatio: number;
  readonly transportP50Ms: number;
  readonly transportP99Ms: number;
  readonly queuedP50Ms: number;
  readonly queuedP99Ms: number;
  readonly cpuPercent: number;
  readonly mbitPerSecond: number;
  readonly resent: number;
  /** NACKs the client sent: with no loss on the path, each is a stall of ≥ 10 ms somewhere (a CPU or GC pause). */
  readonly nacks: number;
  /** Frame-level reassembler drops by reason (a given-up frame, and the frames withheld until a keyframe). */
  readonly frameDrops: Readonly<Record<string, number>>;
  /** This process's event-loop delay during the run (host and client share it). */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

/** Streams for `seconds` over `pair` and measures. */
async function run(pair: Links, seconds: number): Promise<RunResult> {
  const source = new SyntheticVideoSource({
    fps: FPS,
    frameBytes: FRAME_BYTES,
    keyframeBytes: KEYFRAME_BYTES,
    keyframeInterval: KEYFRAME_INTERVAL,
  });
  const queuedAt = new Map<number, number>();
  const sentAt = new Map<number, number>();
  const transport: number[] = [];
  const queued: number[] = [];
  let bytes = 0;
  const host = new HostSession({
    link: pair.host,
    source,
    onInput: () => undefined,
    congestion: { startBitrate: 25_000_000, minBitrate: 25_000_000, maxBitrate: 50_000_000 },
    onFrameQueued: (frameId, _unit, at) => queuedAt.set(frameId, at),
    onFrameSent: (frameId, at) => sentAt.set(frameId, at),
  });
  const client = new ClientSession({
    link: pair.client,
    onFrame: (unit, info) => {
      bytes += unit.data.length;
      const q = queuedAt.get(info.frameId);
      const s = sentAt.get(info.frameId);
      if (q !== undefined) queued.push(info.completedAt - q);
      if (s !== undefined) transport.push(info.completedAt - s);
    },
  });
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const cpu = process.cpuUsage();
  const began = performance.now();
  await sleep(seconds * 1000);
  // Stop producing but let the pacer drain: closing the session drops what it still holds.
  await source.stop();
  await sleep(DRAIN_MS);
  await host.close();
  client.close();
  const wall = performance.now() - began;
  const used = process.cpuUsage(cpu);
  lag.disable();
  const framesSent = host.stats.framesSent;
  const framesComplete = client.stats.framesComplete;
  return {
    framesSent,
    framesComplete,
    completeRatio: Math.round((framesComplete / framesSent) * 10_000) / 10_000,
    transportP50Ms: round2(percentile(transport, 0.5)),
    transportP99Ms: round2(percentile(transport, 0.99)),
    queuedP50Ms: round2(percentile(queued, 0.5)),
    queuedP99Ms: round2(percentile(queued, 0.99)),
    cpuPercent: Math.round(((used.user + used.system) / 1000 / wall) * 1000) / 10,
    mbitPerSecond: round2((bytes * 8) / (wall / 1000) / 1e6),
    resent: host.stats.fragmentsResent,
    nacks: client.stats.nacksSent,
    frameDrops: Object.fromEntries(
      Object.entries(client.stats.drops).filter(
        ([reason, n]) => FRAME_DROP_REASONS.has(reason as ReassemblyDropReason) && (n ?? 0) > 0,
      ),
    ),
    loopDelayP99Ms: round2(lag.percentile(99) / 1e6),
    loopDelayMaxMs: round2(lag.max / 1e6),
  };
}

async function main(): Promise<void> {
  console.log(
    `e2e: ${FPS} fps, ${FRAME_BYTES} B frames, ${KEYFRAME_BYTES} B keyframe every ${KEYFRAME_INTERVAL} ` +
      `(${BITRATE / 1e6} Mbit/s); host, client and relay share one process`,
  );
  const direct = await links({ candidate: async (host) => host });
  const directResult = await run(direct, CLEAN_SECONDS);
  await direct.close();
  console.log("direct", directResult);

  const authority = new LeaseAuthority();
  const edge = await FakeEdge.start({
    enrollmentTokens: [ENROLLMENT_TOKEN],
    // Heartbeats at the edge's default interval (WAVRY_RELAY_HEARTBEAT_INTERVAL_MS), as deployed.
    control: { leaseKeys: [authority.certificate("lk1")], heartbeatIntervalMs: 5000 },
  });
  let relayedResult: RunResult;
  let relayCounters: RelayCounters = { forwarded: 0, drops: {}, loopDelayP99Ms: 0, loopDelayMaxMs: 0 };
  let inProcessResult: RunResult;
  try {
    // The relay in its own process, as deployed (on another machine in practice): the figure for the target.
    const dir = newTempDir();
    const child = fork(import.meta.filename, ["relay-child"], {
      env: { ...process.env, ...relayEnv(edge, authority, path.join(dir, "keys", "relay.key")) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      const [info] = (await once(child, "message", { signal: AbortSignal.timeout(20_000) })) as [RelayOption];
      const relayed = await links({ relay: { ...info, authority } });
      child.send("start");
      relayedResult = await run(relayed, CLEAN_SECONDS);
      await relayed.close();
      child.send("stats");
      const [counters] = await once(child, "message", { signal: AbortSignal.timeout(5_000) });
      relayCounters = counters as RelayCounters;
      console.log("relay counters (child)", relayCounters);
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    console.log("relayed (relay in a child process)", relayedResult);
    // The relay sharing the event loop with host and client, for comparison.
    const relay = await startTestRelay({ edge, authority, dir });
    try {
      await waitFor(() => relay.node.ready(), "the relay's registration", 10_000);
      const { address, port } = relay.node.udpAddress;
      const relayed = await links({ relay: { address, port, relayId: relay.node.relayId, authority } });
      inProcessResult = await run(relayed, CLEAN_SECONDS);
      await relayed.close();
    } finally {
      await relay.dispose();
    }
    console.log("relayed (relay in this process)", inProcessResult);
  } finally {
    await edge.pause();
  }

  const lossy: Record<string, RunResult> = {};
  for (const loss of [0.01, 0.05, 0.1]) {
    let proxy: LossyProxy | undefined;
    const pair = await links({
      candidate: async (host) => {
        proxy = await LossyProxy.start({ upstream: host, seed: 0x5eed + loss * 100 });
        return proxy.address;
      },
    });
    if (proxy === undefined) throw new Error("proxy not started");
    // Impaired only once established: the handshake's own retransmission is not what is measured.
    proxy.impairment = { loss, duplicate: 0.01, reorder: 0.02, reorderDelayMs: 3 };
    const result = await run(pair, LOSSY_SECONDS);
    await pair.close();
    await proxy.close();
    lossy[`${loss * 100}%`] = result;
    console.log(`loss ${loss * 100}%`, result, proxy.stats);
  }

  const relayAddsP99Ms = round2(relayedResult.transportP99Ms - directResult.transportP99Ms);
  const summary = {
    bench: "e2e",
    fps: FPS,
    bitrateMbps: BITRATE / 1e6,
    frameBytes: FRAME_BYTES,
    keyframeBytes: KEYFRAME_BYTES,
    cpuNote:
      "process.cpuUsage of the one process holding host and client (and the relay only in relayedInProcess)",
    direct: directResult,
    relayed: relayedResult,
    relayCounters,
    relayedInProcess: inProcessResult,
    relayInProcessAddsP99Ms: round2(inProcessResult.transportP99Ms - directResult.transportP99Ms),
    relayAddsP50Ms: round2(relayedResult.transportP50Ms - directResult.transportP50Ms),
    relayAddsP99Ms,
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
else await main();
