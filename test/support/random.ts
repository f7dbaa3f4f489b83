import { randomFillSync } from "node:crypto";
import type { RandomSource } from "../../protocol/crypto/backend.ts";

/** The daemons' random source: node:crypto's CSPRNG. */
export const nodeRandom: RandomSource = (length) => randomFillSync(new Uint8Array(length));

/** A deterministic, NOT secure random source for reproducible tests (xorshift32 from a seed). */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0 || 1;
  return (length) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      out[i] = state & 0xff;
    }
    return out;
  };
}
