import type { KeyObject } from "node:crypto";
import {
  LEASE_CLOCK_SKEW_SECS,
  LEASE_KEY_CERT_TYP,
  parseLeaseKeyCertClaims,
} from "../protocol/relay/lease.ts";
import { ed25519PublicKey, parseCompactJws, verifyEd25519 } from "./compact-jws.ts";

/**
 * The lease keys this relay trusts (DESIGN.md: Relay nodes). A lease key is trusted only while the edge delivers a
 * certificate for its kid that verifies under the pinned master key, is within its validity, names that kid as
 * `sub`, and the kid is not revoked. Each register/heartbeat answer replaces the whole set: the edge is the
 * authority on which keys are current, and keeps a rotated-out key listed until the leases it signed expire.
 */
export type LeaseKeyLookup =
  | { readonly status: "trusted"; readonly key: KeyObject }
  | { readonly status: "revoked" }
  | { readonly status: "unknown" };

interface TrustedKey {
  readonly key: KeyObject;
  /** The certificate's `exp` (seconds): the key is not trusted from then on. */
  readonly notAfterSecs: number;
}

/** What one control answer changed in the key set. */
export interface LeaseKeyUpdate {
  readonly trusted: number;
  /** Certificates refused (bad signature, wrong typ, expired, sub ≠ kid…), by kid. */
  readonly refused: readonly string[];
  /** Kids revoked by this update that were not revoked before. */
  readonly newlyRevoked: readonly string[];
}

/** A lease key and its certificate, as the control answer carries them. */
export interface CertifiedKey {
  readonly kid: string;
  readonly certificate: string;
}

const REVOKED: LeaseKeyLookup = Object.freeze({ status: "revoked" });
const UNKNOWN: LeaseKeyLookup = Object.freeze({ status: "unknown" });

/** The trusted lease keys and the revocation list, replaced by each control answer. */
export class LeaseKeyStore {
  private keys = new Map<string, TrustedKey>();
  private revoked: ReadonlySet<string> = new Set();

  /** @param master the pinned relay master public key (WAVRY_RELAY_MASTER_PUBLIC_KEY). */
  constructor(private readonly master: KeyObject) {}

  /** Replaces the trusted set and the revocation list with what the edge sent. */
  apply(leaseKeys: readonly CertifiedKey[], revokedIds: readonly string[], nowSecs: number): LeaseKeyUpdate {
    const revoked = new Set(revokedIds);
    const keys = new Map<string, TrustedKey>();
    const refused: string[] = [];
    for (const { kid, certificate } of leaseKeys) {
      const trusted = this.verifyCertificate(kid, certificate, nowSecs);
      if (trusted === null) refused.push(kid);
      else if (!revoked.has(kid)) keys.set(kid, trusted);
    }
    const newlyRevoked = [...revoked].filter((kid) => !this.revoked.has(kid));
    this.keys = keys;
    this.revoked = revoked;
    return { trusted: keys.size, refused, newlyRevoked };
  }

  /** What a lease header's kid stands for at `nowSecs`. Revocation wins over everything. */
  lookup(kid: string, nowSecs: number): LeaseKeyLookup {
    if (this.revoked.has(kid)) return REVOKED;
    const entry = this.keys.get(kid);
    if (entry === undefined || nowSecs >= entry.notAfterSecs) return UNKNOWN;
    return { status: "trusted", key: entry.key };
  }

  /** True when `kid` is on the current revocation list. */
  isRevoked(kid: string): boolean {
    return this.revoked.has(kid);
  }

  /** Lease keys trusted now (a gauge). */
  get size(): number {
    return this.keys.size;
  }

  private verifyCertificate(kid: string, certificate: string, nowSecs: number): TrustedKey | null {
    const jws = parseCompactJws(Buffer.from(certificate, "latin1"));
    if (jws === null || jws.header.typ !== LEASE_KEY_CERT_TYP) return null;
    if (!verifyEd25519(this.master, jws.signingInput, jws.signature)) return null;
    const claims = parseLeaseKeyCertClaims(jws.payload);
    if (claims === null || claims.sub !== kid) return null;
    // The same skew leases get: a certificate minted on an edge a little ahead of us is usable at once.
    if (claims.iat > nowSecs + LEASE_CLOCK_SKEW_SECS || nowSecs >= claims.exp) return null;
    const key = ed25519PublicKey(claims.jwk.x);
    return key === null ? null : { key, notAfterSecs: claims.exp };
  }
}
