import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClipVideoSource } from "../../endpoint/media/clip-source.ts";
import { ffmpegHasLibx264 } from "../../endpoint/media/ffmpeg-args.ts";
import { FfmpegVideoSource } from "../../endpoint/media/ffmpeg-source.ts";
import { FileSink, parseFileSinkSpec } from "../../endpoint/media/file-sink.ts";
import { selectSource } from "../../endpoint/media/select-source.ts";
import type { EncodedUnit, VideoSource } from "../../endpoint/media/video-source.ts";

const SMALL = { width: 320, height: 240, fps: 30, keyint: 30, bitrateKbps: 300 } as const;

const sources: VideoSource[] = [];
const dirs: string[] = [];
let xvfb: ChildProcess | undefined;

beforeAll(() => {
  if (!ffmpegHasLibx264())
    throw new Error(
      "these tests need ffmpeg with libx264: apt-get install -y ffmpeg (and xvfb for the x11 test)",
    );
});
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(() => {
  xvfb?.kill("SIGKILL");
});

function tracked<T extends VideoSource>(source: T): T {
  sources.push(source);
  return source;
}

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-media-"));
  dirs.push(dir);
  return dir;
}

/** Resolves once `until` holds for the units received so far; rejects after `ms`. */
function collect(source: VideoSource, until: (units: EncodedUnit[]) => boolean, ms = 10_000) {
  const units: EncodedUnit[] = [];
  const done = new Promise<EncodedUnit[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${units.length} units`)), ms);
    source.start((unit) => {
      units.push(unit);
      if (until(units)) {
        clearTimeout(timer);
        resolve(units);
      }
    });
  });
  return { units, done };
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function probeFrames(file: string): number {
  const probe = spawnSync(
    "ffprobe",
    [
      "-v",
      "error",
      "-count_frames",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=nb_read_frames",
    ].concat(["-of", "csv=p=0", file]),
    { encoding: "utf8" },
  );
  expect(probe.status, probe.stderr).toBe(0);
  return Number(probe.stdout.trim());
}

describe("endpoint media sources", () => {
  it("test source: units start with a keyframe, and a bitrate change restarts with a keyframe", async () => {
    const source = tracked(new FfmpegVideoSource({ ...SMALL, input: { kind: "test" } }));
    const { units, done } = collect(source, (u) => u.length >= 8);
    await done;
    expect(units[0]?.keyframe).toBe(true);
    expect(units.slice(1, 8).every((u) => !u.keyframe)).toBe(true);
    expect(units.every((u, i) => i === 0 || u.timestampMs >= (units[i - 1]?.timestampMs ?? 0))).toBe(true);
    const before = units.length;
    source.setBitrate(600);
    expect(source.bitrateKbps).toBe(600);
    await waitFor(() => units.length >= before + 3, 10_000, "units after the restart");
    expect(source.stats.encoderStarts).toBe(2);
    // The old encoder's units are discarded from the moment of the change: the next unit is the new IDR.
    expect(units[before]?.keyframe).toBe(true);
    expect(units.slice(before + 1, before + 3).every((u) => !u.keyframe)).toBe(true);
    source.requestKeyframe();
    const mark = units.length;
    await waitFor(() => units.length >= mark + 2, 10_000, "units after a keyframe request");
    expect(units[mark]?.keyframe).toBe(true);
    expect(source.stats.encoderStarts).toBe(3);
    expect(source.stats.dropped).toBe(0);
  });

  it("clip source loops the shipped clip with a keyframe every 30 units, no ffmpeg needed", async () => {
    const source = tracked(new ClipVideoSource({ fps: 400 }));
    expect(source.units).toHaveLength(60);
    const { units, done } = collect(source, (u) => u.length >= 150);
    await done;
    const keys = units.slice(0, 150).flatMap((u, i) => (u.keyframe ? [i] : []));
    expect(keys).toEqual([0, 30, 60, 90, 120]);
    expect(units[60]?.data).toEqual(units[0]?.data);
  });

  it("selectSource builds each kind, and `test` falls back to the clip when ffmpeg is missing", () => {
    const lines: string[] = [];
    const log = (_level: string, event: string, detail: string) => lines.push(`${event} ${detail}`);
    const fallback = selectSource("test", { ffmpegPath: "/nonexistent/ffmpeg", log });
    expect(fallback.kind).toBe("clip");
    expect(lines.join("\n")).toMatch(/video-source-fallback .*apt-get install -y ffmpeg/);
    expect(() => selectSource("x11", { ffmpegPath: "/nonexistent/ffmpeg" })).toThrow(/ffmpeg/);
    expect(() => selectSource("x11", {})).toThrow(/DISPLAY/);
    expect(selectSource("test", SMALL).kind).toBe("test");
    expect(selectSource("clip").kind).toBe("clip");
  });

  it("file sink output decodes with ffmpeg into the expected number of frames", async () => {
    expect(parseFileSinkSpec("file:/tmp/x.h264")).toEqual({ kind: "file", path: "/tmp/x.h264" });
    expect(parseFileSinkSpec("viewer")).toBeUndefined();
    expect(parseFileSinkSpec("file:")).toBeUndefined();
    const source = tracked(new ClipVideoSource({ fps: 400 }));
    const file = path.join(tempDir(), "out.h264");
    const sink = await FileSink.open(file);
    // Start mid-GOP: the sink skips to the first keyframe so the file decodes from its first byte.
    const { units, done } = collect(source, (u) => u.length >= 125);
    await done;
    await source.stop();
    for (const unit of units.slice(5, 125)) sink.write(unit);
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 95, skippedBeforeKeyframe: 25 });
    expect(() => sink.write({ data: new Uint8Array(1), keyframe: true })).toThrow(/closed/);
    const decode = spawnSync("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"], { encoding: "utf8" });
    expect(decode.status, decode.stderr).toBe(0);
    expect(decode.stderr).toBe("");
    expect(probeFrames(file)).toBe(95);
  });

  it("x11 source captures a throwaway Xvfb display and starts with a keyframe", async () => {
    let display = 0;
    for (let n = 99; n < 199; n++)
      if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) {
        display = n;
        break;
      }
    expect(display, "no free X display number in 99..198").toBeGreaterThan(0);
    const server = spawn("Xvfb", [`:${display}`, "-screen", "0", "640x480x24", "-nolisten", "tcp"], {
      stdio: "ignore",
    });
    xvfb = server;
    const spawnError = new Promise<Error>((resolve) => server.once("error", resolve));
    await Promise.race([
      waitFor(() => existsSync(`/tmp/.X11-unix/X${display}`), 10_000, `Xvfb :${display}`),
      spawnError.then((e) => {
        throw new Error(`Xvfb failed to start (apt-get install -y xvfb): ${e.message}`);
      }),
    ]);
    try {
      const source = tracked(selectSource("x11", { ...SMALL, display: `:${display}` }));
      expect(source.kind).toBe("x11");
      const { units, done } = collect(source, (u) => u.filter((x) => x.keyframe).length >= 2, 15_000);
      await done;
      expect(units[0]?.keyframe).toBe(true);
      expect(units.length).toBeGreaterThanOrEqual(SMALL.keyint + 1);
    } finally {
      await Promise.all(sources.splice(0).map((s) => s.stop()));
      server.kill("SIGTERM");
      await new Promise((r) => server.once("exit", r));
      xvfb = undefined;
    }
  });
});
