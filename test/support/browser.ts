import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium; playwright-core never downloads a browser here. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Flags known to work on these machines (.library/env/machines/node.md): without the background-networking
 * flags chromium keeps dialling Google hosts the closed network refuses. Playwright gives every launch a fresh
 * empty profile directory, so no --user-data-dir is needed.
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

/** Launches headless chromium, or throws saying how to install it: a missing browser must fail, not skip. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: install it with "sudo apt-get install -y chromium"`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
}
