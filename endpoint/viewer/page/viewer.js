// Wavry viewer page: decodes the session's H.264 with WebCodecs into a canvas and sends keyboard and mouse
// back to the daemon. Plain ES module with no dependencies, served as-is (no build step). The message layouts
// are defined in ../frame-message.ts and ../input-message.ts; keep them in step.

const FRAME_HEADER_LEN = 9;
const FLAG_KEYFRAME = 0x01;
/** Constrained Baseline 3.0; replaced by the stream's own profile and level once an SPS is seen. */
const DEFAULT_CODEC = "avc1.42E01E";
/** Past this many chunks waiting in the decoder, drop until the next keyframe rather than fall behind. */
const MAX_DECODE_QUEUE = 30;
const KEY_CODE_PATTERN = /^[A-Z][A-Za-z0-9]{1,31}$/;
const INT16_MAX = 0x7fff;

const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById("screen"));
const overlay = /** @type {HTMLElement} */ (document.getElementById("stats"));
const context = canvas.getContext("2d", { alpha: false });

/** Read by the overlay and by tests (window.__wavryStats). */
const stats = {
  state: "starting",
  codec: DEFAULT_CODEC,
  codecSupported: /** @type {boolean | null} */ (null),
  framesReceived: 0,
  framesDecoded: 0,
  dropped: 0,
  fps: 0,
  width: 0,
  height: 0,
  inputSent: 0,
  lastError: "",
};
Object.defineProperty(window, "__wavryStats", { value: stats });

/** @type {VideoDecoder | undefined} */
let decoder;
let waitingForKeyframe = true;
let fpsCount = 0;
let fpsSince = performance.now();

function fail(message) {
  stats.lastError = message;
}

/** Finds the first SPS (NAL type 7) and names the codec after its profile, constraints and level bytes. */
function codecFromAnnexB(bytes) {
  for (let i = 0; i + 7 < bytes.length; i++) {
    if (bytes[i] !== 0 || bytes[i + 1] !== 0 || bytes[i + 2] !== 1) continue;
    if ((bytes[i + 3] & 0x1f) !== 7) continue;
    const hex = (b) => b.toString(16).padStart(2, "0").toUpperCase();
    return `avc1.${hex(bytes[i + 4])}${hex(bytes[i + 5])}${hex(bytes[i + 6])}`;
  }
  return DEFAULT_CODEC;
}

function onFrame(frame) {
  if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
    canvas.width = frame.displayWidth;
    canvas.height = frame.displayHeight;
    stats.width = frame.displayWidth;
    stats.height = frame.displayHeight;
  }
  context?.drawImage(frame, 0, 0, canvas.width, canvas.height);
  frame.close();
  stats.framesDecoded += 1;
  fpsCount += 1;
}

function resetDecoder(message) {
  fail(message);
  if (decoder !== undefined && decoder.state !== "closed") decoder.close();
  decoder = undefined;
  waitingForKeyframe = true;
}

function createDecoder(codec) {
  const created = new VideoDecoder({
    output: onFrame,
    error: (error) => resetDecoder(`decoder: ${error.message}`),
  });
  // No `description`: WebCodecs then expects Annex B (start codes, in-band SPS/PPS), which is what we carry.
  created.configure({ codec, optimizeForLatency: true, hardwareAcceleration: "no-preference" });
  stats.codec = codec;
  return created;
}

