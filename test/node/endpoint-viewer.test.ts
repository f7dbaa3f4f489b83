import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { request } from "node:http";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startViewer, type Viewer, ViewerConfigError } from "../../endpoint/viewer/viewer-server.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import { launchChromium } from "../support/browser.ts";

const FFMPEG = "/usr/bin/ffmpeg";
const FRAME_COUNT = 30;

interface Unit {
  readonly data: Uint8Array;
  readonly keyframe: boolean;
}

/** NAL start offsets (after the 00 00 01 start code) in an Annex B stream. */
function nalStarts(bytes: Uint8Array): number[] {
  const starts: number[] = [];
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) starts.push(i + 3);
  }
  return starts;
}

/** Splits an Annex B stream at access unit delimiters (NAL type 9), which x264 writes with aud=1. */
function splitAccessUnits(stream: Uint8Array): Unit[] {
  const units: Unit[] = [];
  let begin = -1;
  let keyframe = false;
  for (const start of nalStarts(stream)) {
    const type = (stream[start] ?? 0) & 0x1f;
    if (type === 9) {
      // Include the zero byte of a 4-byte start code with the unit it opens.
      const codeStart = start - (stream[start - 4] === 0 ? 4 : 3);
      if (begin >= 0) units.push({ data: stream.subarray(begin, codeStart), keyframe });
      begin = codeStart;
      keyframe = false;
    }
    if (type === 5) keyframe = true;
  }
  if (begin >= 0) units.push({ data: stream.subarray(begin), keyframe });
  return units;
}

