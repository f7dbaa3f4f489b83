import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClipVideoSource } from "../../endpoint/media/clip-source.ts";
import { FileSink } from "../../endpoint/media/file-sink.ts";
import type { EncodedUnit, VideoSource } from "../../endpoint/media/video-source.ts";
import { PeerLink, type PeerLinkOptions, type UdpAddress } from "../../endpoint/peer-link/peer-link.ts";
import { ClientSession, type ReceivedFrameInfo } from "../../endpoint/session/client-session.ts";
import { HostSession, type HostSessionOptions } from "../../endpoint/session/host-session.ts";
import { SyntheticVideoSource } from "../../endpoint/session/synthetic-source.ts";
import { constantTimeEqual } from "../../protocol/bytes.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import { generateX25519KeyPair, type KeyPair } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { type Impairment, LossyProxy, NO_IMPAIRMENT } from "../support/lossy-proxy.ts";
import { FakeEdge } from "../support/relay-fake-edge.ts";
import {
  ENROLLMENT_TOKEN,
  newSessionId,
  startTestRelay,
  type TestRelay,
  waitFor,
} from "../support/relay-harness.ts";
import { type Ed25519Pair, ed25519Pair, LeaseAuthority } from "../support/relay-lease-kit.ts";

// The media session end to end on loopback (issue 5, "Media and input"): real UDP, the real Noise link, the host
// and client sessions, optionally through a seeded lossy, reordering, duplicating proxy.

const FFMPEG = "/usr/bin/ffmpeg";
const random = (length: number) => new Uint8Array(randomBytes(length));
const is = (keys: KeyPair) => (key: Uint8Array) => constantTimeEqual(key, keys.publicKey);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Pair {
  readonly host: PeerLink;
  readonly client: PeerLink;
  readonly proxy: LossyProxy | undefined;
}

interface RelayAt {
  readonly relay: TestRelay;
  readonly authority: LeaseAuthority;
}

const seedOf = (pair: Ed25519Pair) => {
  const d = pair.privateKey.export({ format: "jwk" }).d;
  if (typeof d !== "string") throw new Error("unexpected JWK export");
  return new Uint8Array(Buffer.from(d, "base64url"));
};

/**
 * A direct host/client pair, optionally with the client reaching the host through a lossy proxy; or, with
 * `relay`, a relay-only pair whose client reaches the relay through the (clean) proxy.
 */
async function pair(
  options: { proxy?: boolean; observe?: (datagram: Buffer) => void; relay?: RelayAt } = {},
): Promise<Pair> {
  const sessionId = newSessionId();
  const hostKeys = generateX25519KeyPair(nodeBackend, random);
  const clientKeys = generateX25519KeyPair(nodeBackend, random);
  const common: Partial<PeerLinkOptions> & { sessionId: Uint8Array } = {
    sessionId,
    bind: { address: "127.0.0.1" },
    tickMs: 10,
  };
  const at = options.relay;
  const relayAddress = at?.relay.node.udpAddress;
  const assignment = (role: "host" | "client", address: UdpAddress | undefined) => {
    if (at === undefined || address === undefined) return {};
    const cnf = ed25519Pair();
    const lease = at.authority.lease({ kid: "lk1", aud: at.relay.node.relayId, sid: sessionId, role, cnf });
    return { relay: { ...address, lease, signingKey: seedOf(cnf) } };
  };
  const host = await PeerLink.host({
    ...common,
    staticKeyPair: hostKeys,
    verifyRemoteStatic: is(clientKeys),
    ...assignment("host", relayAddress),
  });
  cleanups.push(() => host.close());
  let candidate: UdpAddress = host.localAddress;
  let proxy: LossyProxy | undefined;
  if (options.proxy === true) {
    proxy = await LossyProxy.start({
      upstream:
        relayAddress === undefined ? host.localAddress : { address: "127.0.0.1", port: relayAddress.port },
      seed: 0x5eed,
      ...(options.observe !== undefined && { observe: options.observe }),
    });
    const started = proxy;
    cleanups.push(() => started.close());
    candidate = proxy.address;
  }
  const hostUp = once(host, "established", { signal: AbortSignal.timeout(5000) });
  const client = await PeerLink.client({
    ...common,
    staticKeyPair: clientKeys,
    verifyRemoteStatic: is(hostKeys),
    ...(at === undefined ? { candidates: [candidate] } : assignment("client", candidate)),
  });
  cleanups.push(() => client.close());
  await Promise.all([once(client, "established", { signal: AbortSignal.timeout(5000) }), hostUp]);
  return { host, client, proxy };
}

