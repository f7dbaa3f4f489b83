import { spawnSync } from "node:child_process";

/**
 * ffmpeg command lines for the encoding sources. One set of encoder settings for every source and for the
 * shipped clip (scripts/make-clip.sh), chosen for WebCodecs and for latency:
 * - constrained baseline (`-profile:v baseline`; x264 signals constraint_set1), which every browser decodes;
 * - `ultrafast` + `zerolatency`: no lookahead, no frame threading delay, one picture in, one picture out;
 * - no B-frames, so decode order is display order and each unit is one displayable picture;
 * - a fixed GOP (`-g`, scene cuts off) so keyframes come at a known rate;
 * - `aud=1`: an access unit delimiter before every picture, which the Annex B parser splits on;
 * - raw Annex B to stdout; libx264 repeats SPS/PPS before every IDR when there is no global header.
 */

/** Encoder settings shared by the `test` and `x11` sources. */
export interface EncoderSettings {
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** Frames between IDRs. */
  readonly keyint: number;
  readonly bitrateKbps: number;
}

/** What an ffmpeg source reads: the lavfi test pattern or an X display. */
export type CaptureInput = { readonly kind: "test" } | { readonly kind: "x11"; readonly display: string };

/** The full argument list (without the program name) for one encoder process. */
export function ffmpegArgs(input: CaptureInput, s: EncoderSettings): string[] {
  const size = `${s.width}x${s.height}`;
  const inputArgs =
    input.kind === "test"
      ? // -re paces the synthetic source at its frame rate; x11grab is paced by -framerate itself.
        ["-re", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=${s.fps}`]
      : [
          "-f",
          "x11grab",
          "-framerate",
          String(s.fps),
          "-video_size",
          size,
          "-draw_mouse",
          "1",
          "-i",
          input.display,
        ];
  const kbps = Math.round(s.bitrateKbps);
  return [
    "-hide_banner",
    "-loglevel",
    "error",
    "-nostdin",
    ...inputArgs,
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-profile:v",
    "baseline",
    "-pix_fmt",
    "yuv420p",
    "-g",
    String(s.keyint),
    "-keyint_min",
    String(s.keyint),
    "-sc_threshold",
    "0",
    "-bf",
    "0",
    "-b:v",
    `${kbps}k`,
    "-maxrate",
    `${kbps}k`,
    // About one frame of VBV buffer: frame sizes stay near the average, which keeps pacing smooth.
    "-bufsize",
    `${Math.max(1, Math.round(kbps / s.fps))}k`,
    "-x264-params",
    "aud=1",
    // Without it the muxer buffers output in 32 KiB blocks, adding a frame or more of delay at low rates.
    "-flush_packets",
    "1",
    "-f",
    "h264",
    "pipe:1",
  ];
}

/** Whether `ffmpeg` runs and has libx264. Synchronous: called once, when a source is selected. */
export function ffmpegHasLibx264(ffmpegPath = "ffmpeg"): boolean {
  const result = spawnSync(ffmpegPath, ["-hide_banner", "-encoders"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 && /\blibx264\b/.test(result.stdout);
}
