/**
 * The host's video sources (issue 5, "Media and input"): each produces H.264 access units in Annex B form,
 * one picture each, ready for the fragmenter (protocol/media/fragmenter.ts).
 */

/** The sources a host can be started with. */
export type SourceKind = "test" | "x11" | "clip";

/** One encoded picture as the fragmenter wants it. */
export interface EncodedUnit {
  /** Annex B bytes of one access unit (start codes included); owned by the receiver. */
  readonly data: Uint8Array;
  /** Decoding can start here: an IDR with its SPS and PPS. */
  readonly keyframe: boolean;
  /** When the unit left the encoder, in milliseconds of the source's clock (a u32; only differences matter). */
  readonly timestampMs: number;
}

/** Receives units in stream order. Called synchronously from the source; must not throw. */
export type UnitHandler = (unit: EncodedUnit) => void;

/** Receives one line per notable event (start, restart, fallback, exit); never payloads. */
export type MediaLog = (level: "info" | "warn" | "error", event: string, detail: string) => void;

/** Counters a source keeps (metrics and tests). */
export interface SourceStats {
  units: number;
  keyframes: number;
  bytes: number;
  /** Encoder processes started (1 + restarts); 0 for the clip. */
  encoderStarts: number;
  /** Units the Annex B parser dropped (oversized, no picture, garbage). */
  dropped: number;
}

/** A running or stopped video source. Units flow from `start` until `stop`. */
export interface VideoSource {
  readonly kind: SourceKind;
  readonly stats: Readonly<SourceStats>;
  /** The encoder's target in kbit/s (the clip reports the rate it was made at). */
  readonly bitrateKbps: number;
  /** Starts producing; the first unit delivered is a keyframe. Throws if already started. */
  start(onUnit: UnitHandler): void;
  /** Stops producing and ends any child process; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
  /** Asks for a keyframe soon (after loss the receiver cannot repair). */
  requestKeyframe(): void;
  /** Applies a congestion-control target; encoders restart so the next unit is a keyframe. */
  setBitrate(kbps: number): void;
}

/** Milliseconds on a monotonic clock, wrapped to a u32 as the fragmenter's `timestampMs` requires. */
export type MediaClock = () => number;

/** The default clock: `performance.now()` in whole milliseconds, modulo 2^32. */
export const monotonicMs: MediaClock = () => Math.floor(performance.now()) % 0x1_0000_0000;

/** Does nothing (tests and callers with their own logging). */
export const silentMediaLog: MediaLog = () => undefined;

/** Fresh zeroed counters. */
export function emptySourceStats(): SourceStats {
  return { units: 0, keyframes: 0, bytes: 0, encoderStarts: 0, dropped: 0 };
}
