/**
 * Sliding anti-replay window (RFC 6479 style): a ring of 32-bit blocks, so advancing the window clears
 * whole blocks instead of shifting bits.
 *
 * The caller checks a counter with {@link ReplayWindow.check} before decrypting and marks it with
 * {@link ReplayWindow.accept} only after the AEAD tag verified, so forged packets can never move the window.
 */
const BLOCK_BITS = 32;
const RING_BLOCKS = 128; // a power of two: index with a mask
const BLOCK_MASK = RING_BLOCKS - 1;

/** Counters this far behind the highest accepted one are still accepted once (4064 >= the 2048 required). */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

export class ReplayWindow {
  readonly #ring = new Uint32Array(RING_BLOCKS);
  /** Highest counter accepted so far; -1 before the first. */
  #last = -1;
  readonly #limit: number;

  /** @param limit counters at or above this are always refused (the session's message limit). */
  constructor(limit: number = Number.MAX_SAFE_INTEGER) {
    this.#limit = limit;
  }

  /** The highest counter accepted so far, or -1. */
  get highest(): number {
    return this.#last;
  }

  /** True when `counter` is new and inside the window. Changes nothing. */
  check(counter: number): boolean {
    if (!(counter >= 0 && counter < this.#limit) || !Number.isInteger(counter)) return false;
    if (counter > this.#last) return true;
    if (this.#last - counter >= REPLAY_WINDOW_SIZE) return false;
    const block = Math.floor(counter / BLOCK_BITS) & BLOCK_MASK;
    const bit = 1 << (counter % BLOCK_BITS);
    return ((this.#ring[block] as number) & bit) === 0;
  }

  /** Marks `counter` as seen; returns false (and changes nothing) when {@link check} would refuse it. */
  accept(counter: number): boolean {
    if (!this.check(counter)) return false;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.#last) {
      const lastBlock = this.#last < 0 ? -1 : Math.floor(this.#last / BLOCK_BITS);
      // Clear the blocks we move over; after a jump of a whole ring or more, all of them.
      const steps = Math.min(block - lastBlock, RING_BLOCKS);
      for (let i = 1; i <= steps; i++) this.#ring[(lastBlock + i) & BLOCK_MASK] = 0;
      this.#last = counter;
    }
    const index = block & BLOCK_MASK;
    this.#ring[index] = (this.#ring[index] as number) | (1 << (counter % BLOCK_BITS));
    return true;
  }
}
