import type { HandshakeFailure, ResponderHandshake } from "../../protocol/transport/peer-handshake.ts";
import type { HandshakeInitFrame } from "../../protocol/wire/peer-frames.ts";

/** A host-side handshake in progress. */
export interface ResponderSlot {
  readonly handshake: ResponderHandshake;
  readonly createdAt: number;
  /** Where its INIT came from ("relay" or "ip:port"): the unit of fairness. */
  readonly source: string;
}

/**
 * The host's handshakes in progress for one session, keyed by the client's sender index. INIT is unauthenticated
 * (XX message 1), so anyone who knows the session id can open a slot; the table keeps that from hurting the
 * genuine client:
 *
 * - one slot per distinct sender index: a spoofed INIT never replaces another index's responder, and a repeat of
 *   the same INIT bytes gets the same RESP (retransmission) without new state;
 * - at most `maxPerSource` slots per source address: a flood from one address only churns its own slots;
 * - at most `maxSlots` in all: when full, the busiest source loses its oldest slot.
 *
 * An attacker forging many source addresses can still churn the table; WireGuard answers that with cookie replies,
 * which the wire protocol does not have (yet). The genuine client retransmits INIT, so it recovers when the flood
 * ends.
 */
export class ResponderTable {
  readonly #slots = new Map<number, ResponderSlot>();
  readonly #maxSlots: number;
  readonly #maxPerSource: number;
  readonly #create: () => ResponderHandshake;
  /** Slots given up to make room (a metric). */
  evictions = 0;

  constructor(maxSlots: number, maxPerSource: number, create: () => ResponderHandshake) {
    if (!(maxSlots >= 1 && maxPerSource >= 1)) throw new RangeError("responder limits must be at least 1");
    this.#maxSlots = maxSlots;
    this.#maxPerSource = maxPerSource;
    this.#create = create;
  }

  get size(): number {
    return this.#slots.size;
  }

  get(senderIndex: number): ResponderSlot | undefined {
    return this.#slots.get(senderIndex);
  }

  clear(): void {
    this.#slots.clear();
  }

  /** Answers an INIT: the RESP to send back, or why it was dropped. A failed INIT leaves no slot behind. */
  handleInit(frame: HandshakeInitFrame, source: string, now: number): Uint8Array | HandshakeFailure {
    const existing = this.#slots.get(frame.senderIndex);
    if (existing !== undefined) return existing.handshake.handleInit(frame);
    const slot: ResponderSlot = { handshake: this.#create(), createdAt: now, source };
    const reply = slot.handshake.handleInit(frame);
    if (typeof reply === "string") return reply;
    this.#makeRoom(source);
    this.#slots.set(frame.senderIndex, slot);
    return reply;
  }

  #makeRoom(source: string): void {
    const counts = new Map<string, number>();
    for (const slot of this.#slots.values()) counts.set(slot.source, (counts.get(slot.source) ?? 0) + 1);
    let victim: string | null = null;
    if ((counts.get(source) ?? 0) >= this.#maxPerSource) victim = source;
    else if (this.#slots.size >= this.#maxSlots) {
      let most = 0;
      for (const [candidate, count] of counts) {
        if (count > most) {
          most = count;
          victim = candidate;
        }
      }
    }
    if (victim === null) return;
    // Map order is insertion order: the first slot of the victim source is its oldest.
    for (const [index, slot] of this.#slots) {
      if (slot.source === victim) {
        this.#slots.delete(index);
        this.evictions++;
        return;
      }
    }
  }
}
