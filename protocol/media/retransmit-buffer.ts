import { dataSendPosition, type FragmentedFrame } from "./fragmenter.ts";
import type { Nack } from "./nack.ts";

/** Limits of a sender's retransmit buffer. Checked once, when the buffer is built. */
export interface RetransmitBufferOptions {
  /** Frames kept (the newest ones). 120 = two seconds at 60 fps, far beyond any useful NACK. */
  readonly maxFrames?: number;
  /** Bytes kept, counted as the frames' backing buffers. */
  readonly maxBytes?: number;
  /**
   * How often one fragment may be sent again (default 4: the client's three NACK rounds plus one whole-frame
   * NACK). Bounds what a NACK can make the host send (no more than this many times what it sent in the first
   * place), whatever the client asks.
   */
  readonly maxResendsPerFragment?: number;
}

/** Why a NACK got less than it asked for; the names double as metric labels. */
export type RetransmitMissReason = "unknown-frame" | "unknown-index" | "resend-limit";

interface StoredFrame {
  readonly frame: FragmentedFrame;
  /** Resends so far, per data fragment index. */
  readonly resends: Uint8Array;
}

const DEFAULTS = { maxFrames: 120, maxBytes: 8 * 1024 * 1024, maxResendsPerFragment: 4 } as const;

/**
 * Keeps the newest frames' messages (views, no copies) by (frame id, data index) and answers NACKs with the
 * exact bytes first sent, so a resent fragment is indistinguishable from a late original and the receiver
 * needs no special case. Evicts the oldest frame first when either bound is exceeded.
 */
export class RetransmitBuffer {
  readonly #frames = new Map<number, StoredFrame>();
  readonly #maxFrames: number;
  readonly #maxBytes: number;
  readonly #maxResends: number;
  #bytes = 0;
  /** Counters by reason, for metrics. */
  readonly misses: Record<RetransmitMissReason, number> = {
    "unknown-frame": 0,
    "unknown-index": 0,
    "resend-limit": 0,
  };
  /** Fragments handed back for resending. */
  resent = 0;

  constructor(options: RetransmitBufferOptions = {}) {
    const maxFrames = options.maxFrames ?? DEFAULTS.maxFrames;
    const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
    const maxResends = options.maxResendsPerFragment ?? DEFAULTS.maxResendsPerFragment;
    if (!Number.isInteger(maxFrames) || maxFrames < 1)
      throw new RangeError("maxFrames must be a positive integer");
    if (!Number.isInteger(maxBytes) || maxBytes < 1)
      throw new RangeError("maxBytes must be a positive integer");
    if (!Number.isInteger(maxResends) || maxResends < 0 || maxResends > 255)
      throw new RangeError("maxResendsPerFragment must be 0..255");
    this.#maxFrames = maxFrames;
    this.#maxBytes = maxBytes;
    this.#maxResends = maxResends;
  }

  /** Frames held. */
  get frameCount(): number {
    return this.#frames.size;
  }

  /** Bytes held. */
  get byteCount(): number {
    return this.#bytes;
  }

  /** Keeps a frame just sent. A frame larger than `maxBytes` on its own is not kept. */
  add(frame: FragmentedFrame): void {
    const previous = this.#frames.get(frame.frameId);
    if (previous !== undefined) this.#remove(frame.frameId, previous);
    if (frame.byteLength > this.#maxBytes) return;
    // Map iteration order is insertion order: the first entry is the oldest frame.
    for (const [id, stored] of this.#frames) {
      if (this.#frames.size < this.#maxFrames && this.#bytes + frame.byteLength <= this.#maxBytes) break;
      this.#remove(id, stored);
    }
    this.#frames.set(frame.frameId, { frame, resends: new Uint8Array(frame.dataCount) });
    this.#bytes += frame.byteLength;
  }

  /**
   * The messages to send again for `nack`, in index order (send them ahead of new media). Indexes the frame
   * does not have, frames no longer held, and fragments already resent `maxResendsPerFragment` times are
   * skipped and counted in {@link misses}.
   */
  answer(nack: Nack): Uint8Array[] {
    const stored = this.#frames.get(nack.frameId);
    if (stored === undefined) {
      this.misses["unknown-frame"]++;
      return [];
    }
    const { frame, resends } = stored;
    const out: Uint8Array[] = [];
    const take = (index: number): void => {
      if (!(index >= 0 && index < frame.dataCount)) {
        this.misses["unknown-index"]++;
        return;
      }
      const sent = resends[index] as number;
      if (sent >= this.#maxResends) {
        this.misses["resend-limit"]++;
        return;
      }
      const payload = frame.payloads[dataSendPosition(index, frame.groupSize)];
      if (payload === undefined) return;
      resends[index] = sent + 1;
      out.push(payload);
    };
    if (nack.all) for (let index = 0; index < frame.dataCount; index++) take(index);
    else for (const index of nack.missing) take(index);
    this.resent += out.length;
    return out;
  }

  #remove(id: number, stored: StoredFrame): void {
    this.#frames.delete(id);
    this.#bytes -= stored.frame.byteLength;
  }
}
