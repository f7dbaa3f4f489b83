import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { InputEvent } from "../../protocol/channels/input-events.ts";
import { type AccessUnit, encodeFrameMessage } from "./frame-message.ts";
import { MAX_INPUT_MESSAGE_BYTES, parseInputMessage } from "./input-message.ts";

/**
 * The local viewer (issue 5, "Client sinks"): one page on loopback that decodes the session's H.264 with
 * WebCodecs and sends keyboard and mouse back. The URL carries a random 128-bit token, so another local user
 * or a web page in the user's browser cannot watch the screen or type into it without having been shown the URL.
 *
 * One page at a time: a new page with the right token replaces the old one (closed with {@link CLOSE_REPLACED}),
 * so reloading the tab just works. The old connection cannot come back, and the token is the only credential.
 */
export const CLOSE_REPLACED = 4001;
/** Close code for a page that sent a binary frame; it only ever sends JSON text. */
export const CLOSE_UNSUPPORTED = 1003;

/** Options for {@link startViewer}. */
export interface ViewerOptions {
  /** A loopback address: 127.0.0.0/8 or ::1. Default 127.0.0.1. Anything else is refused. */
  readonly host?: string;
  /** Default 0: the OS picks a free port. */
  readonly port?: number;
  /** Input events a second, sustained (token bucket). Default 500: mouse moves at 240 Hz plus typing. */
  readonly inputPerSecond?: number;
  /** Input burst. Default 200. */
  readonly inputBurst?: number;
  /** Frames are dropped rather than queued past this many buffered bytes. Default 8 MiB. */
  readonly maxBufferedBytes?: number;
  /** Clock for the input rate limit, in ms. Default Date.now. */
  readonly now?: () => number;
}

/** Why a frame was not sent; each doubles as a stats key. */
export type FrameDropReason = "no-page" | "backpressure" | "waiting-keyframe" | "too-large";
/** Why an input message was ignored. */
export type InputDropReason = "invalid" | "rate";

/** Counters of a running viewer. */
export interface ViewerStats {
  readonly connected: boolean;
  readonly connections: number;
  readonly framesSent: number;
  readonly bytesSent: number;
  readonly framesDropped: Readonly<Record<FrameDropReason, number>>;
  readonly inputAccepted: number;
  readonly inputDropped: Readonly<Record<InputDropReason, number>>;
}

/** Events of a running viewer. */
export interface ViewerEvents {
  /** A checked input event from the page, ready for writeInputEvent. */
  input: (event: InputEvent) => void;
  /** A page connected (or replaced the previous one). Ask the encoder for a keyframe: frames wait for one. */
  connected: () => void;
  /** The page went away. */
  disconnected: () => void;
}

/** A running viewer, from {@link startViewer}. */
export interface Viewer {
  /** The page's URL, token included. Show it only to the user. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  /**
   * Queues one access unit for the page. Returns false when it was dropped; after a drop, delta frames are
   * dropped until the next keyframe (they could not be decoded), so ask the encoder for one.
   */
  sendFrame(unit: AccessUnit): boolean;
  on<E extends keyof ViewerEvents>(event: E, listener: ViewerEvents[E]): void;
  off<E extends keyof ViewerEvents>(event: E, listener: ViewerEvents[E]): void;
  /** A snapshot of the counters. */
  readonly stats: ViewerStats;
  /** Closes the page connection and the server. */
  close(): Promise<void>;
}

/** A viewer option that cannot work. */
export class ViewerConfigError extends Error {
  override readonly name = "ViewerConfigError";
}

/** One access unit bigger than this is refused: a 4K IDR at high quality stays well below it. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** WebSocket frames from the page larger than this close the connection (ws enforces it before parsing). */
const MAX_PAGE_MESSAGE = 1024;

const PAGE_DIR = new URL("./page/", import.meta.url);
const TOKEN_BYTES = 16;

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

function loadPage(): { html: StaticFile; script: StaticFile; styleHash: string } {
  const html = readFileSync(new URL("index.html", PAGE_DIR));
  const script = readFileSync(new URL("viewer.js", PAGE_DIR));
  // The page's one inline <style> is allowed by hash, so the CSP needs no 'unsafe-inline' at all.
  const style = /<style>([\s\S]*?)<\/style>/.exec(html.toString("utf8"))?.[1] ?? "";
  const styleHash = createHash("sha256").update(style, "utf8").digest("base64");
  return {
    html: { body: html, type: "text/html; charset=utf-8" },
    script: { body: script, type: "text/javascript; charset=utf-8" },
    styleHash,
  };
}

