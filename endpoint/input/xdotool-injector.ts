import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import {
  type InputEvent,
  MAX_ABSOLUTE_COORD,
  type MouseButton,
} from "../../protocol/channels/input-events.ts";
import { emptyDrops, type InjectorStats, type InputInjector } from "./input-injector.ts";
import { keysymForCode } from "./x11-keysyms.ts";

const run = promisify(execFile);

/** X11 button numbers: 1-3 left, middle, right; 8 and 9 back and forward (4-7 are the wheel). */
const X_BUTTON: Readonly<Record<MouseButton, number>> = { left: 1, middle: 2, right: 3, back: 8, forward: 9 };
/** Wheel buttons: 4 up, 5 down, 6 left, 7 right. */
const WHEEL = { up: 4, down: 5, left: 6, right: 7 } as const;
/** DOM pixel deltas per wheel click: browsers report about 100 px for one notch of a mouse wheel. */
const PIXELS_PER_CLICK = 100;
/** Clicks for one wheel event at most, so a hostile delta (32767) cannot queue hundreds of clicks. */
const MAX_CLICKS = 10;

/** Where to inject. */
export interface XdotoolOptions {
  /** The X display, e.g. ":0". */
  readonly display: string;
  /** The xdotool binary (default "xdotool" on PATH). */
  readonly xdotool?: string;
  /** Problems (xdotool's stderr, its exit), one call a line; never event contents. */
  readonly onProblem?: (problem: string) => void;
}

/**
 * Injects into an X11 display through one long-lived `xdotool -` reading commands from stdin (one a line,
 * applied as they arrive), so an event costs a pipe write instead of a process start. Every argument written is
 * a number or a keysym from a fixed table, so nothing from the peer can form another xdotool command; the
 * process itself is spawned with an argument array, never through a shell.
 */
export class XdotoolInjector implements InputInjector {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #width: number;
  readonly #height: number;
  #injected = 0;
  readonly #dropped = emptyDrops();
  #closed = false;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcessWithoutNullStreams, width: number, height: number) {
    this.#child = child;
    this.#width = width;
    this.#height = height;
    this.#exited = new Promise((resolve) => child.once("close", () => resolve()));
  }

  /** Queries the screen size once, then starts the xdotool process. Rejects when xdotool or the display fails. */
  static async start(options: XdotoolOptions): Promise<XdotoolInjector> {
    const binary = options.xdotool ?? "xdotool";
    const env = { ...process.env, DISPLAY: options.display };
    const { stdout } = await run(binary, ["getdisplaygeometry"], { env, timeout: 5000 });
    const match = /^(\d{1,5}) (\d{1,5})\s*$/.exec(stdout);
    const width = Number(match?.[1] ?? 0);
    const height = Number(match?.[2] ?? 0);
    if (width < 1 || height < 1)
      throw new Error(`xdotool getdisplaygeometry gave no size for ${options.display}`);
    const child = spawn(binary, ["-"], { env, stdio: ["pipe", "pipe", "pipe"] });
    const problem = options.onProblem ?? (() => undefined);
    child.stdout.resume();
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      for (const line of text.split("\n"))
        if (line.trim() !== "") problem(`xdotool: ${line.trim().slice(0, 200)}`);
    });
    // EPIPE after xdotool died surfaces here; the exit handler below already reports it.
    child.stdin.on("error", () => undefined);
    const injector = new XdotoolInjector(child, width, height);
    child.once("exit", (code, signal) => {
      if (!injector.#closed) problem(`xdotool exited (${code ?? signal ?? "unknown"})`);
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
    return injector;
  }

  /** The screen size found at start. */
  get screen(): { readonly width: number; readonly height: number } {
    return { width: this.#width, height: this.#height };
  }

  inject(event: InputEvent): void {
    if (this.#closed) {
      this.#dropped.closed++;
      return;
    }
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
      this.#dropped["injector-failed"]++;
      return;
    }
    const lines = this.#commands(event);
    if (lines === null) {
      this.#dropped["unknown-key-code"]++;
      return;
    }
    this.#injected++;
    this.#child.stdin.write(`${lines.join("\n")}\n`);
  }

  /** The xdotool lines for `event`, or null for a key code not in the table. */
  #commands(event: InputEvent): string[] | null {
    switch (event.type) {
      case "key": {
        const keysym = keysymForCode(event.code);
        return keysym === null ? null : [`${event.down ? "keydown" : "keyup"} ${keysym}`];
      }
      case "mouse-absolute": {
        // 0 is the first pixel and 65535 the last, hence (size - 1).
        const x = Math.round(
          (clamp(event.x, 0, MAX_ABSOLUTE_COORD) * (this.#width - 1)) / MAX_ABSOLUTE_COORD,
        );
        const y = Math.round(
          (clamp(event.y, 0, MAX_ABSOLUTE_COORD) * (this.#height - 1)) / MAX_ABSOLUTE_COORD,
        );
        return [`mousemove ${x} ${y}`];
      }
      case "mouse-relative":
        // "--" ends the options so a negative delta is not read as a flag.
        return [`mousemove_relative -- ${int16(event.dx)} ${int16(event.dy)}`];
      case "button":
        return [`${event.down ? "mousedown" : "mouseup"} ${X_BUTTON[event.button]}`];
      case "wheel":
        return [
          ...wheelClicks(event.dy, WHEEL.down, WHEEL.up),
          ...wheelClicks(event.dx, WHEEL.right, WHEEL.left),
        ];
      default:
        return assertNever(event);
    }
  }

  stats(): InjectorStats {
    return { injected: this.#injected, dropped: { ...this.#dropped } };
  }

  /** Ends xdotool's input and waits for it to exit (killed after 2 s). */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#child.stdin.end();
    }
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 2000);
    await this.#exited;
    clearTimeout(timer);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Number.isFinite(value) ? Math.min(max, Math.max(min, Math.trunc(value))) : min;
}

const int16 = (value: number) => clamp(value, -0x8000, 0x7fff);

function wheelClicks(delta: number, positive: number, negative: number): string[] {
  const d = int16(delta);
  if (d === 0) return [];
  const clicks = Math.min(MAX_CLICKS, Math.max(1, Math.round(Math.abs(d) / PIXELS_PER_CLICK)));
  return Array.from({ length: clicks }, () => `click ${d > 0 ? positive : negative}`);
}

function assertNever(value: never): never {
  throw new Error(`unknown input event ${String(value)}`);
}
