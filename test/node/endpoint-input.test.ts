import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoggingInjector } from "../../endpoint/input/logging-injector.ts";
import { keysymForCode } from "../../endpoint/input/x11-keysyms.ts";
import { XdotoolInjector } from "../../endpoint/input/xdotool-injector.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";

/**
 * The input injectors against a real X server: a throwaway Xvfb (640x480, -noreset so the pointer is not reset
 * when the last client leaves), xdotool for the pointer position, and xev as a focused window that reports the
 * key presses it receives.
 */
const INSTALL = "apt-get install -y xvfb xdotool x11-utils";
let xvfb: ChildProcess;
let display: string;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function firstFreeDisplay(): number {
  for (let n = 120; n < 200; n++) {
    if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  }
  throw new Error("no free X display between :120 and :199");
}

function x(args: string[]): string {
  return execFileSync("xdotool", args, { env: { ...process.env, DISPLAY: display }, encoding: "utf8" });
}

function pointer(): { x: number; y: number } {
  const match = /x:(\d+) y:(\d+)/.exec(x(["getmouselocation"]));
  return { x: Number(match?.[1]), y: Number(match?.[2]) };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  for (const tool of ["Xvfb", "xdotool", "xev"]) {
    if (spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool]).status !== 0) {
      throw new Error(`${tool} is not installed; run: ${INSTALL}`);
    }
  }
  const n = firstFreeDisplay();
  display = `:${n}`;
  xvfb = spawn("Xvfb", [display, "-screen", "0", "640x480x24", "-nolisten", "tcp", "-noreset"], {
    stdio: "ignore",
  });
  await until("Xvfb to accept clients", () => {
    const probe = spawnSync("xdotool", ["getdisplaygeometry"], { env: { ...process.env, DISPLAY: display } });
    return probe.status === 0 ? true : undefined;
  });
});

afterAll(async () => {
  if (xvfb !== undefined && xvfb.exitCode === null) {
    xvfb.kill("SIGTERM");
    await new Promise((resolve) => xvfb.once("exit", resolve));
  }
});

