import path from "node:path";
import { z } from "zod";
import { constantTimeEqual } from "../../protocol/bytes.ts";
import { deviceFingerprint, deviceIdFromKeys, isDeviceId } from "../../protocol/identity/device-id.ts";
import { fromBase64url, toBase64url } from "../identity/device-identity.ts";
import { readPrivateFile, replacePrivateFile } from "../identity/private-file.ts";

/**
 * The trust store (DESIGN.md: Identity; issue 5: Peer link), like SSH's known_hosts: for each peer device id the
 * pinned public keys, their fingerprint and when the peer was first seen. Callers check a peer's Noise static
 * key against it: first contact pins it, a matching key passes, and a changed key is refused loudly (see
 * {@link changedKeyMessage}); only `wavry trust forget` clears a pin. Kept in `$WAVRY_HOME/known-peers.json`,
 * mode 0600 (a writable trust store would let anyone on the machine pin an attacker's key).
 */

/** File name of the trust store inside the state directory. */
export const TRUST_FILE = "known-peers.json";
const MAX_TRUST_BYTES = 4 * 1024 * 1024;

/** One pinned peer. */
export interface PinnedPeer {
  readonly deviceId: string;
  /** The peer's Noise static key: what a handshake presents and what {@link TrustStore.check} compares. */
  readonly x25519PublicKey: Uint8Array;
  readonly ed25519PublicKey: Uint8Array;
  readonly fingerprint: string;
  /** Epoch milliseconds of the first contact (or manual pin). */
  readonly firstSeenAt: number;
  /** The name the peer had when pinned, if known (informational only: names are not authenticated). */
  readonly name: string | null;
}

/** What a presented key means for a peer. */
export type TrustCheck = "pinned" | "first-contact" | "changed";

/** Why a trust operation was refused. */
export type TrustErrorCode = "id-mismatch" | "changed" | "malformed";

