import type { InputEvent } from "../../protocol/channels/input-events.ts";
import { emptyDrops, type InjectorStats, type InputInjector } from "./input-injector.ts";

/**
 * An injector that only records: one JSON line an event through `write`, for development and tests on machines
 * with no display.
 *
 * Input is session payload: key codes in order are what was typed, passwords included, and pointer positions show
 * what was clicked. So a line names only the kind of event (and whether a key or button went down or up), never the
 * key code, the button, the position or the distance.
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

  /** Writes `{ts, component: "input", event: "inject", input: {type, down?}}`. */
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
      input: "down" in event ? { type: event.type, down: event.down } : { type: event.type },
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