describe("XdotoolInjector", () => {
  it("moves the pointer to (1/4, 1/2) of a 640x480 screen, relatively, and clicks the wheel", async () => {
    const problems: string[] = [];
    const injector = await XdotoolInjector.start({ display, onProblem: (p) => problems.push(p) });
    try {
      expect(injector.screen).toEqual({ width: 640, height: 480 });
      injector.inject({ type: "mouse-absolute", x: Math.round(65535 / 4), y: Math.round(65535 / 2) });
      const at = await until("the pointer to move", () => {
        const p = pointer();
        return Math.abs(p.x - 160) <= 1 && Math.abs(p.y - 240) <= 1 ? p : undefined;
      });
      expect(Math.abs(at.x - 160)).toBeLessThanOrEqual(1);
      injector.inject({ type: "mouse-relative", dx: -10, dy: 5 });
      await until("the relative move", () => {
        const p = pointer();
        return p.x === at.x - 10 && p.y === at.y + 5 ? p : undefined;
      });
      injector.inject({ type: "wheel", dx: 0, dy: 240 });
      injector.inject({ type: "button", down: true, button: "back" });
      injector.inject({ type: "button", down: false, button: "back" });
      injector.inject({ type: "mouse-absolute", x: 65535, y: 0 });
      await until("the last move", () => {
        const p = pointer();
        return p.x === 639 && p.y === 0 ? p : undefined;
      });
      // Commands are applied in order, so the last move arriving means the wheel and button lines were read;
      // xdotool reports a refused line on stderr, which would show up here.
      expect(problems).toEqual([]);
      expect(injector.stats()).toEqual({
        injected: 6,
        dropped: { "unknown-key-code": 0, closed: 0, "injector-failed": 0 },
      });
    } finally {
      await injector.close();
    }
  });

  it("types into a focused window (xev sees the key presses) and counts unknown codes", async () => {
    // xev prints every event of its window; with no window manager, focus follows the pointer into it.
    const xev = spawn("xev", ["-geometry", "640x480+0+0", "-event", "keyboard"], {
      env: { ...process.env, DISPLAY: display },
      stdio: ["ignore", "pipe", "ignore"],
    });
    let seen = "";
    xev.stdout.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
    });
    const problems: string[] = [];
    const injector = await XdotoolInjector.start({ display, onProblem: (p) => problems.push(p) });
    try {
      await until("the xev window", () => {
        const search = spawnSync("xdotool", ["search", "--name", "Event Tester"], {
          env: { ...process.env, DISPLAY: display },
        });
        return search.status === 0 ? true : undefined;
      });
      injector.inject({ type: "mouse-absolute", x: 32768, y: 32768 });
      const keys: InputEvent[] = [];
      for (const code of ["ShiftLeft", "KeyW", "Digit7", "Enter", "ArrowUp", "F5"]) {
        keys.push(
          { type: "key", down: true, code, modifiers: 0 },
          { type: "key", down: false, code, modifiers: 0 },
        );
      }
      keys.push({ type: "key", down: true, code: "MediaTrackPrevious", modifiers: 0 });
      keys.push({ type: "key", down: true, code: "Lang9", modifiers: 0 });
      for (const event of keys) injector.inject(event);
      await until("xev to report F5", () => (/keysym 0x[0-9a-f]+, F5\)/.test(seen) ? true : undefined));
      for (const sym of ["Shift_L", "w", "7", "Return", "Up", "F5"]) {
        expect(seen).toMatch(new RegExp(`KeyPress event[\\s\\S]*keysym 0x[0-9a-f]+, ${sym}\\)`));
        expect(seen).toMatch(new RegExp(`KeyRelease event[\\s\\S]*keysym 0x[0-9a-f]+, ${sym}\\)`));
      }
      expect(injector.stats().dropped["unknown-key-code"]).toBe(2);
      expect(injector.stats().injected).toBe(13);
      expect(problems).toEqual([]);
    } finally {
      await injector.close();
      xev.kill("SIGTERM");
    }
  });

  it("drops events after close and maps only table codes", async () => {
    const injector = await XdotoolInjector.start({ display });
    await injector.close();
    injector.inject({ type: "mouse-relative", dx: 1, dy: 1 });
    expect(injector.stats().dropped.closed).toBe(1);
    expect(keysymForCode("KeyQ")).toBe("q");
    expect(keysymForCode("Numpad4")).toBe("KP_4");
    expect(keysymForCode("F24")).toBe("F24");
    expect(keysymForCode("toString")).toBeNull();
    expect(keysymForCode("KeyAA")).toBeNull();
  });

  it("fails to start on a display that does not exist", async () => {
    await expect(XdotoolInjector.start({ display: ":199" })).rejects.toThrow();
  });
});

describe("LoggingInjector", () => {
  it("writes one JSON line an event, naming its kind but never the key, button or position", async () => {
    const lines: string[] = [];
    const injector = new LoggingInjector(
      (line) => lines.push(line),
      () => 0,
    );
    const events: InputEvent[] = [
      { type: "key", down: true, code: "KeyA", modifiers: 1 },
      { type: "mouse-absolute", x: 1, y: 2 },
      { type: "wheel", dx: 0, dy: -120 },
    ];
    for (const event of events) injector.inject(event);
    await injector.close();
    injector.inject({ type: "button", down: true, button: "left" });
    expect(lines.map((line) => JSON.parse(line).input)).toEqual([
      { type: "key", down: true },
      { type: "mouse-absolute" },
      { type: "wheel" },
    ]);
    // Nothing of what was typed or where the pointer went reaches the log.
    for (const line of lines) expect(line).not.toMatch(/KeyA|"x"|"dy"|"code"|"modifiers"/);
    expect(lines.every((line) => line.endsWith("\n"))).toBe(true);
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
      ts: "1970-01-01T00:00:00.000Z",
      component: "input",
    });
    expect(injector.stats()).toEqual({
      injected: 3,
      dropped: { "unknown-key-code": 0, closed: 1, "injector-failed": 0 },
    });
  });
});
