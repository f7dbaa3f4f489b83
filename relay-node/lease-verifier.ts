import { LEASE_TYP, leaseTimeValid, parseLeaseClaims } from "../protocol/relay/lease.ts";
import {
  type LeasePresentFrame,
  leaseProofMessage,
  RejectReason,
  Role,
} from "../protocol/wire/relay-frames.ts";
import { ed25519PublicKey, parseCompactJws, verifyEd25519 } from "./compact-jws.ts";
import type { LeaseKeyStore } from "./lease-keys.ts";

/**
 * Checks a LEASE_PRESENT's lease and proof (PROTOCOL.md 0x12; DESIGN.md: Relay nodes). The cookie is checked
 * before this (it is cheaper, and it keeps spoofed sources from costing us signature checks).
 *
 * Order, each failure with its reason: compact JWS with pinned EdDSA and typ `wavry-lease+jwt` (INVALID_LEASE) →
 * the kid is revoked (REVOKED_KEY) or not certified (INVALID_LEASE) → signature by that lease key (INVALID_LEASE)
 * → claims shape (INVALID_LEASE) → `aud` is this relay (WRONG_RELAY) → `sid` is the frame's session
 * (WRONG_SESSION) → `role` is the frame's role (ROLE_MISMATCH) → time with 30 s skew (EXPIRED) → the proof by the
 * lease's `cnf` key over the proof message, which covers the cookie (BAD_PROOF).
 */

/** What the relay keeps of a lease it accepted. */
export interface AcceptedLease {
  /** The peer's device id. */
  readonly sub: string;
  readonly jti: string;
  /** The lease key that signed it ("" in insecure mode). */
  readonly kid: string;
  readonly iatSecs: number;
  readonly expSecs: number;
  /** Granted sustained rate, kilobits per second. */
  readonly kbps: number;
  /** Granted burst, kilobytes. */
  readonly burstKb: number;
}

/** The accepted lease, or the reason to send in LEASE_REJECT. */
export type LeaseVerdict =
  | { readonly ok: true; readonly lease: AcceptedLease }
  | { readonly ok: false; readonly reason: RejectReason };

const REJECTS = new Map<RejectReason, LeaseVerdict>(
  Object.values(RejectReason).map((reason) => [reason, Object.freeze({ ok: false, reason })]),
);
function reject(reason: RejectReason): LeaseVerdict {
  return REJECTS.get(reason) ?? { ok: false, reason };
}

/** How long an insecure-mode binding lasts when the lease text carries no usable claims. */
const INSECURE_TTL_SECS = 300;

/** Who we are and what we trust. */
export interface LeaseVerifierOptions {
  readonly relayId: string;
  /** The certified lease keys; null means insecure development mode (no verification at all). */
  readonly keys: LeaseKeyStore | null;
  /** Bandwidth granted in insecure mode when the lease text has none. */
  readonly insecureBandwidth: { readonly kbps: number; readonly burstKb: number };
}

/** Verifies leases and proofs in the order documented above. */
export class LeaseVerifier {
  constructor(private readonly options: LeaseVerifierOptions) {}

  verify(frame: LeasePresentFrame, nowSecs: number): LeaseVerdict {
    const keys = this.options.keys;
    if (keys === null) return this.insecure(frame, nowSecs);
    const jws = parseCompactJws(frame.lease);
    if (jws === null || jws.header.typ !== LEASE_TYP || jws.header.kid === null)
      return reject(RejectReason.InvalidLease);
    const kid = jws.header.kid;
    const found = keys.lookup(kid, nowSecs);
    if (found.status === "revoked") return reject(RejectReason.RevokedKey);
    if (found.status === "unknown") return reject(RejectReason.InvalidLease);
    if (!verifyEd25519(found.key, jws.signingInput, jws.signature)) return reject(RejectReason.InvalidLease);
    const claims = parseLeaseClaims(jws.payload);
    if (claims === null) return reject(RejectReason.InvalidLease);
    if (claims.aud !== this.options.relayId) return reject(RejectReason.WrongRelay);
    if (claims.sid !== Buffer.from(frame.sessionId).toString("base64url"))
      return reject(RejectReason.WrongSession);
    if ((claims.role === "host" ? Role.Host : Role.Client) !== frame.role)
      return reject(RejectReason.RoleMismatch);
    if (!leaseTimeValid(claims, nowSecs)) return reject(RejectReason.Expired);
    const cnf = ed25519PublicKey(claims.cnf.jwk.x);
    const message = leaseProofMessage(frame.sessionId, frame.role, frame.cookie, frame.lease);
    if (cnf === null || !verifyEd25519(cnf, message, frame.proof)) return reject(RejectReason.BadProof);
    return {
      ok: true,
      lease: {
        sub: claims.sub,
        jti: claims.jti,
        kid,
        iatSecs: claims.iat,
        expSecs: claims.exp,
        kbps: claims.bw.kbps,
        burstKb: claims.bw.burstKb,
      },
    };
  }

  /** Development only: whatever the lease says, unverified, with defaults where it says nothing. */
  private insecure(frame: LeasePresentFrame, nowSecs: number): LeaseVerdict {
    const jws = parseCompactJws(frame.lease);
    const claims = jws === null ? null : parseLeaseClaims(jws.payload);
    const bw = this.options.insecureBandwidth;
    return {
      ok: true,
      lease: {
        sub: claims?.sub ?? "insecure-dev",
        jti: claims?.jti ?? `insecure-${nowSecs}`,
        kid: "",
        iatSecs: claims?.iat ?? nowSecs,
        expSecs: claims !== null && claims.exp > nowSecs ? claims.exp : nowSecs + INSECURE_TTL_SECS,
        kbps: claims?.bw.kbps ?? bw.kbps,
        burstKb: claims?.bw.burstKb ?? bw.burstKb,
      },
    };
  }
}
