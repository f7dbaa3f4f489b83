/**
 * A fast, deterministic fuzz-input generator for decoders: random bytes, random tails behind a valid
 * version/type prefix, and mutations (bit flips, truncation, extension, splices) of valid frames.
 * fast-check drives the round-trip properties; this loop supplies the 100,000+ arbitrary inputs per
 * decoder cheaply enough to run on every `npm test`.
 */
export interface FuzzOptions {
  readonly count: number;
  readonly seed: number;
  readonly maxLength: number;
  /** Valid frames to mutate. */
  readonly corpus: readonly Uint8Array[];
  /** First bytes worth steering towards (versions and type codes). */
  readonly prefixes: readonly (readonly number[])[];
}

export function* fuzzInputs(options: FuzzOptions): Generator<Uint8Array> {
  let state = options.seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const below = (n: number) => next() % n;
  const fill = (out: Uint8Array, from: number) => {
    for (let i = from; i < out.length; i++) out[i] = next() & 0xff;
  };
  for (let i = 0; i < options.count; i++) {
    const kind = below(3);
    if (kind === 0 || options.corpus.length === 0) {
      const out = new Uint8Array(below(options.maxLength + 1));
      fill(out, 0);
      yield out;
    } else if (kind === 1) {
      const prefix = options.prefixes[below(options.prefixes.length)] ?? [];
      const out = new Uint8Array(prefix.length + below(options.maxLength + 1 - prefix.length));
      fill(out, 0);
      out.set(prefix.slice(0, out.length));
      yield out;
    } else {
      const base = options.corpus[below(options.corpus.length)] as Uint8Array;
      let out: Uint8Array;
      switch (below(4)) {
        case 0: {
          out = base.slice();
          const flips = 1 + below(4);
          for (let f = 0; f < flips && out.length > 0; f++) {
            const at = below(out.length);
            out[at] = (out[at] as number) ^ (1 << below(8));
          }
          break;
        }
        case 1:
          out = base.slice(0, below(base.length + 1));
          break;
        case 2: {
          out = new Uint8Array(Math.min(options.maxLength, base.length + 1 + below(64)));
          out.set(base.subarray(0, out.length));
          fill(out, base.length);
          break;
        }
        default: {
          out = base.slice();
          const at = below(out.length + 1);
          for (let j = at; j < Math.min(out.length, at + 1 + below(8)); j++) out[j] = next() & 0xff;
        }
      }
      yield out;
    }
  }
}

/** True when `part` is a view into the same memory as `whole`, inside its bounds (no copy was made). */
export function isViewInto(part: Uint8Array, whole: Uint8Array): boolean {
  return (
    part.buffer === whole.buffer &&
    part.byteOffset >= whole.byteOffset &&
    part.byteOffset + part.byteLength <= whole.byteOffset + whole.byteLength
  );
}
