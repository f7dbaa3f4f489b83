import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevStack, startDevStack } from "../../scripts/dev-stack.ts";
import { type SessionPair, startSessionPair } from "../../scripts/session-pair.ts";
import { launchChromium } from "../support/browser.ts";
import { devStackPorts, writeTestDevVars } from "../support/dev-stack-fixture.ts";

/**
 * A live session end to end: the dev stack in a temporary state directory on fresh ports, `wavry host --source
 * x11 --inject xdotool` capturing a throwaway Xvfb, and `wavry connect --path direct` whose viewer page is opened
 * in headless chromium. The page must decode frames of the live session, and a mouse move, a click and a key
 * press in the page must reach the host's X display (xdotool reads the pointer; a focused xev window reports the
 * key press).
 *
 * The screen is 640x480, smaller than the x11 source's default capture size: the host reads the display's size and
 * captures exactly that (x11grab refuses a capture area larger than the screen).
 */
const INSTALL = "sudo apt-get install -y xvfb xdotool x11-utils ffmpeg chromium";
const WIDTH = 640;
const HEIGHT = 480;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = mkdtempSync(path.join(tmpdir(), "wavry-stack-x11-"));
const lines: string[] = [];
let display = "";
let xvfb: ChildProcess | undefined;
let xev: ChildProcess | undefined;
let xevSeen = "";
let stack: DevStack | undefined;
let pair: SessionPair | undefined;
let browser: Browser | undefined;

function firstFreeDisplay(): number {
  for (let n = 120; n < 200; n++) {
    if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  }
  throw new Error("no free X display between :120 and :199");
}

const xEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DISPLAY: display });

function pointer(): { x: number; y: number } {
  const out = execFileSync("xdotool", ["getmouselocation"], { env: xEnv(), encoding: "utf8" });
  const match = /x:(\d+) y:(\d+)/.exec(out);
  return { x: Number(match?.[1]), y: Number(match?.[2]) };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${lines.join("\n")}`);
    await sleep(50);
  }
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  for (const tool of ["Xvfb", "xdotool", "xev", "ffmpeg"]) {
    if (spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool]).status !== 0) {
      throw new Error(`${tool} is not installed; run: ${INSTALL}`);
    }
  }
  display = `:${firstFreeDisplay()}`;
  xvfb = spawn("Xvfb", [display, "-screen", "0", `${WIDTH}x${HEIGHT}x24`, "-nolisten", "tcp", "-noreset"], {
    stdio: "ignore",
  });
  await until("Xvfb to accept clients", () =>
    spawnSync("xdotool", ["getdisplaygeometry"], { env: xEnv() }).status === 0 ? true : undefined,
  );
  // With no window manager, focus follows the pointer: a full-screen xev window receives the injected keys.
  xev = spawn("xev", ["-geometry", `${WIDTH}x${HEIGHT}+0+0`, "-event", "keyboard"], {
    env: xEnv(),
    stdio: ["ignore", "pipe", "ignore"],
  });
  xev.stdout?.on("data", (chunk: Buffer) => {
    xevSeen += chunk.toString();
  });
  await until("the xev window", () =>
    spawnSync("xdotool", ["search", "--name", "Event Tester"], { env: xEnv() }).status === 0
      ? true
      : undefined,
  );

  const devVarsFile = writeTestDevVars(dir).file;
  stack = await startDevStack({
    stateDir: path.join(dir, "state"),
    devVarsFile,
    ...(await devStackPorts()),
  });
  pair = await startSessionPair(stack, {
    path: "direct",
    viewer: true,
    hostArgs: ["--source", "x11", "--inject", "xdotool"],
    hostEnv: { DISPLAY: display },
    onLine: (source, line) => lines.push(`[${source}] ${line}`),
  });
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await pair?.stop();
  await stack?.stop();
  await stopProcess(xev);
  await stopProcess(xvfb);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

interface PageStats {
  readonly codecSupported: boolean | null;
  readonly framesDecoded: number;
  readonly lastError: string;
  readonly width: number;
  readonly height: number;
}

/* Browser-side code as a string: the Node tsconfig has no DOM types. */
const readStats = (page: Page) => page.evaluate<PageStats>("({ ...window.__wavryStats })");

describe("live session: x11 host, viewer in chromium", () => {
  it("decodes the captured display and injects the page's mouse and keys into it", async () => {
    if (pair === undefined || browser === undefined) throw new Error("setup failed");
    const running = pair;
    const url = await until("the viewer URL", () => running.viewerUrl() ?? undefined, 20_000);
    const page = await browser.newPage({ viewport: { width: 960, height: 540 } });
    await page.goto(url);

    const stats = await until(
      "10 decoded frames",
      async () => {
        const s = await readStats(page);
        if (s.codecSupported === false) throw new Error(`chromium cannot decode H.264: ${s.lastError}`);
        return s.framesDecoded >= 10 ? s : undefined;
      },
      15_000,
    );
    expect(stats.lastError, lines.join("\n")).toBe("");
    expect([stats.width, stats.height]).toEqual([WIDTH, HEIGHT]);
    expect(running.sessionPath()).toBe("direct");

    const box = await page.locator("#screen").boundingBox();
    if (box === null) throw new Error("canvas has no box");
    await page.mouse.move(box.x + box.width / 4, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.up();
    // The absolute move is scaled to the host screen: (1/4, 1/2) of the screen.
    const at = await until("the host pointer to move", () => {
      const p = pointer();
      return Math.abs(p.x - WIDTH / 4) <= 8 && Math.abs(p.y - HEIGHT / 2) <= 8 ? p : undefined;
    });
    expect(Math.abs(at.x - WIDTH / 4)).toBeLessThanOrEqual(8);
    expect(Math.abs(at.y - HEIGHT / 2)).toBeLessThanOrEqual(8);

    // The pointer now rests in the xev window, which therefore has the focus.
    await page.keyboard.press("KeyW");
    await until("xev to report the key", () =>
      /KeyRelease event[\s\S]*keysym 0x[0-9a-f]+, w\)/.test(xevSeen) ? true : undefined,
    );
    expect(xevSeen).toMatch(/KeyPress event[\s\S]*keysym 0x[0-9a-f]+, w\)/);
    expect(lines.join("\n")).toMatch(/\[host\] .*streaming the x11 source/);
    await page.close();
  }, 45_000);
});
