import { randomFillSync } from "node:crypto";
import {
  emptySourceStats,
  type MediaClock,
  monotonicMs,
  type SourceStats,
  type UnitHandler,
  type VideoSource,
} from "../media/video-source.ts";

/** Options of {@link SyntheticVideoSource}. */
export interface SyntheticSourceOptions {
  readonly fps: number;
  /** Bytes of a non-keyframe unit. */
  readonly frameBytes: number;
  /** Bytes of a keyframe unit; default `frameBytes`. */
  readonly keyframeBytes?: number;
  /** A keyframe every this many units (and whenever one is requested); default 60. */
  readonly keyframeInterval?: number;
  /** Copied into every unit at offset 8 (tests look for it where it must not appear). */
  readonly marker?: Uint8Array;
  readonly clock?: MediaClock;
}

/**
 * Random bytes at a fixed frame rate, shaped like an encoder's output (a keyframe first, then every
 * `keyframeInterval`, and on request). Not H.264: for transport tests and benchmarks, never for a decoder.
 */
export class SyntheticVideoSource implements VideoSource {
  readonly kind = "test";
  readonly stats: SourceStats = emptySourceStats();
  bitrateKbps: number;
  readonly #options: SyntheticSourceOptions;
  readonly #clock: MediaClock;
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;
  #sinceKeyframe = 0;
  #keyframeWanted = true;

  constructor(options: SyntheticSourceOptions) {
    if (!(options.fps > 0 && options.fps <= 1000)) throw new RangeError("fps must be 0..1000");
    if (!(options.frameBytes >= 16)) throw new RangeError("frameBytes must be at least 16");
    this.#options = options;
    this.#clock = options.clock ?? monotonicMs;
    this.bitrateKbps = Math.round((options.frameBytes * 8 * options.fps) / 1000);
  }

  start(onUnit: UnitHandler): void {
    if (this.#started) throw new Error("video source already started");
    this.#started = true;
    const intervalMs = 1000 / this.#options.fps;
    const began = performance.now();
    let sent = 0;
    // Catch up after a late timer rather than drift: the frame rate is what a benchmark states.
    const tick = () => {
      if (this.#stopped) return;
      while (sent <= (performance.now() - began) / intervalMs) {
        this.#emit(onUnit);
        sent++;
      }
      this.#timer = setTimeout(tick, Math.max(0, began + sent * intervalMs - performance.now()));
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  requestKeyframe(): void {
    this.#keyframeWanted = true;
  }

  setBitrate(kbps: number): void {
    // Recorded only: the sizes are what the caller asked for.
    this.bitrateKbps = kbps;
  }

  #emit(onUnit: UnitHandler): void {
    const { frameBytes, keyframeInterval = 60, marker } = this.#options;
    const keyframe = this.#keyframeWanted || this.#sinceKeyframe >= keyframeInterval;
    this.#keyframeWanted = false;
    this.#sinceKeyframe = keyframe ? 1 : this.#sinceKeyframe + 1;
    const size = keyframe ? (this.#options.keyframeBytes ?? frameBytes) : frameBytes;
    const data = randomFillSync(new Uint8Array(size));
    if (marker !== undefined && size >= 8 + marker.length) data.set(marker, 8);
    this.stats.units++;
    this.stats.bytes += size;
    if (keyframe) this.stats.keyframes++;
    onUnit({ data, keyframe, timestampMs: this.#clock() });
  }
}
