import { type Decoded, EncodeError, fail, ok } from "../wire/decode.ts";

/**
 * Input events carried on the input channel (inside reliable-input batches). Each event is self-delimiting:
 * a type byte, then fixed fields, so a batch is a plain concatenation. Multi-byte integers little-endian.
 *
 * Keys are named by the DOM `KeyboardEvent.code` (the physical key, independent of layout), e.g. "KeyA",
 * "ShiftLeft", "ArrowUp", "Digit1", "F12", "NumpadEnter". The host maps names to its injector; a name it
 * does not know is ignored there, so the wire only bounds the shape: {@link KEY_CODE_PATTERN}.
 */
export const InputEventType = {
  /** type | modifiers u8 | code_len u8 (2..32) | code ASCII[code_len]           = 3 + code_len bytes */
  KeyDown: 0x01,
  /** type | modifiers u8 | code_len u8 (2..32) | code ASCII[code_len]           = 3 + code_len bytes */
  KeyUp: 0x02,
  /** type | x u16 | y u16  (0 = left/top edge, 65535 = right/bottom edge of the host screen) = 5 bytes */
  MouseAbsolute: 0x03,
  /** type | dx i16 | dy i16  (device units, positive = right/down)             = 5 bytes */
  MouseRelative: 0x04,
  /** type | button u8 (MouseButtonCode)                                         = 2 bytes */
  ButtonDown: 0x05,
  /** type | button u8 (MouseButtonCode)                                         = 2 bytes */
  ButtonUp: 0x06,
  /** type | dx i16 | dy i16  (DOM WheelEvent pixel deltas, positive = right/down) = 5 bytes */
  Wheel: 0x07,
} as const;
export type InputEventType = (typeof InputEventType)[keyof typeof InputEventType];

/**
 * Modifier bits in key events: the client's modifier state when the key changed, so the host can resync
 * after a missed key-up (focus loss on the client) instead of leaving Shift stuck. Bits 6 and 7 must be 0.
 *
 *   bit  0 Shift | 1 Control | 2 Alt | 3 Meta | 4 CapsLock | 5 NumLock | 6-7 reserved
 */
export const Modifier = {
  Shift: 1 << 0,
  Control: 1 << 1,
  Alt: 1 << 2,
  Meta: 1 << 3,
  CapsLock: 1 << 4,
  NumLock: 1 << 5,
} as const;
/** Every defined modifier bit. */
export const MODIFIER_MASK = 0x3f;

/** Mouse buttons, numbered as DOM `MouseEvent.button` so the client passes them through unchanged. */
export const MouseButtonCode = {
  left: 0,
  middle: 1,
  right: 2,
  back: 3,
  forward: 4,
} as const;
export type MouseButton = keyof typeof MouseButtonCode;
const BUTTONS: readonly MouseButton[] = ["left", "middle", "right", "back", "forward"];

/** Shortest and longest key code names (the longest standard DOM code, "MediaTrackPrevious", has 18). */
export const MIN_KEY_CODE_LEN = 2;
export const MAX_KEY_CODE_LEN = 32;
/** What a key code must look like: an upper-case ASCII letter, then ASCII letters and digits. */
export const KEY_CODE_PATTERN = /^[A-Z][A-Za-z0-9]{1,31}$/;
/** The largest encoded event (a key event with a 32-byte code). */
export const MAX_INPUT_EVENT_LEN = 3 + MAX_KEY_CODE_LEN;
/** Normalised absolute coordinates span 0..65535 across the host screen. */
export const MAX_ABSOLUTE_COORD = 0xffff;

export interface KeyEvent {
  readonly type: "key";
  readonly down: boolean;
  /** DOM `KeyboardEvent.code`, matching {@link KEY_CODE_PATTERN}. */
  readonly code: string;
  /** {@link Modifier} bits. */
  readonly modifiers: number;
}
export interface MouseAbsoluteEvent {
  readonly type: "mouse-absolute";
  /** 0..65535 across the host screen width. */
  readonly x: number;
  /** 0..65535 down the host screen height. */
  readonly y: number;
}
export interface MouseRelativeEvent {
  readonly type: "mouse-relative";
  /** int16 */
  readonly dx: number;
  /** int16 */
  readonly dy: number;
}
export interface ButtonEvent {
  readonly type: "button";
  readonly down: boolean;
  readonly button: MouseButton;
}
export interface WheelEvent {
  readonly type: "wheel";
  /** int16, positive scrolls right. */
  readonly dx: number;
  /** int16, positive scrolls down. */
  readonly dy: number;
}
export type InputEvent = KeyEvent | MouseAbsoluteEvent | MouseRelativeEvent | ButtonEvent | WheelEvent;

/** A decoded event and the offset just after it. */
export interface ReadInputEvent {
  readonly event: InputEvent;
  readonly end: number;
}

function assertNever(value: never): never {
  throw new EncodeError(`unknown input event ${String(value)}`);
}

const isInt = (value: number, min: number, max: number) =>
  Number.isInteger(value) && value >= min && value <= max;

/** True when `code` is a key code the wire accepts. */
export function isValidKeyCode(code: string): boolean {
  return KEY_CODE_PATTERN.test(code);
}

/** Encoded size of `event`. Throws {@link EncodeError} for an event that cannot be encoded. */
export function inputEventLength(event: InputEvent): number {
  switch (event.type) {
    case "key":
      if (!isValidKeyCode(event.code)) throw new EncodeError("invalid key code");
      return 3 + event.code.length;
    case "mouse-absolute":
    case "mouse-relative":
    case "wheel":
      return 5;
    case "button":
      return 2;
    default:
      return assertNever(event);
  }
}