function onFrameMessage(buffer) {
  stats.framesReceived += 1;
  if (buffer.byteLength <= FRAME_HEADER_LEN) {
    fail("short frame message");
    return;
  }
  const view = new DataView(buffer);
  const keyframe = (view.getUint8(0) & FLAG_KEYFRAME) !== 0;
  const timestamp = view.getFloat64(1, true);
  const data = new Uint8Array(buffer, FRAME_HEADER_LEN);
  if (!stats.codecSupported) {
    stats.dropped += 1;
    return;
  }
  if (waitingForKeyframe && !keyframe) {
    stats.dropped += 1;
    return;
  }
  if (decoder !== undefined && decoder.decodeQueueSize > MAX_DECODE_QUEUE && !keyframe) {
    // A delta frame dropped breaks every frame after it, so wait for the next keyframe.
    waitingForKeyframe = true;
    stats.dropped += 1;
    return;
  }
  try {
    if (decoder === undefined) decoder = createDecoder(codecFromAnnexB(data));
    decoder.decode(new EncodedVideoChunk({ type: keyframe ? "key" : "delta", timestamp, data }));
    waitingForKeyframe = false;
  } catch (error) {
    resetDecoder(`decode: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function renderStats() {
  const t = performance.now();
  if (t - fpsSince >= 1000) {
    stats.fps = Math.round((fpsCount * 1000) / (t - fpsSince));
    fpsCount = 0;
    fpsSince = t;
  }
  overlay.textContent = [
    `${stats.state}  ${stats.codec}  ${stats.width}x${stats.height}`,
    `decoded ${stats.framesDecoded}  fps ${stats.fps}  dropped ${stats.dropped}`,
    stats.lastError === "" ? "" : `error: ${stats.lastError}`,
  ]
    .filter((line) => line !== "")
    .join("\n");
}

// Input -----------------------------------------------------------------------------------------------------

/** @type {WebSocket | undefined} */
let socket;
/** @type {{ x: number, y: number } | undefined} */
let pendingMove;
const heldKeys = new Set();
const heldButtons = new Set();

function send(message) {
  if (socket === undefined || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify(message));
  stats.inputSent += 1;
}

/** Sends the coalesced pointer position first, so a click lands where the pointer was last seen. */
function flushMove() {
  if (pendingMove === undefined) return;
  send({ t: "abs", x: pendingMove.x, y: pendingMove.y });
  pendingMove = undefined;
}

function modifiers(event) {
  const bits = [
    ["Shift", 1],
    ["Control", 2],
    ["Alt", 4],
    ["Meta", 8],
    ["CapsLock", 16],
    ["NumLock", 32],
  ];
  return bits.reduce((sum, [name, bit]) => (event.getModifierState(name) ? sum | bit : sum), 0);
}

function onKey(event) {
  if (!KEY_CODE_PATTERN.test(event.code)) return;
  event.preventDefault();
  const down = event.type === "keydown";
  // The host repeats a held key itself; forwarding the browser's repeats would double them.
  if (down && event.repeat) return;
  if (down) heldKeys.add(event.code);
  else heldKeys.delete(event.code);
  flushMove();
  send({ t: "key", down, code: event.code, mods: modifiers(event) });
}

const clamp01 = (value) => Math.min(1, Math.max(0, value));
const clampInt16 = (value) => Math.max(-INT16_MAX - 1, Math.min(INT16_MAX, Math.round(value)));

function onPointerMove(event) {
  const box = canvas.getBoundingClientRect();
  if (box.width === 0 || box.height === 0) return;
  pendingMove = {
    x: clamp01((event.clientX - box.left) / box.width),
    y: clamp01((event.clientY - box.top) / box.height),
  };
}

function onButton(event) {
  if (event.button < 0 || event.button > 4) return;
  event.preventDefault();
  const down = event.type === "mousedown";
  if (down) {
    canvas.focus();
    onPointerMove(event);
    heldButtons.add(event.button);
  } else heldButtons.delete(event.button);
  flushMove();
  send({ t: "button", down, button: event.button });
}

function onWheel(event) {
  event.preventDefault();
  // Lines and pages become pixels, the unit the input channel carries.
  const scale = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? canvas.clientHeight : 1;
  flushMove();
  send({ t: "wheel", dx: clampInt16(event.deltaX * scale), dy: clampInt16(event.deltaY * scale) });
}

/** On focus loss the key-ups never arrive here, so release everything rather than leave Shift stuck. */
function releaseAll() {
  for (const code of heldKeys) send({ t: "key", down: false, code, mods: 0 });
  for (const button of heldButtons) send({ t: "button", down: false, button });
  heldKeys.clear();
  heldButtons.clear();
}

window.addEventListener("keydown", onKey);
window.addEventListener("keyup", onKey);
window.addEventListener("blur", releaseAll);
canvas.addEventListener("mousemove", onPointerMove);
canvas.addEventListener("mousedown", onButton);
canvas.addEventListener("mouseup", onButton);
canvas.addEventListener("contextmenu", (event) => event.preventDefault());
canvas.addEventListener("wheel", onWheel, { passive: false });

function tick() {
  flushMove();
  requestAnimationFrame(tick);
}

// Start -----------------------------------------------------------------------------------------------------

async function checkCodec() {
  if (typeof VideoDecoder === "undefined") {
    fail("this browser has no WebCodecs VideoDecoder (it needs a secure context such as http://127.0.0.1)");
    return false;
  }
  try {
    const support = await VideoDecoder.isConfigSupported({ codec: DEFAULT_CODEC, optimizeForLatency: true });
    if (support.supported !== true)
      fail(`this browser cannot decode H.264 (${DEFAULT_CODEC}) with WebCodecs`);
    return support.supported === true;
  } catch (error) {
    fail(`codec check failed: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

function connect() {
  const url = new URL("ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.addEventListener("open", () => {
    stats.state = "connected";
  });
  ws.addEventListener("message", (event) => {
    if (event.data instanceof ArrayBuffer) onFrameMessage(event.data);
  });
  ws.addEventListener("close", (event) => {
    stats.state = event.code === 4001 ? "replaced by another viewer tab" : "disconnected";
  });
  socket = ws;
}

async function main() {
  // Check the codec before connecting, so every frame message is handled in order without awaiting.
  stats.codecSupported = await checkCodec();
  connect();
  canvas.focus();
  setInterval(renderStats, 500);
  requestAnimationFrame(tick);
  renderStats();
}

main();