interface Sessions {
  readonly host: HostSession;
  readonly client: ClientSession;
  /** What the host queued, by frame id (the bytes each completed frame must equal). */
  readonly sent: Map<number, EncodedUnit>;
  readonly received: { unit: EncodedUnit; info: ReceivedFrameInfo }[];
  readonly inputs: InputEvent[];
}

function sessions(
  links: Pair,
  source: VideoSource,
  onFrame?: (unit: EncodedUnit) => void,
  extra: Partial<HostSessionOptions> = {},
): Sessions {
  const sent = new Map<number, EncodedUnit>();
  const received: { unit: EncodedUnit; info: ReceivedFrameInfo }[] = [];
  const inputs: InputEvent[] = [];
  const host = new HostSession({
    link: links.host,
    source,
    onInput: (event) => inputs.push(event),
    onFrameQueued: (frameId, unit) => sent.set(frameId, unit),
    ...extra,
  });
  cleanups.push(() => host.close());
  const client = new ClientSession({
    link: links.client,
    onFrame: (unit, info) => {
      received.push({ unit, info });
      onFrame?.(unit);
    },
  });
  cleanups.push(() => client.close());
  return { host, client, sent, received, inputs };
}

/** Every completed frame equals what the host sent under its id. */
function expectIntact(s: Sessions): void {
  let corrupt = 0;
  for (const { unit, info } of s.received) {
    const original = s.sent.get(info.frameId);
    if (original === undefined || !Buffer.from(original.data).equals(Buffer.from(unit.data))) corrupt++;
  }
  expect(corrupt).toBe(0);
}

const KEYS: InputEvent[] = [
  { type: "key", down: true, code: "ShiftLeft", modifiers: 0 },
  { type: "key", down: true, code: "KeyA", modifiers: 1 },
  { type: "mouse-absolute", x: 100, y: 65535 },
  { type: "button", down: true, button: "left" },
  { type: "mouse-relative", dx: -5, dy: 7 },
  { type: "button", down: false, button: "left" },
  { type: "wheel", dx: 0, dy: -120 },
  { type: "key", down: false, code: "KeyA", modifiers: 1 },
  { type: "key", down: false, code: "ShiftLeft", modifiers: 0 },
];

