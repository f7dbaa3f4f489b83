import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8 } from "../bytes.ts";
import { base32Lower } from "./device-id.ts";

/**
 * A relay's id is derived from its Ed25519 public key (DESIGN.md: Identity), so an id cannot be taken over by
 * re-registering with another key:
 *
 *   id = "r_" || base32lower(SHA-256("wavry relay id v1\0" || ed25519)[0..16])
 */
const CONTEXT = utf8("wavry relay id v1\0");
const RELAY_ID_PATTERN = /^r_[a-z2-7]{25}[aeimquy4]$/;

export function relayIdFromKey(ed25519Public: Uint8Array): string {
  if (!(ed25519Public instanceof Uint8Array) || ed25519Public.length !== 32) {
    throw new RangeError("relay public key must be 32 bytes");
  }
  return `r_${base32Lower(sha256(concatBytes(CONTEXT, ed25519Public)).subarray(0, 16))}`;
}

export function isRelayId(text: unknown): text is string {
  return typeof text === "string" && RELAY_ID_PATTERN.test(text);
}
