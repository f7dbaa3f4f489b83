import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import os from "node:os";
import { formatShortAuthString, shortAuthString } from "../../protocol/identity/sas.ts";
import { SIGNAL_LIMITS } from "../../protocol/signaling/messages.ts";
import type { EndpointConfig } from "../config.ts";
import { DeviceTokenSource, type EdgeClient } from "../edge-client/edge-client.ts";
import { type DeviceIdentity, fromBase64url } from "../identity/device-identity.ts";
import type { EstablishedInfo } from "../peer-link/link-core.ts";
import type { PeerPath } from "../peer-link/paths.ts";
import type { PeerLink, UdpAddress } from "../peer-link/peer-link.ts";
import { SignalingClient } from "../signaling/signaling-client.ts";
import { changedKeyMessage, type PeerKeys, type TrustStore, verifyPeerKey } from "../trust/trust-store.ts";
import type { DaemonLog } from "./daemon-log.ts";

/**
 * What `wavry host` and `wavry connect` share: the signaling connection, candidate addresses, relay addresses and
 * the peer-key rule. Nothing here logs a key, a token or a payload.
 */

/** Status lines for the user and structured log lines (daemon-log.ts). */
export type { DaemonLog };

/** The outcome of each signaling-client log event (endpoint/signaling/signaling-client.ts). */
const SIGNALING_OUTCOMES: Readonly<Record<string, string>> = {
  signaling_open: "ok",
  signaling_retry: "retry",
  signaling_problem: "refused",
  signaling_invalid: "rejected",
  listener_error: "failed",
};

/** How long to wait for the edge's `hello` after starting the signaling client. */
const HELLO_TIMEOUT_MS = 15_000;

/**
 * Connects to the edge's signaling socket as `identity` and resolves once `hello` arrived. The URL comes from
 * `GET /v1/signal/info`, so the edge decides where its socket lives; the transport policy still applies.
 */
