import { applyPskModifiers, type HandshakePattern, PATTERNS } from "./patterns.ts";

/** The only cipher suite this project speaks (pinned: DH 25519, ChaChaPoly, BLAKE2s). */
export const SUITE = "25519_ChaChaPoly_BLAKE2s";

export interface ParsedProtocolName {
  readonly protocolName: string;
  readonly pattern: HandshakePattern;
  /** Number of psk tokens, and so of pre-shared keys each party must supply. */
  readonly pskCount: number;
}

/**
 * Parses "Noise_<pattern><modifiers>_25519_ChaChaPoly_BLAKE2s" (§8). Returns undefined for any other
 * suite, an unknown pattern or an unknown modifier.
 */
export function parseProtocolName(protocolName: string): ParsedProtocolName | undefined {
  const prefix = "Noise_";
  const suffix = `_${SUITE}`;
  if (!protocolName.startsWith(prefix) || !protocolName.endsWith(suffix)) return undefined;
  const handshake = protocolName.slice(prefix.length, protocolName.length - suffix.length);
  const match = /^([A-Z1]+)((?:psk\d)(?:\+psk\d)*)?$/.exec(handshake);
  if (match === null) return undefined;
  const base = PATTERNS.get(match[1] as string);
  if (base === undefined) return undefined;
  const modifiers = match[2] === undefined ? [] : match[2].split("+");
  const pattern = modifiers.length === 0 ? base : applyPskModifiers(base, modifiers);
  if (pattern === undefined) return undefined;
  return { protocolName, pattern, pskCount: modifiers.length };
}
