import type { InputEvent } from "../../protocol/channels/input-events.ts";
import { emptyDrops, type InjectorStats, type InputInjector } from "./input-injector.ts";

/**
 * An injector that only records: one JSON line an event through `write`, for development and tests on machines
 * with no display.
 *
 * Logging keystrokes is sensitive: key codes in order are what was typed, passwords included. This injector is
 * for development only; a production host must use a real injector and never log key events.
 */
export class LoggingInjector implements InputInjector {
  readonly #write: (line: string) => void;
  readonly #nowMs: () => number;
  #injected = 0;
  readonly #dropped = emptyDrops();
  #closed = false;

  /** `write` receives whole lines (with the newline); `nowMs` is the clock (wall-clock milliseconds). */
  constructor(write: (line: string) => void, nowMs: () => number = Date.now) {
    this.#write = write;
    this.#nowMs = nowMs;
  }

  /** Writes `{ts, component: "input", event: "inject", input: {...}}`. */
  inject(event: InputEvent): void {
    if (this.#closed) {
      this.#dropped.closed++;
      return;
    }
    this.#injected++;
    const line = {
      ts: new Date(this.#nowMs()).toISOString(),
      component: "input",
      event: "inject",
      input: event,
    };
    this.#write(`${JSON.stringify(line)}\n`);
  }

  stats(): InjectorStats {
    return { injected: this.#injected, dropped: { ...this.#dropped } };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
