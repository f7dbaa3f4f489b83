/**
 * Where the monitor's rules keep their state: counters, relay baselines, admin token patterns. Entries are grouped
 * in families (one per rule or kind of baseline) and each family holds at most `cap` keys: adding one more evicts
 * the key of that family updated longest ago, so an attacker who sprays subjects (accounts, ranges, relay ids) costs
 * the monitor bounded memory and storage, and only loses the oldest, least interesting counters.
 *
 * Keys are built from ids or keyed hashes only (never an email or an address). The Durable Object implements this
 * over its SQLite storage; {@link MemoryEntryStore} is the same contract in memory, for the pure tests.
 */
export interface EntryStore {
  /** The stored value, or undefined. Callers check its shape before trusting it. */
  get(key: string): unknown;
  /** Stores `value` under `key` in `family`, updated at `at`; evicts the family's oldest key beyond `cap`. */
  put(family: string, key: string, value: unknown, at: number, cap: number): void;
  /** Forgets entries not updated since `before` (windows and baselines gone quiet), but none of `keep`'s families. */
  prune(before: number, keep?: readonly string[]): number;
}

interface Held {
  readonly family: string;
  readonly value: unknown;
  readonly at: number;
}

/** An in-memory {@link EntryStore}. */
export class MemoryEntryStore implements EntryStore {
  readonly #entries = new Map<string, Held>();

  get(key: string): unknown {
    return this.#entries.get(key)?.value;
  }

  put(family: string, key: string, value: unknown, at: number, cap: number): void {
    const known = this.#entries.get(key);
    this.#entries.set(key, { family, value, at: Math.max(at, known?.at ?? at) });
    if (known !== undefined) return;
    const members = [...this.#entries].filter(([, held]) => held.family === family);
    if (members.length <= cap) return;
    members.sort((a, b) => a[1].at - b[1].at);
    for (const [oldKey] of members.slice(0, members.length - cap)) this.#entries.delete(oldKey);
  }

  prune(before: number, keep: readonly string[] = []): number {
    let n = 0;
    for (const [key, held] of this.#entries) {
      if (held.at < before && !keep.includes(held.family)) {
        this.#entries.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Keys held in a family (tests). */
  size(family: string): number {
    return [...this.#entries.values()].filter((held) => held.family === family).length;
  }
}
