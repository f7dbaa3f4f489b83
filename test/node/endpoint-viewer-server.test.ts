import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { FRAME_HEADER_LEN } from "../../endpoint/viewer/frame-message.ts";
import { parseInputMessage } from "../../endpoint/viewer/input-message.ts";
import { CLOSE_REPLACED, startViewer, type Viewer } from "../../endpoint/viewer/viewer-server.ts";
import type { InputEvent } from "../../protocol/channels/input-events.ts";

const viewers: Viewer[] = [];
afterEach(async () => {
  for (const viewer of viewers.splice(0)) await viewer.close();
});

async function start(options: Parameters<typeof startViewer>[0] = {}): Promise<Viewer> {
  const viewer = await startViewer(options);
  viewers.push(viewer);
  return viewer;
}

function wsUrl(viewer: Viewer): string {
  return `${viewer.url.replace("http:", "ws:")}ws`;
}

/** Opens a page-like connection (browsers always send Origin) and waits for it to open. */
async function connect(viewer: Viewer, url = wsUrl(viewer)): Promise<WebSocket> {
  const ws = new WebSocket(url, { origin: new URL(viewer.url).origin });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return ws;
}

const unexpected = (url: string, origin?: string) =>
  new Promise<number>((resolve) => {
    const ws = new WebSocket(url, origin === undefined ? {} : { origin });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => resolve(101));
    ws.once("error", () => resolve(-1));
  });

const tick = (ms = 50) => new Promise((resolve) => setTimeout(resolve, ms));

describe("endpoint viewer server", () => {
  it("parses exactly the documented input messages", () => {
    expect(parseInputMessage('{"t":"key","down":true,"code":"ShiftLeft","mods":1}')).toEqual({
      type: "key",
      down: true,
      code: "ShiftLeft",
      modifiers: 1,
    });
    expect(parseInputMessage('{"t":"abs","x":1,"y":0.5}')).toEqual({
      type: "mouse-absolute",
      x: 65535,
      y: 32768,
    });
    expect(parseInputMessage('{"t":"rel","dx":-32768,"dy":32767}')).toEqual({
      type: "mouse-relative",
      dx: -32768,
      dy: 32767,
    });
    expect(parseInputMessage('{"t":"button","down":false,"button":4}')).toEqual({
      type: "button",
      down: false,
      button: "forward",
    });
    expect(parseInputMessage('{"t":"wheel","dx":0,"dy":-120}')).toEqual({ type: "wheel", dx: 0, dy: -120 });
    for (const bad of [
      "",
      "null",
      "[]",
      '{"t":"key","down":true,"code":"a","mods":0}',
      '{"t":"key","down":true,"code":"KeyA","mods":64}',
      '{"t":"key","down":1,"code":"KeyA","mods":0}',
      '{"t":"key","down":true,"code":"KeyA","mods":0,"extra":1}',
      '{"t":"abs","x":1.01,"y":0}',
      '{"t":"abs","x":-0.1,"y":0}',
      '{"t":"abs","x":"0.5","y":0}',
      '{"t":"rel","dx":32768,"dy":0}',
      '{"t":"rel","dx":1.5,"dy":0}',
      '{"t":"button","down":true,"button":5}',
      '{"t":"button","down":true,"button":-1}',
      '{"t":"wheel","dx":0}',
      '{"t":"paste","text":"rm -rf"}',
      `{"t":"key","down":true,"code":"Key${"A".repeat(300)}","mods":0}`,
    ]) {
      expect(parseInputMessage(bad), bad).toBeUndefined();
    }
  });

  it("refuses a wrong token or a foreign Origin on the WebSocket", async () => {
    const viewer = await start();
    const origin = new URL(viewer.url).origin;
    const wrong = wsUrl(viewer).replace(/\/v\/[^/]+\//, `/v/${"A".repeat(22)}/`);
    expect(await unexpected(wrong, origin)).toBe(404);
    expect(await unexpected(wsUrl(viewer), "http://evil.example")).toBe(404);
    expect(await unexpected(wsUrl(viewer))).toBe(404);
    expect(await unexpected(wsUrl(viewer), origin)).toBe(101);
  });

  it("sends frames only from a keyframe on, with the documented header", async () => {
    const viewer = await start();
    const unit = { data: new Uint8Array([0, 0, 0, 1, 9, 0xf0]), timestampUs: 33_333 };
    expect(viewer.sendFrame({ ...unit, keyframe: true })).toBe(false);
    const ws = await connect(viewer);
    const received: Buffer[] = [];
    ws.on("message", (data: Buffer) => received.push(data));
    expect(viewer.sendFrame({ ...unit, keyframe: false })).toBe(false);
    expect(viewer.sendFrame({ ...unit, keyframe: true })).toBe(true);
    expect(viewer.sendFrame({ ...unit, keyframe: false })).toBe(true);
    await tick();
    expect(received.length).toBe(2);
    const first = received[0] ?? Buffer.alloc(0);
    expect(first.length).toBe(FRAME_HEADER_LEN + unit.data.length);
    expect(first.readUInt8(0)).toBe(1);
    expect(first.readDoubleLE(1)).toBe(33_333);
    expect([...first.subarray(FRAME_HEADER_LEN)]).toEqual([...unit.data]);
    expect(received[1]?.readUInt8(0)).toBe(0);
    expect(viewer.stats.framesDropped).toEqual({
      "no-page": 1,
      backpressure: 0,
      "waiting-keyframe": 1,
      "too-large": 0,
    });
    ws.close();
  });

  it("emits valid input, counts invalid and over-rate input, and closes on binary", async () => {
    let clock = 0;
    const viewer = await start({ inputPerSecond: 10, inputBurst: 3, now: () => clock });
    const events: InputEvent[] = [];
    viewer.on("input", (event) => events.push(event));
    const ws = await connect(viewer);
    ws.send('{"t":"key","down":true,"code":"KeyA","mods":0}');
    ws.send('{"t":"key","down":true,"code":"not a key","mods":0}');
    for (let i = 0; i < 4; i++) ws.send('{"t":"wheel","dx":0,"dy":1}');
    await tick();
    expect(events.length).toBe(3);
    expect(viewer.stats.inputDropped).toEqual({ invalid: 1, rate: 2 });
    clock += 1_000;
    ws.send('{"t":"wheel","dx":0,"dy":2}');
    await tick();
    expect(events.at(-1)).toEqual({ type: "wheel", dx: 0, dy: 2 });

    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.send(new Uint8Array([1, 2, 3]));
    expect(await closed).toBe(1003);
  });

  it("a second page replaces the first", async () => {
    const viewer = await start();
    let connects = 0;
    viewer.on("connected", () => {
      connects += 1;
    });
    const first = await connect(viewer);
    const firstClosed = new Promise<number>((resolve) => first.once("close", (code) => resolve(code)));
    const second = await connect(viewer);
    expect(await firstClosed).toBe(CLOSE_REPLACED);
    expect(connects).toBe(2);
    expect(viewer.stats.connected).toBe(true);
    const received: Buffer[] = [];
    second.on("message", (data: Buffer) => received.push(data));
    expect(viewer.sendFrame({ data: new Uint8Array([0, 0, 1, 0x65]), keyframe: true, timestampUs: 0 })).toBe(
      true,
    );
    await tick();
    expect(received.length).toBe(1);
    second.close();
  });
});
