import { SignJWT } from "jose";
import {
  LEASE_MAX_TTL_SECS,
  LEASE_TYP,
  type LeaseClaims,
  parseLeaseClaims,
} from "../../protocol/relay/lease.ts";
import type { EdgeBindings, EdgeConfig } from "../env.ts";
import { base64urlDecode, base64urlEncode, randomToken } from "../security/tokens-util.ts";
import { leaseSigningKey, registryStub } from "./relay-registry.ts";

/** One peer of a session that needs a relay. */
export interface RelayPeer {
  readonly deviceId: string;
  readonly role: "host" | "client";
  /** base64url Ed25519 public key: the lease's confirmation key. */
  readonly ed25519PublicKey: string;
}

/** A relay chosen for a session, with one signed lease per peer. */
export interface RelayAssignment {
  readonly relayId: string;
  /** host:port peers send UDP to. */
  readonly publicAddr: string;
  readonly leases: readonly {
    readonly deviceId: string;
    readonly role: "host" | "client";
    readonly lease: string;
  }[];
  /** Seconds since the epoch when the leases expire. */
  readonly expiresAt: number;
}

/** Lease lifetime: long enough to reach the relay and bind, short enough that a leaked lease is soon useless. */
export const LEASE_TTL_SECS = 120;
/** Bandwidth each peer is granted on the relay (sustained kbit/s, burst KB). */
export const LEASE_BANDWIDTH = { kbps: 20_000, burstKb: 512 } as const;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
/** What a lease `sub` may hold (protocol/relay/lease.ts). */
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Chooses a relay for a session (healthy, assignable, lightly loaded, in `region` when possible) and mints one
 * lease per peer, signed by the newest active lease key whose certificate outlives the leases. Returns null when
 * no lease key or no relay is available. `now` is epoch milliseconds. Throws a RangeError for malformed input (a
 * session id that is not 16 bytes, a peer key that is not 32 bytes, no peers or a repeated role): a caller bug.
 */
export async function assignRelay(
  env: EdgeBindings,
  config: EdgeConfig,
  request: {
    readonly sessionId: Uint8Array;
    readonly region: string | null;
    readonly peers: readonly RelayPeer[];
  },
  now: number,
): Promise<RelayAssignment | null> {
  if (request.sessionId.length !== 16) throw new RangeError("session id must be 16 bytes");
  const roles = new Set(request.peers.map((p) => p.role));
  if (request.peers.length === 0 || roles.size !== request.peers.length) {
    throw new RangeError("peers must be one host and/or one client");
  }
  for (const peer of request.peers) {
    const key = base64urlDecode(peer.ed25519PublicKey);
    if (key === null || key.length !== 32) throw new RangeError("peer Ed25519 key must be 32 bytes");
    if (!DEVICE_ID.test(peer.deviceId)) throw new RangeError("peer device id is malformed");
  }
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.min(LEASE_TTL_SECS, LEASE_MAX_TTL_SECS);
  // Key first: a relay pick counts a session against it, which is wasted when nothing can sign the leases.
  const signing = await leaseSigningKey(env.DB, config.signingKeyWrapKeys, exp * 1000);
  if (signing === null) return null;
  const relay = await registryStub(env).select(request.region, now);
  if (relay === null) return null;
  const sid = base64urlEncode(request.sessionId);
  const leases = [];
  for (const peer of request.peers) {
    const claims: LeaseClaims = {
      iss: config.issuer,
      aud: relay.relayId,
      sub: peer.deviceId,
      sid,
      role: peer.role,
      jti: randomToken(random, 16),
      iat,
      exp,
      bw: LEASE_BANDWIDTH,
      cnf: { jwk: { kty: "OKP", crv: "Ed25519", x: peer.ed25519PublicKey } },
    };
    // Never hand out a lease the relay would refuse: check it with the relay's own parser first.
    if (parseLeaseClaims(claims) === null) throw new RangeError("lease claims would be invalid");
    const lease = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: "EdDSA", kid: signing.kid, typ: LEASE_TYP })
      .sign(signing.key);
    leases.push({ deviceId: peer.deviceId, role: peer.role, lease });
  }
  return { relayId: relay.relayId, publicAddr: relay.publicAddr, leases, expiresAt: exp };
}
