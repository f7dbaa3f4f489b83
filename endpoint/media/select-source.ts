import { ClipVideoSource } from "./clip-source.ts";
import { ffmpegHasLibx264 } from "./ffmpeg-args.ts";
import { FfmpegVideoSource } from "./ffmpeg-source.ts";
import {
  type MediaClock,
  type MediaLog,
  type SourceKind,
  silentMediaLog,
  type VideoSource,
} from "./video-source.ts";

/** How to build a source; every field has a default suited to a local session. */
export interface SelectSourceOptions {
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  /** Frames between IDRs (default: one a second). */
  readonly keyint?: number;
  readonly bitrateKbps?: number;
  /** The X display for `x11`, e.g. ":0" (the caller passes $DISPLAY). */
  readonly display?: string;
  readonly ffmpegPath?: string;
  readonly clipPath?: string;
  readonly clock?: MediaClock;
  readonly log?: MediaLog;
}

/**
 * Builds the named source. `test` falls back to the shipped clip, with a log line saying so, when ffmpeg with
 * libx264 is missing (the default run needs nothing but Node); `x11` has no such fallback, since a user who
 * asked to share a screen must not silently get a test clip, and throws instead.
 */
export function selectSource(kind: SourceKind, options: SelectSourceOptions = {}): VideoSource {
  const log = options.log ?? silentMediaLog;
  const clip = () =>
    new ClipVideoSource({
      ...(options.clipPath !== undefined && { path: options.clipPath }),
      ...(options.clock !== undefined && { clock: options.clock }),
    });
  if (kind === "clip") return clip();
  const ffmpegPath = options.ffmpegPath ?? "ffmpeg";
  const fps = options.fps ?? 30;
  const settings = {
    width: options.width ?? 1280,
    height: options.height ?? 720,
    fps,
    keyint: options.keyint ?? fps,
    bitrateKbps: options.bitrateKbps ?? 2500,
    ffmpegPath,
    log,
    ...(options.clock !== undefined && { clock: options.clock }),
  };
  if (!ffmpegHasLibx264(ffmpegPath)) {
    const hint = "install it with `apt-get install -y ffmpeg`";
    if (kind === "x11") throw new Error(`the x11 source needs ffmpeg with libx264 (${ffmpegPath}); ${hint}`);
    log(
      "warn",
      "video-source-fallback",
      `ffmpeg with libx264 not found (${ffmpegPath}): looping the clip; ${hint}`,
    );
    return clip();
  }
  if (kind === "test") return new FfmpegVideoSource({ ...settings, input: { kind: "test" } });
  const display = options.display;
  if (display === undefined || display === "")
    throw new Error("the x11 source needs a display: set DISPLAY (e.g. DISPLAY=:0)");
  return new FfmpegVideoSource({ ...settings, input: { kind: "x11", display } });
}