describe("media session: direct path", () => {
  it("streams the clip into a file that ffmpeg decodes, and delivers input in order", async () => {
    if (!existsSync(FFMPEG)) throw new Error(`${FFMPEG} missing: apt-get install -y ffmpeg`);
    const dir = mkdtempSync(path.join(tmpdir(), "wavry-session-test-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, "out.h264");
    const sink = await FileSink.open(file);
    const links = await pair();
    const source = new ClipVideoSource();
    const s = sessions(links, source, (unit) => sink.write(unit));

    const expected: InputEvent[] = [];
    for (let round = 0; round < 20; round++) {
      for (const event of KEYS) {
        expect(s.client.sendInput(event)).toBe(true);
        expected.push(event);
      }
      await sleep(100);
    }
    await sleep(1000);
    // Stop producing, let the pacer drain (closing the session drops what it still holds).
    await source.stop();
    await sleep(400);
    await s.host.close();
    s.client.close();
    await sink.close();

    expect(s.inputs).toEqual(expected);
    expect(s.client.inputQueued).toBe(0);
    const sentFrames = s.host.stats.framesSent;
    // 3 s at 30 fps.
    expect(sentFrames).toBeGreaterThanOrEqual(80);
    expect(s.client.stats.framesComplete).toBe(sentFrames);
    expectIntact(s);
    const decode = spawnSync(FFMPEG, ["-v", "error", "-i", file, "-f", "null", "-"], { encoding: "utf8" });
    expect(decode.status, decode.stderr).toBe(0);
    expect(decode.stderr).toBe("");
    const md5 = spawnSync(FFMPEG, ["-v", "error", "-i", file, "-f", "framemd5", "-"], { encoding: "utf8" });
    expect(md5.status).toBe(0);
    const frames = md5.stdout.split("\n").filter((line) => line !== "" && !line.startsWith("#")).length;
    expect(frames).toBe(sink.stats.written);
    expect(frames).toBeGreaterThanOrEqual(sentFrames - 2);
  });
});

describe("media session: lossy, reordering, duplicating path", () => {
  const lossy = (loss: number): Impairment => ({ loss, duplicate: 0.01, reorder: 0.02, reorderDelayMs: 3 });

  for (const loss of [0.01, 0.05, 0.1]) {
    it(`keeps frames coming at ${loss * 100}% loss, never corrupt${loss === 0.05 ? ", ≥ 99% complete" : ""}`, async () => {
      const links = await pair({ proxy: true });
      const proxy = links.proxy;
      if (proxy === undefined) throw new Error("no proxy");
      proxy.impairment = lossy(loss);
      const source = new SyntheticVideoSource({ fps: 60, frameBytes: 6000, keyframeBytes: 24_000 });
      const s = sessions(links, source, undefined, {
        congestion: { startBitrate: 5_000_000, minBitrate: 3_000_000 },
      });
      await sleep(2500);
      await source.stop();
      // Let the pacer drain and NACK rounds and resends finish for the last frames sent.
      await sleep(500);
      await s.host.close();
      s.client.close();

      const sent = s.host.stats.framesSent;
      const complete = s.client.stats.framesComplete;
      expect(sent).toBeGreaterThan(120);
      expect(proxy.stats.dropped).toBeGreaterThan(0);
      expectIntact(s);
      // Frames keep arriving in the last part of the run too, not just before the first loss.
      const lastId = Math.max(...s.received.map((r) => r.info.frameId));
      expect(lastId).toBeGreaterThan(sent - 30);
      if (loss === 0.05) expect(complete / sent).toBeGreaterThanOrEqual(0.99);
      else expect(complete / sent).toBeGreaterThanOrEqual(0.9);
    });
  }
});

describe("media session: what the path sees", () => {
  const authority = new LeaseAuthority();
  let edge: FakeEdge | undefined;
  let relay: TestRelay | undefined;

  beforeAll(async () => {
    edge = await FakeEdge.start({
      enrollmentTokens: [ENROLLMENT_TOKEN],
      control: { leaseKeys: [authority.certificate("lk1")] },
    });
    const started = await startTestRelay({ edge, authority });
    relay = started;
    await waitFor(() => started.node.ready(), "the relay's registration");
  });

  afterAll(async () => {
    await relay?.dispose();
    await edge?.pause();
  });

  for (const via of ["direct", "relay"] as const) {
    it(`never carries a marker from video units or input events in the clear (${via})`, async () => {
      const marker = Buffer.from("MarkerQx7Zp2Lk9W");
      expect(marker.length).toBe(16);
      let datagrams = 0;
      let leaks = 0;
      const observe = (datagram: Buffer) => {
        datagrams++;
        if (datagram.indexOf(marker) >= 0) leaks++;
      };
      let at: RelayAt | undefined;
      if (via === "relay") {
        if (relay === undefined) throw new Error("no relay");
        at = { relay, authority };
      }
      const links = await pair({ proxy: true, observe, ...(at !== undefined && { relay: at }) });
      expect(links.client.activePath).toEqual(
        via === "relay" ? { kind: "relay" } : { kind: "direct", ...links.proxy?.address },
      );
      const source = new SyntheticVideoSource({ fps: 30, frameBytes: 3000, marker });
      const s = sessions(links, source, undefined, { congestion: { startBitrate: 2_000_000 } });
      for (let i = 0; i < 20; i++) {
        s.client.sendInput({ type: "key", down: i % 2 === 0, code: marker.toString("latin1"), modifiers: 0 });
        await sleep(30);
      }
      await sleep(500);
      await waitFor(() => s.inputs.length === 20, "input at the host");
      // The marker did travel: in every unit the client completed and every key event the host got.
      expect(s.received.length).toBeGreaterThan(20);
      for (const { unit } of s.received) expect(Buffer.from(unit.data).indexOf(marker)).toBe(8);
      expect(s.inputs.every((e) => e.type === "key" && e.code === marker.toString("latin1"))).toBe(true);
      expect(datagrams).toBeGreaterThan(100);
      expect(leaks).toBe(0);
      expect(links.proxy?.impairment).toEqual(NO_IMPAIRMENT);
    });
  }
});
