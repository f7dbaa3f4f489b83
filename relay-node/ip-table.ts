import type { RelayLimits } from "./config.ts";
import { perSecond, type TokenBucket } from "./token-bucket.ts";

/**
 * Per-source-IP state, in a table of bounded size: the packet-rate and handshake-rate buckets, the cached verdict of
 * the address blocks (recomputed only when the block list changes), and when we last answered this IP unasked (so
 * replies to unknown traffic stay rate-limited). Keyed by the address string the socket already gives us, so a
 * lookup builds no string.
 */
export class IpEntry {
  readonly packets: TokenBucket;
  readonly handshakes: TokenBucket;
  /** The AddressBlocks generation `blocked` was computed for (-1: never). */
  blockGeneration = -1;
  blocked = false;
  lastReplyMs = Number.NEGATIVE_INFINITY;

  constructor(limits: RelayLimits, nowMs: number) {
    this.packets = perSecond(limits.ipPacketsPerSec, limits.ipPacketBurst, nowMs);
    this.handshakes = perSecond(limits.ipHandshakesPerSec, limits.ipHandshakeBurst, nowMs);
  }
}

/** Entries idle this long are swept; a returning IP simply starts with full buckets. */
const IDLE_MS = 120_000;

/** The bounded table of {@link IpEntry}s, keyed by source address text. */
export class IpTable {
  private readonly entries = new Map<string, IpEntry>();

  constructor(private readonly limits: RelayLimits) {}

  /**
   * The entry for `address`, created if needed. When the table is full the oldest entry is recycled: a flood of
   * spoofed sources can only make limits more lenient for others, never lock them out.
   */
  get(address: string, nowMs: number): IpEntry {
    let entry = this.entries.get(address);
    if (entry === undefined) {
      if (this.entries.size >= this.limits.maxTrackedIps) {
        const oldest = this.entries.keys().next();
        if (oldest.done !== true) this.entries.delete(oldest.value);
      }
      entry = new IpEntry(this.limits, nowMs);
      this.entries.set(address, entry);
    }
    return entry;
  }

  /** Drops entries that saw no packet for a while. */
  sweep(nowMs: number): void {
    for (const [address, entry] of this.entries) {
      if (nowMs - entry.packets.lastMs > IDLE_MS) this.entries.delete(address);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
