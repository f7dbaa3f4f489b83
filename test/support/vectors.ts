import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

/** The project root (this file is test/support/vectors.ts). */
export const ROOT = path.resolve(import.meta.dirname, "../..");

/**
 * Reads a third-party vector file from ../shared/vectors (beside the checkout, as CI lays it out).
 * A missing file fails loudly: these vectors are required, never skipped.
 */
export function readSharedVector(relative: string): unknown {
  const file = path.resolve(ROOT, "../shared/vectors", relative);
  if (!existsSync(file)) {
    throw new Error(
      `missing test vectors: ${file}. Check out the shared/ folder beside the repository (see README).`,
    );
  }
  return JSON.parse(readFileSync(file, "utf8"));
}

export function sharedVectorPath(relative: string): string {
  return path.resolve(ROOT, "../shared/vectors", relative);
}
