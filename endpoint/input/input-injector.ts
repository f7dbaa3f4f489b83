import type { InputEvent } from "../../protocol/channels/input-events.ts";

/**
 * The host side of the input channel: something that turns decoded input events into input on this machine.
 * Injection never throws for a bad event (the peer is authenticated but its input is still untrusted): what an
 * injector cannot map is counted under a named reason and dropped.
 */
export interface InputInjector {
  /** Applies one event. Never throws for an event the injector cannot map; it counts it instead. */
  inject(event: InputEvent): void;
  /** Counters so far (a copy). */
  stats(): InjectorStats;
  /** Releases the injector's resources (child processes). Idempotent. */
  close(): Promise<void>;
}

/** Why an event was dropped; doubles as a metric label. */
export type DropReason = "unknown-key-code" | "closed" | "injector-failed";

/** What an injector did so far. */
export interface InjectorStats {
  readonly injected: number;
  readonly dropped: Readonly<Record<DropReason, number>>;
}

/** A fresh, zeroed drop table. */
export function emptyDrops(): Record<DropReason, number> {
  return { "unknown-key-code": 0, closed: 0, "injector-failed": 0 };
}
