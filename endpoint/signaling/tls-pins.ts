import { createHash } from "node:crypto";
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate } from "node:tls";

/**
 * Certificate pinning for the signaling socket (issue 5, "Signaling client"). The check runs as the TLS
 * `checkServerIdentity` hook, i.e. inside the handshake and before the HTTP upgrade request is written, so a pin
 * mismatch closes the connection before the device token leaves the machine. Normal chain and host-name
 * validation still apply first.
 */

/** The error a pin mismatch produces; its message names no fingerprint the attacker could learn from. */
export class PinMismatchError extends Error {
  override readonly name = "PinMismatchError";
  readonly code = "pin_mismatch";
  constructor() {
    super("no certificate in the presented chain matches WAVRY_SIGNALING_TLS_PINS_SHA256");
  }
}

/** Lowercase hex SHA-256 of a certificate's DER encoding. */
export function certificateSha256(cert: PeerCertificate): string {
  return createHash("sha256").update(cert.raw).digest("hex");
}

/**
 * SHA-256 fingerprints of every certificate in the chain Node presents (leaf first), following `issuerCertificate`
 * until it repeats (a root names itself as issuer).
 */
export function chainFingerprints(leaf: PeerCertificate | DetailedPeerCertificate): string[] {
  const seen: string[] = [];
  let cert: PeerCertificate | undefined = leaf;
  while (cert !== undefined && cert.raw !== undefined && seen.length < 16) {
    const fingerprint = certificateSha256(cert);
    if (seen.includes(fingerprint)) break;
    seen.push(fingerprint);
    cert = "issuerCertificate" in cert ? (cert as DetailedPeerCertificate).issuerCertificate : undefined;
  }
  return seen;
}

/**
 * A `checkServerIdentity` for `tls.connect` (and so for `ws` and `https`): the default host-name check, then at
 * least one certificate of the chain must match one of `pins` (lowercase hex). With no pins it is the default.
 */
export function pinnedServerIdentity(
  pins: readonly string[],
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const identity = checkServerIdentity(host, cert);
    if (identity !== undefined || pins.length === 0) return identity;
    return chainFingerprints(cert).some((fingerprint) => pins.includes(fingerprint))
      ? undefined
      : new PinMismatchError();
  };
}
