import type { Socket } from "node:dgram";
import type { ServerMessageOf } from "../../protocol/signaling/messages.ts";
import type { EndpointConfig } from "../config.ts";
import type { EdgeClient } from "../edge-client/edge-client.ts";
import type { DeviceIdentity } from "../identity/device-identity.ts";
import { FileSink } from "../media/file-sink.ts";
import { describePath } from "../peer-link/paths.ts";
import { PeerLink } from "../peer-link/peer-link.ts";
import { ClientSession } from "../session/client-session.ts";
import type { SignalingClient } from "../signaling/signaling-client.ts";
import { TrustStore } from "../trust/trust-store.ts";
import { startViewer, type Viewer } from "../viewer/viewer-server.ts";
import {
  bindUdpSocket,
  connectSignaling,
  type DaemonLog,
  localCandidates,
  type PeerKeyLookup,
  PeerKeyRefused,
  parseCandidates,
  pathKind,
  preparePeerVerifier,
  resolveRelayAddr,
  sasLine,
  sessionIdBytes,
  sleep,
  waitEstablished,
} from "./daemon-support.ts";

/**
 * `wavry connect DEVICE`: asks the edge for a session with a host, checks the host's key against the trust
 * store, runs the peer link (direct candidates first, or only the relay with `path: "relay"`) and a client
 * session whose frames go to the local viewer and/or a raw H.264 file.
 */

/** Options of {@link runClientDaemon}. */
export interface ClientDaemonOptions {
  readonly config: EndpointConfig;
  readonly edge: EdgeClient;
  readonly identity: DeviceIdentity;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly hostId: string;
  /** `direct` tries the host's candidates (and the relay when assigned); `relay` asks for and uses only the relay. */
  readonly path: "direct" | "relay";
  /** A file to write the received access units to (Annex B). */
  readonly recordPath?: string;
  readonly viewer: boolean;
  /** Stop after this many seconds; run until `signal` aborts when undefined. */
  readonly durationSecs?: number;
  readonly lookupOwnDevice: PeerKeyLookup;
  readonly log: DaemonLog;
  readonly signal: AbortSignal;
}

/** What a client run achieved. */
export interface ClientResult {
  readonly established: boolean;
  readonly path: "direct" | "relay" | null;
  readonly framesComplete: number;
  /** Units written to the record file (from the first keyframe on). */
  readonly framesRecorded: number;
}

const ANSWER_WAIT_MS = 20_000;
const RELAY_WAIT_MS = 10_000;
/** On the direct path: how long the direct candidates get alone before the client asks for a relay too. */
const DIRECT_FALLBACK_MS = 2_000;
const HANDSHAKE_WAIT_MS = 20_000;

type Answer =
  | { readonly kind: "accepted"; readonly message: ServerMessageOf<"session.accepted"> }
  | { readonly kind: "refused"; readonly text: string };

/** Waits for the host's answer to the request just sent (the first session event that concerns us). */
function waitAnswer(signaling: SignalingClient, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const offs: (() => void)[] = [];
    const done = (answer: Answer) => {
      clearTimeout(timer);
      for (const off of offs) off();
      resolve(answer);
    };
    const timer = setTimeout(
      () => done({ kind: "refused", text: "the host did not answer in time" }),
      timeoutMs,
    );
    offs.push(
      signaling.on("session.accepted", (message) => done({ kind: "accepted", message })),
      signaling.on("session.rejected", (message) =>
        done({ kind: "refused", text: `rejected (${message.reason})` }),
      ),
      signaling.on("session.failed", (message) =>
        done({ kind: "refused", text: `failed (${message.reason})` }),
      ),
      signaling.on("error", (message) => done({ kind: "refused", text: `edge error (${message.code})` })),
    );
  });
}