function isLoopback(host: string): boolean {
  if (host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/** Starts the viewer server on loopback. Rejects with {@link ViewerConfigError} for a non-loopback host. */
export async function startViewer(options: ViewerOptions = {}): Promise<Viewer> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopback(host)) {
    throw new ViewerConfigError(`viewer host must be a loopback address (127.0.0.1 or ::1), got "${host}"`);
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ViewerConfigError(`viewer port must be an integer 0..65535, got ${port}`);
  }
  const ratePerMs = (options.inputPerSecond ?? 500) / 1000;
  const burst = options.inputBurst ?? 200;
  const maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  const now = options.now ?? Date.now;
  const page = loadPage();
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  const tokenBytes = Buffer.from(token, "utf8");
  const prefix = `/v/${token}/`;

  const listeners: { [E in keyof ViewerEvents]: Set<ViewerEvents[E]> } = {
    input: new Set(),
    connected: new Set(),
    disconnected: new Set(),
  };
  const counters = {
    connections: 0,
    framesSent: 0,
    bytesSent: 0,
    inputAccepted: 0,
    framesDropped: { "no-page": 0, backpressure: 0, "waiting-keyframe": 0, "too-large": 0 },
    inputDropped: { invalid: 0, rate: 0 },
  };
  let current: WebSocket | undefined;
  let needKeyframe = true;
  let bucket = burst;
  let bucketAt = now();
  let origin = "";
  let authority = "";

  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'sha256-${page.styleHash}'`,
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  const baseHeaders = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    // The token is in the URL: never let it leak in a Referer.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": csp,
  };

  /** Constant-time check that `path` starts with the token prefix; returns the rest of the path. */
  function routeOf(url: string | undefined): string | undefined {
    const path = (url ?? "").split("?", 1)[0] ?? "";
    if (!path.startsWith("/v/")) return undefined;
    const end = path.indexOf("/", 3);
    const candidate = Buffer.from(path.slice(3, end < 0 ? path.length : end), "utf8");
    // Compare equal lengths only; the token length is public (22 base64url characters).
    const same = candidate.length === tokenBytes.length && timingSafeEqual(candidate, tokenBytes);
    if (!same || end < 0) return undefined;
    return path.slice(end + 1);
  }

  /** A DNS-rebinding page would send its own Host name; only our literal address is accepted. */
  const hostOk = (req: IncomingMessage) => req.headers.host === authority;

  function notFound(res: ServerResponse): void {
    res.writeHead(404, { ...baseHeaders, "Content-Type": "text/plain; charset=utf-8" });
    res.end("not found\n");
  }

  const server = createServer((req, res) => {
    const route = hostOk(req) ? routeOf(req.url) : undefined;
    const file = route === "" ? page.html : route === "viewer.js" ? page.script : undefined;
    if (file === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
      notFound(res);
      return;
    }
    res.writeHead(200, { ...baseHeaders, "Content-Type": file.type, "Content-Length": file.body.length });
    res.end(req.method === "HEAD" ? undefined : file.body);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAGE_MESSAGE, perMessageDeflate: false });

  function refuseUpgrade(socket: Duplex): void {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  }

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Browsers always send Origin on WebSocket; a page from any other origin is refused like a wrong token.
    if (!hostOk(req) || routeOf(req.url) !== "ws" || req.headers.origin !== origin) {
      refuseUpgrade(socket);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws));
  });

  function emit<E extends keyof ViewerEvents>(event: E, ...args: Parameters<ViewerEvents[E]>): void {
    for (const listener of listeners[event])
      (listener as (...a: Parameters<ViewerEvents[E]>) => void)(...args);
  }

  function takeToken(): boolean {
    const t = now();
    bucket = Math.min(burst, bucket + (t - bucketAt) * ratePerMs);
    bucketAt = t;
    if (bucket < 1) return false;
    bucket -= 1;
    return true;
  }

  function accept(ws: WebSocket): void {
    const previous = current;
    current = ws;
    counters.connections += 1;
    needKeyframe = true;
    if (previous !== undefined) previous.close(CLOSE_REPLACED, "replaced by a newer page");
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        ws.close(CLOSE_UNSUPPORTED, "text only");
        return;
      }
      const text = data.toString();
      const event = text.length <= MAX_INPUT_MESSAGE_BYTES ? parseInputMessage(text) : undefined;
      if (event === undefined) {
        counters.inputDropped.invalid += 1;
        return;
      }
      if (!takeToken()) {
        counters.inputDropped.rate += 1;
        return;
      }
      counters.inputAccepted += 1;
      emit("input", event);
    });
    ws.on("close", () => {
      if (current !== ws) return;
      current = undefined;
      emit("disconnected");
    });
    ws.on("error", () => {
      // ws closes the socket after an error (e.g. an oversized frame); "close" does the bookkeeping.
    });
    emit("connected");
  }

  function drop(reason: FrameDropReason): false {
    counters.framesDropped[reason] += 1;
    return false;
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("viewer server has no TCP address");
  authority = host.includes(":") ? `[${host}]:${address.port}` : `${host}:${address.port}`;
  origin = `http://${authority}`;

  return {
    url: `${origin}${prefix}`,
    port: address.port,
    sendFrame(unit: AccessUnit): boolean {
      const ws = current;
      if (ws === undefined || ws.readyState !== ws.OPEN) return drop("no-page");
      if (unit.data.length > MAX_FRAME_BYTES) {
        needKeyframe = true;
        return drop("too-large");
      }
      if (needKeyframe && !unit.keyframe) return drop("waiting-keyframe");
      if (ws.bufferedAmount > maxBuffered) {
        needKeyframe = true;
        return drop("backpressure");
      }
      needKeyframe = false;
      const message = encodeFrameMessage(unit);
      ws.send(message, { binary: true });
      counters.framesSent += 1;
      counters.bytesSent += message.length;
      return true;
    },
    on(event, listener) {
      listeners[event].add(listener);
    },
    off(event, listener) {
      listeners[event].delete(listener);
    },
    get stats(): ViewerStats {
      return {
        connected: current !== undefined,
        connections: counters.connections,
        framesSent: counters.framesSent,
        bytesSent: counters.bytesSent,
        framesDropped: { ...counters.framesDropped },
        inputAccepted: counters.inputAccepted,
        inputDropped: { ...counters.inputDropped },
      };
    },
    async close(): Promise<void> {
      for (const client of wss.clients) client.terminate();
      current = undefined;
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
