import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type AccessUnit, AnnexBParser } from "../../protocol/media/annexb.ts";
import {
  emptySourceStats,
  type MediaClock,
  monotonicMs,
  type SourceStats,
  type UnitHandler,
  type VideoSource,
} from "./video-source.ts";

/** The clip shipped with the endpoint (made by scripts/make-clip.sh: 320x240, 30 fps, 60 frames, IDR every 30). */
export const DEFAULT_CLIP_PATH = fileURLToPath(new URL("./assets/clip.h264", import.meta.url));
/** The clip's frame rate; the raw H.264 carries none that is cheap to read, so it is stated with the clip. */
export const DEFAULT_CLIP_FPS = 30;
/** The rate the clip was encoded at (what `bitrateKbps` reports). */
const CLIP_KBPS = 300;

/** Options of the clip source. */
export interface ClipSourceOptions {
  /** An Annex B H.264 file that starts with a keyframe; the shipped clip by default. */
  readonly path?: string;
  readonly fps?: number;
  readonly clock?: MediaClock;
}

/**
 * Loops a short H.264 clip at its frame rate, so a host runs with nothing but Node. Needs no encoder: a
 * keyframe request jumps to the next keyframe (the clip starts with one), and a bitrate change is recorded
 * but cannot change the clip's size.
 */
export class ClipVideoSource implements VideoSource {
  readonly kind = "clip";
  readonly stats: SourceStats = emptySourceStats();
  readonly bitrateKbps = CLIP_KBPS;
  /** The clip's access units, parsed once. */
  readonly units: readonly AccessUnit[];
  readonly fps: number;
  readonly #clock: MediaClock;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #keyframeWanted = false;

  constructor(options: ClipSourceOptions = {}) {
    const fps = options.fps ?? DEFAULT_CLIP_FPS;
    if (!Number.isFinite(fps) || fps <= 0 || fps > 1000)
      throw new RangeError(`fps must be 0..1000, got ${fps}`);
    const path = options.path ?? DEFAULT_CLIP_PATH;
    const parser = new AnnexBParser();
    const units = [...parser.push(readFileSync(path)), ...parser.flush()];
    if (units[0]?.keyframe !== true)
      throw new Error(`${path} does not start with a keyframe; remake it with scripts/make-clip.sh`);
    this.units = units;
    this.fps = fps;
    this.#clock = options.clock ?? monotonicMs;
  }

  start(onUnit: UnitHandler): void {
    if (this.#started) throw new Error("video source already started");
    this.#started = true;
    const intervalMs = 1000 / this.fps;
    const began = performance.now();
    let sent = 0;
    const tick = () => {
      // Scheduled against the start time, not the previous tick, so timer lateness does not drift the rate.
      while (sent <= (performance.now() - began) / intervalMs) {
        this.#emit(onUnit);
        sent++;
      }
      this.#timer = setTimeout(tick, Math.max(0, began + sent * intervalMs - performance.now()));
    };
    tick();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  requestKeyframe(): void {
    this.#keyframeWanted = true;
  }

  setBitrate(_kbps: number): void {
    // A clip has a fixed size; accepted so congestion control can drive every source the same way.
  }

  #emit(onUnit: UnitHandler): void {
    if (this.#keyframeWanted) {
      this.#keyframeWanted = false;
      while (this.units[this.#next]?.keyframe !== true) this.#next = (this.#next + 1) % this.units.length;
    }
    const unit = this.units[this.#next];
    this.#next = (this.#next + 1) % this.units.length;
    if (unit === undefined) return;
    this.stats.units++;
    this.stats.bytes += unit.data.length;
    if (unit.keyframe) this.stats.keyframes++;
    // A copy per delivery: the receiver owns the bytes, and the clip's units are reused every loop.
    onUnit({ data: unit.data.slice(), keyframe: unit.keyframe, timestampMs: this.#clock() });
  }
}