/** Runs one session to `hostId`; resolves when it ended (duration, abort, or the link failed). */
export async function runClientDaemon(options: ClientDaemonOptions): Promise<ClientResult> {
  const { log, identity } = options;
  const result = {
    established: false,
    path: null as "direct" | "relay" | null,
    framesComplete: 0,
    framesRecorded: 0,
  };
  // The duration counts from the start, so a session that never comes up still ends on time.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal.addEventListener("abort", onAbort, { once: true });
  const deadline =
    options.durationSecs === undefined ? null : setTimeout(() => stop.abort(), options.durationSecs * 1000);
  const relays = new Map<string, ServerMessageOf<"relay.assigned">>();
  let signaling: SignalingClient | null = null;
  let link: PeerLink | null = null;
  let socket: Socket | null = null;
  const offs: (() => void)[] = [];
  let fallbackTimer: NodeJS.Timeout | undefined;
  let session: ClientSession | null = null;
  let viewer: Viewer | null = null;
  let sink: FileSink | null = null;
  try {
    signaling = await connectSignaling(options.edge, identity, options.env, log);
    const channel = signaling;
    channel.on("relay.assigned", (assigned) => relays.set(assigned.sessionId, assigned));
    // Bound before its port is published, and handed to the peer link: nobody can take the port in between.
    socket = await bindUdpSocket();
    const port = socket.address().port;
    channel.requestSession({
      to: options.hostId,
      candidates: options.path === "relay" ? [] : localCandidates(port),
      ...(options.path === "relay" && { wantRelay: true }),
    });
    log.event("info", "session_request", "sent", { peerId: options.hostId, path: options.path });
    const answer = await waitAnswer(channel, ANSWER_WAIT_MS);
    if (answer.kind === "refused") {
      log(`no session: ${answer.text}`);
      log.event("warn", "session_request", "refused", { peerId: options.hostId, detail: answer.text });
      return result;
    }
    const accepted = answer.message;
    const sessionId = accepted.sessionId;
    const report = (outcome: Parameters<SignalingClient["reportSession"]>[0]["outcome"]) =>
      channel.reportSession({ sessionId, outcome });

    let verifier: Awaited<ReturnType<typeof preparePeerVerifier>>;
    try {
      verifier = await preparePeerVerifier({
        store: TrustStore.open(options.config.home),
        config: options.config,
        deviceId: accepted.host,
        edgeKeyText: accepted.hostX25519PublicKey,
        lookupOwnDevice: options.lookupOwnDevice,
        log,
      });
    } catch (error) {
      log(error instanceof Error ? error.message : "the host's key could not be checked");
      log.event("warn", "session", "cancelled", {
        sessionId,
        reason: error instanceof PeerKeyRefused ? "key_mismatch" : "key_unchecked",
      });
      channel.cancelSession({ sessionId });
      report({ result: "failed", reason: error instanceof PeerKeyRefused ? "key_mismatch" : "other" });
      return result;
    }

    if (options.path === "relay") {
      const assigned =
        relays.get(sessionId) ??
        (await channel
          .next("relay.assigned", RELAY_WAIT_MS, (event) => event.sessionId === sessionId)
          .catch(() => undefined));
      if (assigned === undefined) {
        log("no relay was assigned");
        report({ result: "failed", reason: "relay_refused" });
        return result;
      }
      relays.set(sessionId, assigned);
    }
    const candidates = options.path === "relay" ? [] : parseCandidates(accepted.candidates);
    const started = performance.now();
    const bound = socket;
    socket = null;
    link = await PeerLink.client({
      sessionId: sessionIdBytes(sessionId),
      staticKeyPair: identity.noiseStaticKeyPair(),
      verifyRemoteStatic: verifier.verify,
      candidates,
      socket: bound,
    });
    const live = link;
    live.on("relayFailed", (reason) => log.event("warn", "relay_lease", "refused", { sessionId, reason }));
    // A relay can arrive at any time: asked for up front (--path relay) or as the direct path's fallback.
    const useRelay = (assigned: ServerMessageOf<"relay.assigned">) => {
      resolveRelayAddr(assigned.relayAddr).then(
        (address) => {
          live.useRelay({
            ...address,
            lease: assigned.lease,
            signingKey: (message) => identity.sign(message),
          });
          log(`relay assigned for session ${sessionId}`);
          log.event("info", "relay", "assigned", { sessionId, relayId: assigned.relayId });
        },
        () => log.event("warn", "relay", "unresolved", { sessionId, relayId: assigned.relayId }),
      );
    };
    offs.push(
      channel.on("relay.assigned", (assigned) => {
        if (assigned.sessionId === sessionId) useRelay(assigned);
      }),
    );
    const early = relays.get(sessionId);
    if (early !== undefined) useRelay(early);
    else if (options.path === "direct") {
      // Direct first (DESIGN.md); when it has not worked in a moment (or there is nothing direct to try), the
      // relay is asked for and tried alongside.
      fallbackTimer = setTimeout(
        () => {
          if (live.status !== "handshaking") return;
          log(
            candidates.length === 0
              ? "the host published no direct address; asking for a relay"
              : "no direct path yet; asking for a relay",
          );
          log.event("info", "relay", "requested", {
            sessionId,
            reason: candidates.length === 0 ? "no_direct_candidates" : "direct_timeout",
          });
          channel.requestRelay({ sessionId });
        },
        candidates.length === 0 ? 0 : DIRECT_FALLBACK_MS,
      );
    }
    const established = await waitEstablished(live, HANDSHAKE_WAIT_MS, stop.signal);
    clearTimeout(fallbackTimer);
    if (established === null) {
      const refusal = verifier.refusal();
      const reason =
        refusal !== null ? "key_mismatch" : stop.signal.aborted ? "cancelled" : "handshake_timeout";
      report({ result: "failed", reason });
      const waitedMs = Math.round(performance.now() - started);
      log(`session not established (${reason}) after ${waitedMs} ms`);
      log.event("warn", "session", "failed", { sessionId, reason, waitedMs });
      return result;
    }
    const handshakeMs = Math.min(Math.round(established.handshakeMs), 600_000);
    result.established = true;
    result.path = pathKind(established.path);
    report({ result: "established", path: result.path, handshakeMs });
    log(
      `session established with ${accepted.host} via ${describePath(established.path)} in ${handshakeMs} ms`,
    );
    log.event("info", "session", "established", {
      sessionId,
      peerId: accepted.host,
      path: result.path,
      handshakeMs,
    });
    log(sasLine(established.handshakeHash));
    live.on("pathChanged", (path) =>
      log.event("info", "path", "changed", { sessionId, path: pathKind(path) }),
    );

    if (options.recordPath !== undefined) {
      sink = await FileSink.open(options.recordPath);
      log(`recording to ${options.recordPath}`);
    }
    if (options.viewer) {
      viewer = await startViewer();
      // The URL carries the viewer's access token: it is shown to this user only, on their own terminal.
      log(`viewer: ${viewer.url}`);
    }
    const file = sink;
    const page = viewer;
    session = new ClientSession({
      link: live,
      onFrame: (unit) => {
        result.framesComplete++;
        file?.write(unit);
        page?.sendFrame({
          data: unit.data,
          keyframe: unit.keyframe,
          timestampUs: Math.max(0, Math.round(unit.timestampMs * 1000)),
        });
      },
    });
    const running = session;
    page?.on("input", (event) => {
      running.sendInput(event);
    });
    const ended = await new Promise<string>((resolve) => {
      live.once("failed", (why) => resolve(`link ${why}`));
      if (stop.signal.aborted) resolve("stopped");
      else stop.signal.addEventListener("abort", () => resolve("stopped"), { once: true });
    });
    log(`session ended (${ended}); ${running.stats.framesComplete} frames received`);
    log.event("info", "session", "ended", {
      sessionId,
      reason: ended,
      framesComplete: running.stats.framesComplete,
    });
    return result;
  } finally {
    if (deadline !== null) clearTimeout(deadline);
    clearTimeout(fallbackTimer);
    for (const off of offs) off();
    socket?.close();
    options.signal.removeEventListener("abort", onAbort);
    session?.close();
    if (sink !== null) {
      await sink.close();
      result.framesRecorded = sink.stats.written;
    }
    await viewer?.close();
    await link?.close();
    if (signaling !== null) {
      // Give the last report a moment to leave before the socket closes.
      await sleep(100);
      await signaling.close();
    }
  }
}
