import { type FileHandle, open } from "node:fs/promises";

/** A parsed `file:PATH` sink argument. */
export interface FileSinkSpec {
  readonly kind: "file";
  readonly path: string;
}

/** Parses `file:PATH`; returns undefined for anything else (the caller names the flag in its error). */
export function parseFileSinkSpec(spec: string): FileSinkSpec | undefined {
  if (!spec.startsWith("file:")) return undefined;
  const path = spec.slice("file:".length);
  return path === "" ? undefined : { kind: "file", path };
}

/** Counters of a file sink. */
export interface FileSinkStats {
  written: number;
  bytes: number;
  /** Units skipped before the first keyframe (a decoder could not use them). */
  skippedBeforeKeyframe: number;
}

/**
 * Writes received access units to a raw `.h264` file (Annex B, playable with `ffplay`/`ffmpeg -i`). The file
 * is created 0644: it holds the decrypted video, which is the user's own screen or test pattern and no more
 * sensitive than a screenshot, and players run by the user must read it; use a private directory if it is.
 * Writing starts at the first keyframe so the file always decodes. Writes are queued in order and never
 * block the caller; `close` waits for them, syncs and closes.
 */
export class FileSink {
  readonly path: string;
  readonly stats: FileSinkStats = { written: 0, bytes: 0, skippedBeforeKeyframe: 0 };
  readonly #handle: FileHandle;
  #queue: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #closed = false;
  #started = false;

  private constructor(path: string, handle: FileHandle) {
    this.path = path;
    this.#handle = handle;
  }

  /** Creates (or truncates) the file. */
  static async open(path: string): Promise<FileSink> {
    return new FileSink(path, await open(path, "w", 0o644));
  }

  /** Queues one access unit; the sink keeps a reference, so the caller must not reuse `data`. */
  write(unit: { readonly data: Uint8Array; readonly keyframe: boolean }): void {
    if (this.#closed) throw new Error(`file sink ${this.path} is closed`);
    if (!this.#started && !unit.keyframe) {
      this.stats.skippedBeforeKeyframe++;
      return;
    }
    this.#started = true;
    this.stats.written++;
    this.stats.bytes += unit.data.length;
    this.#queue = this.#queue.then(async () => {
      if (this.#error !== undefined) return;
      try {
        await this.#handle.write(unit.data);
      } catch (error) {
        this.#error = error instanceof Error ? error : new Error(String(error));
      }
    });
  }

  /** Waits for queued writes, flushes to disk and closes; rejects with the first write error, if any. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    try {
      if (this.#error === undefined) await this.#handle.sync();
    } finally {
      await this.#handle.close();
    }
    if (this.#error !== undefined) throw this.#error;
  }
}