/**
 * Writes `event` at `offset` and returns the offset after it. Throws {@link EncodeError} for values a
 * caller should never pass (out-of-range coordinates, a bad key code, unknown modifier bits) or when the
 * event does not fit.
 */
export function writeInputEvent(out: Uint8Array, offset: number, event: InputEvent): number {
  const length = inputEventLength(event);
  if (!isInt(offset, 0, out.length - length)) throw new EncodeError("input event does not fit");
  const view = new DataView(out.buffer, out.byteOffset + offset, length);
  switch (event.type) {
    case "key": {
      if (!isInt(event.modifiers, 0, MODIFIER_MASK)) throw new EncodeError("invalid modifier bits");
      view.setUint8(0, event.down ? InputEventType.KeyDown : InputEventType.KeyUp);
      view.setUint8(1, event.modifiers);
      view.setUint8(2, event.code.length);
      for (let i = 0; i < event.code.length; i++) view.setUint8(3 + i, event.code.charCodeAt(i));
      break;
    }
    case "mouse-absolute":
      if (!isInt(event.x, 0, MAX_ABSOLUTE_COORD) || !isInt(event.y, 0, MAX_ABSOLUTE_COORD)) {
        throw new EncodeError("absolute coordinates must be 0..65535");
      }
      view.setUint8(0, InputEventType.MouseAbsolute);
      view.setUint16(1, event.x, true);
      view.setUint16(3, event.y, true);
      break;
    case "mouse-relative":
    case "wheel":
      if (!isInt(event.dx, -0x8000, 0x7fff) || !isInt(event.dy, -0x8000, 0x7fff)) {
        throw new EncodeError("deltas must be int16");
      }
      view.setUint8(0, event.type === "wheel" ? InputEventType.Wheel : InputEventType.MouseRelative);
      view.setInt16(1, event.dx, true);
      view.setInt16(3, event.dy, true);
      break;
    case "button": {
      const code = BUTTONS.indexOf(event.button);
      if (code < 0) throw new EncodeError("unknown mouse button");
      view.setUint8(0, event.down ? InputEventType.ButtonDown : InputEventType.ButtonUp);
      view.setUint8(1, code);
      break;
    }
    default:
      assertNever(event);
  }
  return offset + length;
}

/** Encodes one event into a new array. */
export function encodeInputEvent(event: InputEvent): Uint8Array {
  const out = new Uint8Array(inputEventLength(event));
  writeInputEvent(out, 0, event);
  return out;
}

/**
 * Reads one event starting at `offset`. Never throws: a truncated event is `too-short`, an unassigned type
 * `unknown-type`, a key code length outside 2..32 `bad-length`, a key code outside the pattern, reserved
 * modifier bits or an unknown button `bad-field`.
 */
export function readInputEvent(bytes: Uint8Array, offset: number): Decoded<ReadInputEvent> {
  if (!isInt(offset, 0, bytes.length - 1)) return fail("too-short");
  const type = bytes[offset] as number;
  const left = bytes.length - offset;
  switch (type) {
    case InputEventType.KeyDown:
    case InputEventType.KeyUp: {
      if (left < 3) return fail("too-short");
      const modifiers = bytes[offset + 1] as number;
      const codeLength = bytes[offset + 2] as number;
      if (codeLength < MIN_KEY_CODE_LEN || codeLength > MAX_KEY_CODE_LEN) return fail("bad-length");
      if (left < 3 + codeLength) return fail("too-short");
      if ((modifiers & ~MODIFIER_MASK) !== 0) return fail("bad-field");
      // Checked byte by byte before any string exists, so garbage costs no allocation.
      let code = "";
      for (let i = 0; i < codeLength; i++) {
        const c = bytes[offset + 3 + i] as number;
        const upper = c >= 0x41 && c <= 0x5a;
        if (!(upper || (i > 0 && ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39))))) {
          return fail("bad-field");
        }
      }
      for (let i = 0; i < codeLength; i++) code += String.fromCharCode(bytes[offset + 3 + i] as number);
      return ok({
        event: { type: "key", down: type === InputEventType.KeyDown, code, modifiers },
        end: offset + 3 + codeLength,
      });
    }
    case InputEventType.MouseAbsolute:
    case InputEventType.MouseRelative:
    case InputEventType.Wheel: {
      if (left < 5) return fail("too-short");
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 5);
      const end = offset + 5;
      if (type === InputEventType.MouseAbsolute) {
        return ok({
          event: { type: "mouse-absolute", x: view.getUint16(1, true), y: view.getUint16(3, true) },
          end,
        });
      }
      const dx = view.getInt16(1, true);
      const dy = view.getInt16(3, true);
      return ok({
        event: type === InputEventType.Wheel ? { type: "wheel", dx, dy } : { type: "mouse-relative", dx, dy },
        end,
      });
    }
    case InputEventType.ButtonDown:
    case InputEventType.ButtonUp: {
      if (left < 2) return fail("too-short");
      const button = BUTTONS[bytes[offset + 1] as number];
      if (button === undefined) return fail("bad-field");
      return ok({
        event: { type: "button", down: type === InputEventType.ButtonDown, button },
        end: offset + 2,
      });
    }
    default:
      return fail("unknown-type");
  }
}

/** Decodes exactly one event filling all of `bytes` (trailing bytes are `bad-length`). */
export function decodeInputEvent(bytes: Uint8Array): Decoded<InputEvent> {
  if (bytes.length > MAX_INPUT_EVENT_LEN) return fail("too-large");
  const read = readInputEvent(bytes, 0);
  if (!read.ok) return read;
  if (read.value.end !== bytes.length) return fail("bad-length");
  return ok(read.value.event);
}
