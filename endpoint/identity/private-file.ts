import { randomBytes } from "node:crypto";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import path from "node:path";

/**
 * Files that hold secrets or trust decisions (identity keys, the trust store, the session): created with mode 0600
 * in a 0700 directory, and refused when group or others can read them or another user owns them, the way ssh
 * treats `~/.ssh/id_*`. Checks run on the open descriptor, so the file checked is the file read.
 */

/** Why a private file was refused. */
export type PrivateFileErrorCode =
  | "insecure-permissions"
  | "wrong-owner"
  | "unreadable"
  | "malformed"
  | "exists";

/** A private file the endpoint must not use; the message says how to fix it and never quotes the content. */
export class PrivateFileError extends Error {
  override readonly name = "PrivateFileError";
  constructor(
    readonly code: PrivateFileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Node's error code of a failed system call, or "error". */
export function errnoOf(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : "error";
}

/** Creates `dir` (and parents) with mode 0700 when missing. An existing directory is left as it is. */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new PrivateFileError("unreadable", `cannot create ${dir} (${errnoOf(error)})`);
  }
}

/**
 * Reads a private file as UTF-8, or returns null when it does not exist. Refuses a file readable or writable by
 * group or others, owned by another user, not a regular file, or larger than `maxBytes`.
 */
export function readPrivateFile(file: string, maxBytes: number): string | null {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return null;
    throw new PrivateFileError("unreadable", `cannot open ${file} (${errnoOf(error)})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new PrivateFileError("unreadable", `${file} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
      throw new PrivateFileError(
        "insecure-permissions",
        `${file} is accessible by group or others (mode ${mode}); run chmod 600 ${file} ` +
          "(if others could read it, treat its secrets as leaked)",
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new PrivateFileError(
        "wrong-owner",
        `${file} belongs to uid ${stat.uid}, not to you (uid ${uid})`,
      );
    }
    if (stat.size > maxBytes) throw new PrivateFileError("malformed", `${file} is too large`);
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, text: string): void {
  writeSync(fd, text);
  // The data must be on disk before anyone relies on it (a key lost to a crash is a new device).
  fsyncSync(fd);
}

/**
 * Creates `file` with mode 0600 and writes `text`; fails with code "exists" when the file is already there
 * ("wx": a racing second process never overwrites the first one's file).
 */
export function writeNewPrivateFile(file: string, text: string): void {
  ensurePrivateDir(path.dirname(file));
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (error) {
    if (errnoOf(error) === "EEXIST") throw new PrivateFileError("exists", `${file} already exists`);
    throw new PrivateFileError("unreadable", `cannot create ${file} (${errnoOf(error)})`);
  }
  try {
    writeAll(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `file` atomically: a fresh 0600 file beside it, then rename, so a reader sees the old or the new
 * content and never half of one, and the mode is never briefly wider than 0600.
 */
export function replacePrivateFile(file: string, text: string): void {
  ensurePrivateDir(path.dirname(file));
  const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  let fd: number;
  try {
    fd = openSync(temp, "wx", 0o600);
  } catch (error) {
    throw new PrivateFileError("unreadable", `cannot write ${file} (${errnoOf(error)})`);
  }
  try {
    writeAll(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new PrivateFileError("unreadable", `cannot write ${file} (${errnoOf(error)})`);
  }
}

/** Removes a private file; a missing file is not an error. */
export function removePrivateFile(file: string): void {
  rmSync(file, { force: true });
}
