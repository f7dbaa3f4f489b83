import { execFileSync } from "node:child_process";
import type { ServerMessageOf } from "../../protocol/signaling/messages.ts";
import type { EndpointConfig } from "../config.ts";
import type { EdgeClient } from "../edge-client/edge-client.ts";
import type { DeviceIdentity } from "../identity/device-identity.ts";
import type { InputInjector } from "../input/input-injector.ts";
import { LoggingInjector } from "../input/logging-injector.ts";
import { XdotoolInjector } from "../input/xdotool-injector.ts";
import { selectSource } from "../media/select-source.ts";
import type { SourceKind } from "../media/video-source.ts";
import { describePath } from "../peer-link/paths.ts";
import { PeerLink, type RelayAssignment } from "../peer-link/peer-link.ts";
import { HostSession } from "../session/host-session.ts";
import type { SignalingClient } from "../signaling/signaling-client.ts";
import { TrustStore } from "../trust/trust-store.ts";
import {
  bindUdpSocket,
  connectSignaling,
  type DaemonLog,
  localCandidates,
  type PeerKeyLookup,
  PeerKeyRefused,
  pathKind,
  preparePeerVerifier,
  resolveRelayAddr,
  sasLine,
  sessionIdBytes,
  waitEstablished,
} from "./daemon-support.ts";

/**
 * `wavry host`: stays connected to the edge's signaling socket and serves one session at a time. For each
 * `session.offer` it checks the client's key against the trust store, accepts with its candidates, waits for the
 * relay when the client asked for one, and once the Noise handshake is done streams the chosen source and injects
 * the client's input. A second offer while a session runs is rejected as busy.
 */

/** How the host injects the client's input. */
export type InjectKind = "xdotool" | "log";

/** Options of {@link runHostDaemon}. */
export interface HostDaemonOptions {
  readonly config: EndpointConfig;
  readonly edge: EdgeClient;
  readonly identity: DeviceIdentity;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly source: SourceKind;
  readonly inject: InjectKind;
  /** Publish no direct address: every session goes through a relay (the client asks for one). */
  readonly relayOnly?: boolean;
  /** For first contact with an unpinned client (development only). */
  readonly lookupOwnDevice: PeerKeyLookup;
  readonly log: DaemonLog;
  /** Aborting stops the running session and the daemon. */
  readonly signal: AbortSignal;
}

/** How long the host waits for the client's handshake after accepting. */
const HANDSHAKE_WAIT_MS = 20_000;

/** Runs the host until `signal` aborts. Rejects only when signaling cannot be set up at all. */
export async function runHostDaemon(options: HostDaemonOptions): Promise<void> {
  const { log, signal } = options;
  const signaling = await connectSignaling(options.edge, options.identity, options.env, log);
  const relays = new Map<string, ServerMessageOf<"relay.assigned">>();
  signaling.on("relay.assigned", (assigned) => relays.set(assigned.sessionId, assigned));
  log(`host ${options.identity.deviceId} is online; waiting for a session`);
  log.event("info", "host_online", "ok", { deviceId: options.identity.deviceId });
  let current: Promise<void> | null = null;
  const stopCurrent = new AbortController();
  signaling.on("session.offer", (offer) => {
    if (current !== null) {
      signaling.rejectSession({ sessionId: offer.sessionId, reason: "busy" });
      log.event("info", "session_offer", "refused", {
        sessionId: offer.sessionId,
        peerId: offer.from,
        reason: "busy",
      });
      return;
    }
    current = serve(options, signaling, relays, offer, stopCurrent.signal)
      .catch((error: unknown) =>
        log.event("error", "session", "failed", {
          sessionId: offer.sessionId,
          error: error instanceof Error ? error.message : "error",
        }),
      )
      .finally(() => {
        relays.delete(offer.sessionId);
        current = null;
        if (!signal.aborted) log("waiting for a session");
      });
  });
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  stopCurrent.abort();
  if (current !== null) await current;
  await signaling.close();
}

async function makeInjector(kind: InjectKind, env: HostDaemonOptions["env"], log: DaemonLog) {
  if (kind === "log") return new LoggingInjector((line) => log(line.trimEnd()));
  const display = env.DISPLAY;
  if (display === undefined || display === "") throw new Error("--inject xdotool needs DISPLAY (e.g. :0)");
  return XdotoolInjector.start({
    display,
    onProblem: (problem) => log.event("warn", "xdotool", "problem", { detail: problem }),
  });
}

