import { createSocket, type RemoteInfo } from "node:dgram";

/** What the proxy does to each datagram, per direction alike. Probabilities are 0..1. */
export interface Impairment {
  readonly loss: number;
  readonly duplicate: number;
  /** Probability a datagram is held back `reorderDelayMs`, so later ones overtake it. */
  readonly reorder: number;
  readonly reorderDelayMs: number;
}

/** A clean path. */
export const NO_IMPAIRMENT: Impairment = { loss: 0, duplicate: 0, reorder: 0, reorderDelayMs: 0 };

/** Counters of a {@link LossyProxy}. */
export interface LossyProxyStats {
  seen: number;
  dropped: number;
  duplicated: number;
  reordered: number;
}

/** A seeded PRNG (mulberry32): reproducible impairment, NOT secure. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A UDP proxy on 127.0.0.1 between a client and one upstream (the host): datagrams from the upstream go to the
 * last client address seen, everything else goes upstream, each through the same seeded loss, duplication and
 * reordering. Give the client the proxy's address as the host candidate. `observe` sees every datagram as it
 * arrived (before impairment), for checks on what the path carries.
 */
export class LossyProxy {
  impairment: Impairment;
  readonly stats: LossyProxyStats = { seen: 0, dropped: 0, duplicated: 0, reordered: 0 };
  readonly #socket = createSocket("udp4");
  readonly #upstream: { address: string; port: number };
  readonly #random: () => number;
  readonly #observe: ((datagram: Buffer) => void) | undefined;
  readonly #timers = new Set<NodeJS.Timeout>();
  #client: { address: string; port: number } | undefined;

  private constructor(
    upstream: { address: string; port: number },
    impairment: Impairment,
    seed: number,
    observe: ((datagram: Buffer) => void) | undefined,
  ) {
    this.#upstream = upstream;
    this.impairment = impairment;
    this.#random = mulberry32(seed);
    this.#observe = observe;
    this.#socket.on("message", (msg, rinfo) => this.#onMessage(msg, rinfo));
    // A closed client port (ICMP unreachable) must not kill the proxy.
    this.#socket.on("error", () => undefined);
  }

  /** Binds the proxy in front of `upstream`. */
  static async start(options: {
    upstream: { address: string; port: number };
    impairment?: Impairment;
    seed?: number;
    observe?: (datagram: Buffer) => void;
  }): Promise<LossyProxy> {
    const proxy = new LossyProxy(
      options.upstream,
      options.impairment ?? NO_IMPAIRMENT,
      options.seed ?? 1,
      options.observe,
    );
    await new Promise<void>((resolve) => proxy.#socket.bind(0, "127.0.0.1", () => resolve()));
    return proxy;
  }

  /** The address to give the client as the host's candidate. */
  get address(): { address: string; port: number } {
    const { address, port } = this.#socket.address();
    return { address, port };
  }

  close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.seen++;
    this.#observe?.(msg);
    const fromUpstream = rinfo.address === this.#upstream.address && rinfo.port === this.#upstream.port;
    if (!fromUpstream) this.#client = { address: rinfo.address, port: rinfo.port };
    const target = fromUpstream ? this.#client : this.#upstream;
    if (target === undefined) return;
    const { loss, duplicate, reorder, reorderDelayMs } = this.impairment;
    if (this.#random() < loss) {
      this.stats.dropped++;
      return;
    }
    const copies = this.#random() < duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    if (this.#random() < reorder) {
      this.stats.reordered++;
      // Node reuses no receive buffer, but copy anyway: the datagram outlives this call.
      const held = Buffer.from(msg);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        for (let i = 0; i < copies; i++) this.#socket.send(held, target.port, target.address);
      }, reorderDelayMs);
      this.#timers.add(timer);
      return;
    }
    for (let i = 0; i < copies; i++) this.#socket.send(msg, target.port, target.address);
  }
}