function encodeTestPattern(): Unit[] {
  if (!existsSync(FFMPEG))
    throw new Error(`${FFMPEG} is missing: install it with "sudo apt-get install -y ffmpeg"`);
  const stream = execFileSync(
    FFMPEG,
    [
      ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"],
      ...[
        "-frames:v",
        String(FRAME_COUNT),
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-tune",
        "zerolatency",
      ],
      ...["-x264-params", "aud=1", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"],
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return splitAccessUnits(new Uint8Array(stream.buffer, stream.byteOffset, stream.length));
}

interface PageStats {
  readonly codecSupported: boolean | null;
  readonly framesDecoded: number;
  readonly dropped: number;
  readonly lastError: string;
  readonly width: number;
  readonly height: number;
}

/*
 * Browser-side code is passed as strings: the Node tsconfig has no DOM types, and these run in the page.
 */
const readStats = (page: Page) => page.evaluate<PageStats>("({ ...window.__wavryStats })");

/** Distinct colours among sampled canvas pixels: one for a blank canvas, many for testsrc2. */
const COUNT_COLOURS = `(() => {
  const canvas = document.getElementById("screen");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += 4 * 97) seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  return seen.size;
})()`;

/** Resolves once `predicate` holds for the inputs seen so far. */
async function waitForInputs(
  inputs: readonly InputEvent[],
  predicate: (events: readonly InputEvent[]) => boolean,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(inputs)) {
    if (Date.now() > deadline) throw new Error(`input did not arrive; got ${JSON.stringify(inputs)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("endpoint viewer in headless chromium", () => {
  let viewer: Viewer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const inputs: InputEvent[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    viewer = await startViewer();
    viewer.on("input", (event) => inputs.push(event));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await viewer?.close();
  });

  function opened(): { viewer: Viewer; page: Page } {
    if (viewer === undefined || page === undefined) throw new Error("viewer page is not open");
    return { viewer, page };
  }

  it("listens on 127.0.0.1 only, refuses other hosts, and answers a wrong token with 404", async () => {
    if (viewer === undefined) throw new Error("viewer did not start");
    const url = new URL(viewer.url);
    expect(url.hostname).toBe("127.0.0.1");
    expect(url.pathname).toMatch(/^\/v\/[A-Za-z0-9_-]{22}\/$/);
    await expect(startViewer({ host: "0.0.0.0" })).rejects.toThrow(ViewerConfigError);

    const good = await fetch(viewer.url);
    expect(good.status).toBe(200);
    expect(good.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(good.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(good.headers.get("cache-control")).toBe("no-store");
    expect(good.headers.get("x-content-type-options")).toBe("nosniff");
    await good.arrayBuffer();

    const token = url.pathname.split("/")[2] ?? "";
    const wrong = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    for (const path of [
      `/v/${wrong}/`,
      `/v/${wrong}/viewer.js`,
      "/",
      "/v/",
      `/v/${token}`,
      `/v/${token}/x`,
    ]) {
      const response = await fetch(new URL(path, viewer.url));
      expect(response.status, path).toBe(404);
      expect(await response.text()).toBe("not found\n");
    }
    // The right token under another Host name (DNS rebinding) is refused too.
    // fetch() will not send a made-up Host header, so use node:http for this one.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = request(viewer?.url ?? "", { headers: { Host: `evil.example:${url.port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(rebound).toBe(404);
  });

  it("decodes H.264 with WebCodecs and draws it into the canvas", async () => {
    if (viewer === undefined || browser === undefined) throw new Error("setup failed");
    const units = encodeTestPattern();
    expect(units.length).toBe(FRAME_COUNT);
    expect(units[0]?.keyframe).toBe(true);

    const connected = new Promise<void>((resolve) => viewer?.on("connected", resolve));
    page = await browser.newPage({ viewport: { width: 640, height: 480 } });
    // A CSP violation (the inline style's hash, connect-src for the WebSocket) shows up as a console error.
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    await page.goto(viewer.url);
    await connected;
    const before = await readStats(page);
    if (before.codecSupported !== true) {
      throw new Error(`headless chromium cannot decode H.264 with WebCodecs: ${before.lastError}`);
    }
    units.forEach((unit, i) => {
      expect(viewer?.sendFrame({ ...unit, timestampUs: Math.round((i * 1_000_000) / 30) })).toBe(true);
    });
    // Polled from Node: waitForFunction with a string needs eval, which the page's CSP rightly forbids.
    const deadline = Date.now() + 10_000;
    let stats = await readStats(page);
    while (stats.framesDecoded < 20 && stats.lastError === "" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stats = await readStats(page);
    }
    if (stats.framesDecoded < 20) throw new Error(`page did not decode 20 frames: ${JSON.stringify(stats)}`);
    expect(stats.lastError).toBe("");
    expect([stats.width, stats.height]).toEqual([320, 240]);

    // testsrc2 is colourful: a blank or black canvas has one colour, the pattern has many.
    const colours = await page.evaluate<number>(COUNT_COLOURS);
    expect(colours).toBeGreaterThan(20);
    expect(await page.locator("#stats").textContent()).toMatch(/decoded \d+/);
    expect(await page.evaluate<string>('getComputedStyle(document.getElementById("stats")).position')).toBe(
      "fixed",
    );
    expect(consoleErrors).toEqual([]);
  });

  it("forwards a key press and a mouse move and click as typed input events", async () => {
    const { page } = opened();
    inputs.length = 0;
    await page.keyboard.press("KeyA");
    await waitForInputs(inputs, (events) => events.length >= 2);
    expect(inputs).toEqual([
      { type: "key", down: true, code: "KeyA", modifiers: 0 },
      { type: "key", down: false, code: "KeyA", modifiers: 0 },
    ]);

    inputs.length = 0;
    const box = await page.locator("#screen").boundingBox();
    if (box === null) throw new Error("canvas has no box");
    await page.mouse.move(box.x + box.width / 4, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.up();
    await waitForInputs(inputs, (events) => events.filter((e) => e.type === "button").length >= 2);
    const buttons = inputs.filter((e) => e.type === "button");
    expect(buttons).toEqual([
      { type: "button", down: true, button: "left" },
      { type: "button", down: false, button: "left" },
    ]);
    // The position is sent before the button, so the click lands where the pointer is.
    const firstButton = inputs.findIndex((e) => e.type === "button");
    const move = inputs
      .slice(0, firstButton)
      .filter((e) => e.type === "mouse-absolute")
      .at(-1);
    if (move?.type !== "mouse-absolute")
      throw new Error(`no move before the click: ${JSON.stringify(inputs)}`);
    expect(Math.abs(move.x - 0xffff / 4)).toBeLessThan(0xffff / 50);
    expect(Math.abs(move.y - 0xffff / 2)).toBeLessThan(0xffff / 50);
  });
});