async function serve(
  options: HostDaemonOptions,
  signaling: SignalingClient,
  relays: Map<string, ServerMessageOf<"relay.assigned">>,
  offer: ServerMessageOf<"session.offer">,
  stop: AbortSignal,
): Promise<void> {
  const { log, identity } = options;
  const sessionId = offer.sessionId;
  let verifier: Awaited<ReturnType<typeof preparePeerVerifier>>;
  try {
    verifier = await preparePeerVerifier({
      store: TrustStore.open(options.config.home),
      config: options.config,
      deviceId: offer.from,
      edgeKeyText: offer.fromX25519PublicKey,
      lookupOwnDevice: options.lookupOwnDevice,
      log,
    });
  } catch (error) {
    log(error instanceof Error ? error.message : "the client's key could not be checked");
    log.event("warn", "session_offer", "declined", {
      sessionId,
      peerId: offer.from,
      reason: error instanceof PeerKeyRefused ? "key_mismatch" : "key_unchecked",
    });
    signaling.rejectSession({ sessionId, reason: "declined" });
    if (error instanceof PeerKeyRefused) {
      signaling.reportSession({ sessionId, outcome: { result: "failed", reason: "key_mismatch" } });
    }
    return;
  }
  const report = (outcome: Parameters<SignalingClient["reportSession"]>[0]["outcome"]) =>
    signaling.reportSession({ sessionId, outcome });

  // The link listens before its port is published, on the socket whose port is published.
  const socket = await bindUdpSocket();
  const link = await PeerLink.host({
    sessionId: sessionIdBytes(sessionId),
    staticKeyPair: identity.noiseStaticKeyPair(),
    verifyRemoteStatic: verifier.verify,
    socket,
  });
  // A relay may be assigned at any time: with the offer (wantRelay), or later when the client falls back to one.
  const useRelay = (assigned: ServerMessageOf<"relay.assigned">) => {
    resolveRelayAddr(assigned.relayAddr).then(
      (address) => {
        const relay: RelayAssignment = {
          ...address,
          lease: assigned.lease,
          signingKey: (message) => identity.sign(message),
        };
        link.useRelay(relay);
        log(`relay assigned for session ${sessionId}`);
        log.event("info", "relay", "assigned", { sessionId, relayId: assigned.relayId });
      },
      () => log.event("warn", "relay", "unresolved", { sessionId, relayId: assigned.relayId }),
    );
  };
  const offRelay = signaling.on("relay.assigned", (assigned) => {
    if (assigned.sessionId === sessionId) useRelay(assigned);
  });
  const early = relays.get(sessionId);
  if (early !== undefined) useRelay(early);
  const candidates = options.relayOnly === true ? [] : localCandidates(link.localAddress.port);
  signaling.acceptSession({ sessionId, candidates });
  log.event("info", "session_offer", "accepted", {
    sessionId,
    peerId: offer.from,
    wantRelay: offer.wantRelay === true,
    candidateCount: candidates.length,
  });

  let session: HostSession | null = null;
  let injector: InputInjector | null = null;
  try {
    const established = await waitEstablished(link, HANDSHAKE_WAIT_MS, stop);
    if (established === null) {
      const refusal = verifier.refusal();
      report({ result: "failed", reason: refusal !== null ? "key_mismatch" : "handshake_timeout" });
      log(`session ${refusal !== null ? "refused" : "not established (no handshake)"}`);
      log.event("warn", "session", "failed", {
        sessionId,
        reason: refusal !== null ? "key_mismatch" : "handshake_timeout",
      });
      return;
    }
    const handshakeMs = Math.min(Math.round(established.handshakeMs), 600_000);
    report({ result: "established", path: pathKind(established.path), handshakeMs });
    log(`session established with ${offer.from} via ${describePath(established.path)} in ${handshakeMs} ms`);
    log.event("info", "session", "established", {
      sessionId,
      peerId: offer.from,
      path: pathKind(established.path),
      handshakeMs,
    });
    log(sasLine(established.handshakeHash));
    link.on("pathChanged", (path) =>
      log.event("info", "path", "changed", { sessionId, path: pathKind(path) }),
    );

    injector = await makeInjector(options.inject, options.env, log);
    const inject = injector;
    const size = options.source === "x11" ? displaySize(options.env.DISPLAY) : null;
    const source = selectSource(options.source, {
      log: (level, event, detail) =>
        log.event(level, event, level === "error" ? "failed" : "ok", { sessionId, detail }),
      ...(options.env.DISPLAY !== undefined && { display: options.env.DISPLAY }),
      ...(size !== null && { width: size.width, height: size.height }),
    });
    log(`streaming the ${source.kind} source`);
    log.event("info", "media_source", "started", { sessionId, source: source.kind });
    session = new HostSession({ link, source, onInput: (event) => inject.inject(event) });
    const reason = await new Promise<string>((resolve) => {
      link.once("failed", (why) => resolve(`link ${why}`));
      stop.addEventListener("abort", () => resolve("host stopping"), { once: true });
    });
    log(`session ended (${reason}); ${session.stats.framesSent} frames sent`);
    log.event("info", "session", "ended", { sessionId, reason, framesSent: session.stats.framesSent });
  } finally {
    offRelay();
    await session?.close();
    await injector?.close();
    await link.close();
  }
}

/**
 * The X display's size, so x11 capture covers the whole screen (ffmpeg refuses a capture area larger than the
 * screen). Even dimensions, as yuv420p needs; null when it cannot be read (the source's default size is used).
 */
function displaySize(display: string | undefined): { width: number; height: number } | null {
  if (display === undefined) return null;
  try {
    const out = execFileSync("xdotool", ["getdisplaygeometry"], {
      env: { ...process.env, DISPLAY: display },
      encoding: "utf8",
      timeout: 5000,
    });
    const match = /^(\d{2,5}) (\d{2,5})\s*$/.exec(out);
    if (match === null) return null;
    return { width: Number(match[1]) & ~1, height: Number(match[2]) & ~1 };
  } catch {
    return null;
  }
}
