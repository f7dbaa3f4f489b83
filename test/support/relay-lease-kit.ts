import { generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import {
  LEASE_KEY_CERT_ISSUER,
  LEASE_KEY_CERT_TYP,
  LEASE_TYP,
  type LeaseRole,
} from "../../protocol/relay/lease.ts";
import { leaseProofMessage, type Role } from "../../protocol/wire/relay-frames.ts";

/**
 * A test stand-in for the relay trust chain (the edge and wavry-admin do this for real): a master key, lease keys
 * it certifies, leases they sign, and the peer-side proof of possession. node:crypto Ed25519 throughout, compact
 * JWS built by hand so tests can also build the malformed and forged ones.
 */
export interface Ed25519Pair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** base64url raw public key (JWK `x`). */
  readonly x: string;
}

/** A fresh Ed25519 key pair. */
export function ed25519Pair(): Ed25519Pair {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error("unexpected JWK export");
  return { privateKey, publicKey, x };
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** `header.payload.signature`, signed with Ed25519 by `key`. */
export function compactJws(header: object, payload: object, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
}

/** Wall-clock seconds, as lease times are. */
export const nowSecs = () => Math.floor(Date.now() / 1000);

/** Lease claims a test can set; unset ones get valid defaults. */
export interface LeaseOptions {
  readonly kid: string;
  readonly aud: string;
  readonly sid: Uint8Array;
  readonly role: LeaseRole;
  /** The peer's confirmation key. */
  readonly cnf: Ed25519Pair;
  readonly sub?: string;
  readonly jti?: string;
  readonly iat?: number;
  readonly exp?: number;
  readonly bw?: { readonly kbps: number; readonly burstKb: number };
  /** Signs with this key instead of the lease key `kid` names (a forgery). */
  readonly signer?: KeyObject;
  readonly header?: object;
}

/** The master key, lease keys, their certificates and leases. */
export class LeaseAuthority {
  readonly master = ed25519Pair();
  private readonly leaseKeys = new Map<string, Ed25519Pair>();

  /** WAVRY_RELAY_MASTER_PUBLIC_KEY for the relay under test. */
  get masterPublicKey(): string {
    return this.master.x;
  }

  leaseKey(kid: string): Ed25519Pair {
    let pair = this.leaseKeys.get(kid);
    if (pair === undefined) {
      pair = ed25519Pair();
      this.leaseKeys.set(kid, pair);
    }
    return pair;
  }

  /** A lease-key certificate as the edge hands it out (signed by the master key unless `signer` says otherwise). */
  certificate(
    kid: string,
    options: { iat?: number; exp?: number; signer?: KeyObject; sub?: string } = {},
  ): { kid: string; certificate: string } {
    const iat = options.iat ?? nowSecs() - 60;
    const payload = {
      iss: LEASE_KEY_CERT_ISSUER,
      sub: options.sub ?? kid,
      jwk: { kty: "OKP", crv: "Ed25519", x: this.leaseKey(kid).x },
      iat,
      exp: options.exp ?? iat + 30 * 86_400,
    };
    const certificate = compactJws(
      { alg: "EdDSA", typ: LEASE_KEY_CERT_TYP },
      payload,
      options.signer ?? this.master.privateKey,
    );
    return { kid, certificate };
  }

  lease(options: LeaseOptions): string {
    const iat = options.iat ?? nowSecs();
    const payload = {
      iss: "https://edge.test",
      aud: options.aud,
      sub: options.sub ?? `d_${options.role}device`,
      sid: Buffer.from(options.sid).toString("base64url"),
      role: options.role,
      jti: options.jti ?? randomBytes(12).toString("base64url"),
      iat,
      exp: options.exp ?? iat + 240,
      bw: options.bw ?? { kbps: 1_000_000, burstKb: 10_000 },
      cnf: { jwk: { kty: "OKP", crv: "Ed25519", x: options.cnf.x } },
    };
    return compactJws(
      options.header ?? { alg: "EdDSA", kid: options.kid, typ: LEASE_TYP },
      payload,
      options.signer ?? this.leaseKey(options.kid).privateKey,
    );
  }
}

/** The LEASE_PRESENT proof: the confirmation key's signature over the proof message. */
export function leaseProof(
  cnf: KeyObject,
  sessionId: Uint8Array,
  role: Role,
  cookie: Uint8Array,
  lease: Uint8Array,
): Uint8Array {
  return new Uint8Array(sign(null, leaseProofMessage(sessionId, role, cookie, lease), cnf));
}