/** A trust operation the store refuses. */
export class TrustError extends Error {
  override readonly name = "TrustError";
  constructor(
    readonly code: TrustErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const b64key = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const TrustFile = z.strictObject({
  version: z.literal(1),
  peers: z.array(
    z.strictObject({
      deviceId: z.string().refine(isDeviceId),
      x25519PublicKey: b64key,
      ed25519PublicKey: b64key,
      firstSeenAt: z.number().int().min(0),
      name: z.string().max(256).nullable(),
    }),
  ),
});

/** The trust store's path for a state directory. */
export function trustStorePath(home: string): string {
  return path.join(home, TRUST_FILE);
}

function readPeers(file: string): Map<string, PinnedPeer> {
  const peers = new Map<string, PinnedPeer>();
  const text = readPrivateFile(file, MAX_TRUST_BYTES);
  if (text === null) return peers;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  const parsed = TrustFile.safeParse(json);
  if (!parsed.success) throw new TrustError("malformed", `${file} is not a valid wavry trust store`);
  for (const entry of parsed.data.peers) {
    const x = fromBase64url(entry.x25519PublicKey, 32);
    const ed = fromBase64url(entry.ed25519PublicKey, 32);
    // An entry whose keys do not derive its id was edited by hand or corrupted: refuse rather than trust it.
    if (x === null || ed === null || deviceIdFromKeys(x, ed) !== entry.deviceId) {
      throw new TrustError("malformed", `${file}: the entry for ${entry.deviceId} does not match its keys`);
    }
    peers.set(entry.deviceId, {
      deviceId: entry.deviceId,
      x25519PublicKey: x,
      ed25519PublicKey: ed,
      fingerprint: deviceFingerprint(x, ed),
      firstSeenAt: entry.firstSeenAt,
      name: entry.name,
    });
  }
  return peers;
}

function writePeers(file: string, peers: ReadonlyMap<string, PinnedPeer>): void {
  const body = {
    version: 1,
    peers: [...peers.values()].map((peer) => ({
      deviceId: peer.deviceId,
      x25519PublicKey: toBase64url(peer.x25519PublicKey),
      ed25519PublicKey: toBase64url(peer.ed25519PublicKey),
      firstSeenAt: peer.firstSeenAt,
      name: peer.name,
    })),
  };
  replacePrivateFile(file, `${JSON.stringify(body, null, 2)}\n`);
}

/** The keys of a peer to pin, as the edge published them (the id must derive from them). */
export interface PeerKeys {
  readonly deviceId: string;
  readonly x25519PublicKey: Uint8Array;
  readonly ed25519PublicKey: Uint8Array;
  readonly name?: string | null;
}

/**
 * The trust store of one state directory. Every change re-reads the file first and replaces it atomically, so two
 * `wavry` processes pinning different peers do not lose each other's pins (the last write of one entry wins).
 */
export class TrustStore {
  private peers: Map<string, PinnedPeer>;

  private constructor(readonly file: string) {
    this.peers = readPeers(file);
  }

  /** Opens (reads) the trust store of `home`; a missing file is an empty store. */
  static open(home: string): TrustStore {
    return new TrustStore(trustStorePath(home));
  }

  /** Compares a presented Noise static key with the pin for `deviceId`. */
  check(deviceId: string, x25519PublicKey: Uint8Array): TrustCheck {
    const pinned = this.peers.get(deviceId);
    if (pinned === undefined) return "first-contact";
    return x25519PublicKey.length === 32 && constantTimeEqual(pinned.x25519PublicKey, x25519PublicKey)
      ? "pinned"
      : "changed";
  }

  /** The pin for `deviceId`, if any. */
  get(deviceId: string): PinnedPeer | undefined {
    return this.peers.get(deviceId);
  }

  /**
   * Pins a peer's keys. The device id must derive from the keys (so a lying directory cannot attach another
   * device's keys to an id). Pinning the same keys again keeps the first-seen time; different keys for a pinned id
   * are refused (TrustError "changed"): the user must `forget` first, deliberately.
   */
  pin(keys: PeerKeys, now: number = Date.now()): PinnedPeer {
    if (deviceIdFromKeys(keys.x25519PublicKey, keys.ed25519PublicKey) !== keys.deviceId) {
      throw new TrustError(
        "id-mismatch",
        `the keys given for ${keys.deviceId} do not belong to that device id`,
      );
    }
    const peers = readPeers(this.file);
    const existing = peers.get(keys.deviceId);
    if (existing !== undefined) {
      this.peers = peers;
      if (constantTimeEqual(existing.x25519PublicKey, keys.x25519PublicKey)) return existing;
      throw new TrustError("changed", changedKeyMessage(existing, keys.x25519PublicKey));
    }
    const peer: PinnedPeer = {
      deviceId: keys.deviceId,
      x25519PublicKey: keys.x25519PublicKey.slice(),
      ed25519PublicKey: keys.ed25519PublicKey.slice(),
      fingerprint: deviceFingerprint(keys.x25519PublicKey, keys.ed25519PublicKey),
      firstSeenAt: now,
      name: keys.name ?? null,
    };
    peers.set(peer.deviceId, peer);
    writePeers(this.file, peers);
    this.peers = peers;
    return peer;
  }

  /** Removes the pin for `deviceId`; returns whether there was one. */
  forget(deviceId: string): boolean {
    const peers = readPeers(this.file);
    const had = peers.delete(deviceId);
    if (had) writePeers(this.file, peers);
    this.peers = peers;
    return had;
  }

  /** Every pin, oldest first. */
  list(): PinnedPeer[] {
    return [...this.peers.values()].sort((a, b) => a.firstSeenAt - b.firstSeenAt);
  }
}

/**
 * The loud refusal shown when a peer presents a key other than the pinned one (modelled on ssh's "REMOTE HOST
 * IDENTIFICATION HAS CHANGED"): it may be a reinstalled device or an attack, and only the user can tell.
 */
export function changedKeyMessage(pinned: PinnedPeer, presentedX25519: Uint8Array): string {
  return [
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    WARNING: THE KEY OF A PINNED DEVICE HAS CHANGED!    @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    `Device ${pinned.deviceId} presented a key that differs from the one pinned on first contact.`,
    "Someone could be intercepting the session, or the device was reinstalled. The connection was refused.",
    `Pinned fingerprint: ${pinned.fingerprint}`,
    `Pinned key:         ${toBase64url(pinned.x25519PublicKey)}`,
    `Presented key:      ${presentedX25519.length === 32 ? toBase64url(presentedX25519) : "(malformed)"}`,
    `If you know the device was reinstalled, confirm its new fingerprint out of band, then run:`,
    `  wavry trust forget ${pinned.deviceId}`,
  ].join("\n");
}

/** The outcome of {@link verifyPeerKey}. */
export type PeerKeyDecision =
  | { readonly ok: true; readonly check: "pinned" | "first-contact"; readonly peer: PinnedPeer }
  | { readonly ok: false; readonly reason: "edge-mismatch" | "changed"; readonly message: string };

/**
 * The peer-link rule (DESIGN.md: Identity): the presented Noise static key must equal the key the edge published
 * for the expected device AND the trust store. First contact pins the edge's keys; a changed key is refused with
 * {@link changedKeyMessage}. `presented` is the remote static key from the finished handshake.
 */
export function verifyPeerKey(
  store: TrustStore,
  expected: PeerKeys,
  presented: Uint8Array,
  now: number = Date.now(),
): PeerKeyDecision {
  if (presented.length !== 32 || !constantTimeEqual(expected.x25519PublicKey, presented)) {
    return {
      ok: false,
      reason: "edge-mismatch",
      message: `device ${expected.deviceId} presented a key other than the one the edge published for it`,
    };
  }
  const check = store.check(expected.deviceId, presented);
  const pinned = store.get(expected.deviceId);
  if (check === "changed" && pinned !== undefined) {
    return { ok: false, reason: "changed", message: changedKeyMessage(pinned, presented) };
  }
  if (check === "pinned" && pinned !== undefined) return { ok: true, check, peer: pinned };
  if (deviceIdFromKeys(expected.x25519PublicKey, expected.ed25519PublicKey) !== expected.deviceId) {
    return {
      ok: false,
      reason: "edge-mismatch",
      message: `the keys the edge published for ${expected.deviceId} do not belong to that device id`,
    };
  }
  return { ok: true, check: "first-contact", peer: store.pin(expected, now) };
}
