import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { AnnexBParser } from "../../protocol/media/annexb.ts";
import { type CaptureInput, type EncoderSettings, ffmpegArgs } from "./ffmpeg-args.ts";
import {
  type EncodedUnit,
  emptySourceStats,
  type MediaClock,
  type MediaLog,
  monotonicMs,
  type SourceStats,
  silentMediaLog,
  type UnitHandler,
  type VideoSource,
} from "./video-source.ts";

/** Options of an ffmpeg-backed source (`test` or `x11`). */
export interface FfmpegSourceOptions extends EncoderSettings {
  readonly input: CaptureInput;
  /** The ffmpeg binary; "ffmpeg" from PATH by default. */
  readonly ffmpegPath?: string;
  readonly clock?: MediaClock;
  readonly log?: MediaLog;
  /** Wait before restarting an encoder that exited on its own (default 1000 ms). */
  readonly respawnDelayMs?: number;
}

type Encoder = ChildProcessByStdio<null, Readable, Readable>;

/** Bitrates accepted by setBitrate, kbit/s. */
const MIN_KBPS = 50;
const MAX_KBPS = 100_000;
/** Keeps the tail of ffmpeg's stderr for the exit log line, not more. */
const STDERR_TAIL = 2048;

/**
 * An H.264 source encoding with an ffmpeg child process. A keyframe request or a bitrate change restarts the
 * encoder: x264 opens every stream with an IDR (with SPS/PPS), so the first unit after a restart is always a
 * keyframe, and units of the old process that were still in flight are discarded (each process has its own
 * parser, and only the current one's units are delivered).
 */
export class FfmpegVideoSource implements VideoSource {
  readonly kind: "test" | "x11";
  readonly stats: SourceStats = emptySourceStats();
  #settings: EncoderSettings;
  readonly #input: CaptureInput;
  readonly #ffmpegPath: string;
  readonly #clock: MediaClock;
  readonly #log: MediaLog;
  readonly #respawnDelayMs: number;
  #onUnit: UnitHandler | undefined;
  #encoder: Encoder | undefined;
  #respawnTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: FfmpegSourceOptions) {
    const { width, height, fps, keyint, bitrateKbps } = options;
    for (const [name, value, min, max] of [
      ["width", width, 16, 7680],
      ["height", height, 16, 4320],
      ["fps", fps, 1, 240],
      ["keyint", keyint, 1, 10_000],
    ] as const)
      if (!Number.isInteger(value) || value < min || value > max)
        throw new RangeError(`${name} must be an integer ${min}..${max}, got ${value}`);
    // 4:2:0 needs even dimensions; x264 refuses odd ones with a message that names neither.
    if (width % 2 !== 0 || height % 2 !== 0) throw new RangeError("width and height must be even");
    checkKbps(bitrateKbps);
    this.kind = options.input.kind;
    this.#input = options.input;
    this.#settings = { width, height, fps, keyint, bitrateKbps };
    this.#ffmpegPath = options.ffmpegPath ?? "ffmpeg";
    this.#clock = options.clock ?? monotonicMs;
    this.#log = options.log ?? silentMediaLog;
    this.#respawnDelayMs = options.respawnDelayMs ?? 1000;
  }

  get bitrateKbps(): number {
    return this.#settings.bitrateKbps;
  }

  start(onUnit: UnitHandler): void {
    if (this.#onUnit !== undefined || this.#stopped) throw new Error("video source already started");
    this.#onUnit = onUnit;
    this.#spawn();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#respawnTimer);
    const encoder = this.#encoder;
    this.#encoder = undefined;
    if (encoder !== undefined) await kill(encoder);
  }

  requestKeyframe(): void {
    this.#restart("keyframe-request");
  }

  setBitrate(kbps: number): void {
    checkKbps(kbps);
    if (kbps === this.#settings.bitrateKbps) return;
    this.#settings = { ...this.#settings, bitrateKbps: kbps };
    this.#restart("bitrate");
  }

  #restart(reason: string): void {
    if (this.#stopped || this.#onUnit === undefined) return;
    const old = this.#encoder;
    this.#encoder = undefined;
    // Not awaited: the old process's units are ignored from now on, and its exit handler sees it is stale.
    if (old !== undefined) void kill(old);
    this.#log("info", "video-encoder-restart", `${reason}, ${this.#settings.bitrateKbps} kbit/s`);
    this.#spawn();
  }

  #spawn(): void {
    clearTimeout(this.#respawnTimer);
    const args = ffmpegArgs(this.#input, this.#settings);
    const encoder: Encoder = spawn(this.#ffmpegPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#encoder = encoder;
    this.stats.encoderStarts++;
    const parser = new AnnexBParser();
    let stderr = "";
    const deliver = (units: readonly { data: Uint8Array; keyframe: boolean }[]) => {
      const onUnit = this.#onUnit;
      if (this.#encoder !== encoder || onUnit === undefined) return;
      for (const { data, keyframe } of units) {
        const unit: EncodedUnit = { data, keyframe, timestampMs: this.#clock() };
        this.stats.units++;
        this.stats.bytes += data.length;
        if (keyframe) this.stats.keyframes++;
        onUnit(unit);
      }
    };
    const countDrops = () => {
      const d = parser.drops;
      if (this.#encoder === encoder) this.stats.dropped = d["too-large"] + d["no-picture"] + d.garbage;
    };
    encoder.stdout.on("data", (chunk: Buffer) => {
      deliver(parser.push(chunk));
      countDrops();
    });
    encoder.stderr.setEncoding("utf8");
    encoder.stderr.on("data", (text: string) => {
      stderr = (stderr + text).slice(-STDERR_TAIL);
    });
    encoder.on("error", (error) => {
      this.#log("error", "video-encoder-spawn", `${this.#ffmpegPath}: ${error.message}`);
    });
    encoder.on("close", (code, signal) => {
      if (this.#encoder !== encoder) return;
      deliver(parser.flush());
      this.#encoder = undefined;
      if (this.#stopped) return;
      const why = signal ?? `exit ${code ?? "?"}`;
      this.#log("error", "video-encoder-exit", `${why}: ${stderr.trim() || "no output"}; restarting`);
      this.#respawnTimer = setTimeout(() => {
        if (!this.#stopped && this.#encoder === undefined) this.#spawn();
      }, this.#respawnDelayMs);
    });
  }
}

function checkKbps(kbps: number): void {
  if (!Number.isFinite(kbps) || kbps < MIN_KBPS || kbps > MAX_KBPS)
    throw new RangeError(`bitrate must be ${MIN_KBPS}..${MAX_KBPS} kbit/s, got ${kbps}`);
}

/** SIGTERM, then SIGKILL after a second; resolves when the process is gone. */
function kill(child: Encoder): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 1000);
    child.once("close", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
