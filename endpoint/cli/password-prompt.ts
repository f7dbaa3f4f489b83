import type { CliIo } from "./cli-context.ts";
import { UsageError } from "./cli-context.ts";

/**
 * The login password: `WAVRY_PASSWORD` (for scripts), else a prompt on a terminal with echo off. It is never
 * written anywhere; without a terminal and without the variable the command stops instead of reading a visible
 * line.
 */
export async function readPassword(io: CliIo): Promise<string> {
  const fromEnv = io.env.WAVRY_PASSWORD;
  if (typeof fromEnv === "string" && fromEnv !== "") return fromEnv;
  const stdin = io.stdin;
  if (!stdin.isTTY) {
    throw new UsageError("no password: set WAVRY_PASSWORD or run wavry login in a terminal");
  }
  io.err("Password: ");
  return await new Promise<string>((resolve, reject) => {
    let typed = "";
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (error: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      io.err("\n");
      if (error === null) resolve(typed);
      else reject(error);
    };
    // Raw mode: each keystroke arrives as typed and nothing is echoed; Enter, Ctrl-C, Ctrl-D and backspace are
    // handled here because the terminal no longer does.
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(null);
        if (ch === "\u0003") return done(new UsageError("cancelled"));
        if (ch === "\u0004") return done(typed === "" ? new UsageError("cancelled") : null);
        if (ch === "\u007f" || ch === "\b") typed = [...typed].slice(0, -1).join("");
        else if (ch >= " ") typed += ch;
      }
    };
    stdin.on("data", onData);
  });
}