export async function connectSignaling(
  edge: EdgeClient,
  identity: DeviceIdentity,
  env: Readonly<Record<string, string | undefined>>,
  log: DaemonLog,
): Promise<SignalingClient> {
  const response = await fetch(new URL("/v1/signal/info", edge.baseUrl));
  const info: unknown = response.ok ? await response.json() : null;
  const url =
    typeof info === "object" && info !== null && "url" in info && typeof info.url === "string"
      ? info.url
      : null;
  if (url === null) throw new Error(`the edge gave no signaling URL (HTTP ${response.status})`);
  const tokens = new DeviceTokenSource(edge, identity);
  const client = new SignalingClient({
    url,
    getToken: () => tokens.token(),
    env,
    log: (event, fields) => {
      // Codes and counts only (the client never puts a token or payload in its log fields).
      const outcome = SIGNALING_OUTCOMES[event] ?? "note";
      log.event(outcome === "ok" || outcome === "retry" ? "info" : "warn", event, outcome, fields);
    },
  });
  client.on("problem", (problem) => {
    if (problem.code === "unauthorized") tokens.invalidate();
  });
  const hello = client.next("hello", HELLO_TIMEOUT_MS);
  client.start();
  try {
    await hello;
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

/**
 * Binds the session's UDP socket before its port is published as a candidate; the peer link takes the socket
 * over, so no other process can take the port in between.
 */
export function bindUdpSocket(): Promise<Socket> {
  const socket = createSocket("udp4");
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "0.0.0.0", () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

/**
 * This machine's direct candidates for `port`: loopback first (a peer on the same machine), then every
 * non-internal IPv4 address (peers on the LAN). IPv6 is left out because the link binds a udp4 socket.
 */
export function localCandidates(port: number): string[] {
  const out = [`127.0.0.1:${port}`];
  for (const entries of Object.values(os.networkInterfaces())) {
    for (const entry of entries ?? []) {
      if (!entry.internal && entry.family === "IPv4") out.push(`${entry.address}:${port}`);
    }
  }
  return [...new Set(out)].slice(0, SIGNAL_LIMITS.maxCandidates);
}

/** Parses signaling candidates (`a.b.c.d:port`, already validated by the schema); IPv6 ones are skipped. */
export function parseCandidates(candidates: readonly string[]): UdpAddress[] {
  const out: UdpAddress[] = [];
  for (const candidate of candidates) {
    const colon = candidate.lastIndexOf(":");
    const address = candidate.slice(0, colon);
    if (isIP(address) !== 4) continue;
    out.push({ address, port: Number(candidate.slice(colon + 1)) });
  }
  return out;
}

/**
 * A relay's `host:port` from `relay.assigned`, resolved to an IPv4 address: the link accepts relay frames only
 * from that exact address, so it must be the one the relay answers from.
 */
export async function resolveRelayAddr(relayAddr: string): Promise<UdpAddress> {
  const colon = relayAddr.lastIndexOf(":");
  const host = relayAddr.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(relayAddr.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error("the relay address has no port");
  const address = isIP(host) === 4 ? host : (await lookup(host, { family: 4 })).address;
  return { address, port };
}

/** The session id as the link wants it (16 bytes). */
export function sessionIdBytes(sessionId: string): Uint8Array {
  const bytes = fromBase64url(sessionId, 16);
  if (bytes === null) throw new Error("the edge sent a malformed session id");
  return bytes;
}

/** `direct` or `relay`, as `session.report` spells the path. */
export function pathKind(path: PeerPath): "direct" | "relay" {
  return path.kind;
}

/** A peer whose key differs from its pin: the message is the loud warning for the user. */
export class PeerKeyRefused extends Error {
  override readonly name = "PeerKeyRefused";
}

/** Looks up a device's keys among the signed-in user's own devices; undefined when unknown or not signed in. */
export type PeerKeyLookup = (deviceId: string) => Promise<PeerKeys | undefined>;

/**
 * Resolves with the link's handshake result, or null when it failed, took longer than `timeoutMs`, or `stop`
 * aborted first.
 */
export function waitEstablished(
  link: PeerLink,
  timeoutMs: number,
  stop: AbortSignal,
): Promise<EstablishedInfo | null> {
  return new Promise((resolve) => {
    const done = (value: EstablishedInfo | null) => {
      clearTimeout(timer);
      link.off("established", onEstablished);
      link.off("failed", onFailed);
      stop.removeEventListener("abort", onFailed);
      resolve(value);
    };
    const onEstablished = (info: EstablishedInfo) => done(info);
    const onFailed = () => done(null);
    const timer = setTimeout(onFailed, timeoutMs);
    if (stop.aborted) {
      onFailed();
      return;
    }
    link.on("established", onEstablished);
    link.on("failed", onFailed);
    stop.addEventListener("abort", onFailed, { once: true });
  });
}

/** The result of checking a peer's key; `refusal` is set once a key was refused (a loud, user-facing text). */
export interface PeerVerifier {
  /** For `PeerLink`'s `verifyRemoteStatic`: the key the edge published AND the trust store's pin. */
  readonly verify: (presented: Uint8Array) => boolean;
  /** The first refusal's message, or null. */
  readonly refusal: () => { readonly reason: "edge-mismatch" | "changed"; readonly message: string } | null;
}

/**
 * Prepares the peer-key rule for `deviceId` whose X25519 key the edge published as `edgeKeyText`. The trust store
 * needs the peer's Ed25519 key too (the device id derives from both): from the existing pin, or, on first contact,
 * from the signed-in user's device list; first contact pins only in development, as production peers must be
 * pinned ahead of time (`wavry trust pin`). Throws a user-facing error when the peer cannot be checked.
 */
export async function preparePeerVerifier(options: {
  readonly store: TrustStore;
  readonly config: EndpointConfig;
  readonly deviceId: string;
  readonly edgeKeyText: string;
  /** The signed-in user's devices (for first contact); undefined when not signed in. */
  readonly lookupOwnDevice: PeerKeyLookup;
  readonly log: DaemonLog;
}): Promise<PeerVerifier> {
  const { store, deviceId } = options;
  const edgeKey = fromBase64url(options.edgeKeyText, 32);
  if (edgeKey === null) throw new Error(`the edge published a malformed key for ${deviceId}`);
  const pinned = store.get(deviceId);
  let ed25519: Uint8Array;
  if (pinned !== undefined && store.check(deviceId, edgeKey) === "changed") {
    // Refused before any packet: the edge now publishes another key than the one pinned on first contact.
    throw new PeerKeyRefused(changedKeyMessage(pinned, edgeKey));
  }
  if (pinned !== undefined) {
    ed25519 = pinned.ed25519PublicKey;
  } else {
    if (options.config.environment !== "development") {
      throw new Error(`${deviceId} is not pinned; pin it first: wavry trust pin ${deviceId}`);
    }
    const found = await options.lookupOwnDevice(deviceId).catch(() => undefined);
    if (found === undefined) {
      throw new Error(
        `${deviceId} is not pinned and its keys could not be looked up; run: wavry trust pin ${deviceId}`,
      );
    }
    ed25519 = found.ed25519PublicKey;
    options.log(`first contact with ${deviceId}: its key will be pinned`);
    options.log.event("info", "peer_key", "first_contact", { peerId: deviceId });
  }
  const expected: PeerKeys = { deviceId, x25519PublicKey: edgeKey, ed25519PublicKey: ed25519 };
  let refused: { reason: "edge-mismatch" | "changed"; message: string } | null = null;
  return {
    verify: (presented) => {
      const decision = verifyPeerKey(store, expected, presented);
      if (decision.ok) return true;
      if (refused === null) {
        refused = { reason: decision.reason, message: decision.message };
        options.log(decision.message);
        options.log.event("warn", "peer_key", "refused", { peerId: deviceId, reason: decision.reason });
      }
      return false;
    },
    refusal: () => refused,
  };
}

/**
 * The short authentication string of an established session, for the users to compare by eye (both sides show
 * the same six digits only if no one sits in the middle): optional confirmation of a first pairing.
 */
export function sasLine(handshakeHash: Uint8Array): string {
  return `short authentication string: ${formatShortAuthString(shortAuthString(handshakeHash))} (the peer shows the same digits)`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
