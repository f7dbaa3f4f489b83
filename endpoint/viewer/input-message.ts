import {
  type InputEvent,
  isValidKeyCode,
  MAX_ABSOLUTE_COORD,
  MODIFIER_MASK,
  type MouseButton,
} from "../../protocol/channels/input-events.ts";

/**
 * Input messages the viewer page sends as WebSocket text frames, one JSON object each (page/viewer.js builds
 * them). They are checked here and turned into the protocol's {@link InputEvent}, which the daemon encodes with
 * protocol/channels/input-events.ts. Anything else is refused whole: the page is trusted no more than any
 * local process that learned the URL.
 *
 *   {"t":"key","down":true,"code":"KeyA","mods":0}    code: DOM KeyboardEvent.code, mods: Modifier bits
 *   {"t":"abs","x":0.5,"y":0.25}                       position over the picture, 0..1 from the left/top edge
 *   {"t":"rel","dx":-3,"dy":7}                          int16 device units (pointer lock)
 *   {"t":"button","down":true,"button":0}              DOM MouseEvent.button, 0..4
 *   {"t":"wheel","dx":0,"dy":120}                      int16 pixels, positive = right/down
 */
export const MAX_INPUT_MESSAGE_BYTES = 256;

const BUTTONS: readonly MouseButton[] = ["left", "middle", "right", "back", "forward"];
const INT16_MIN = -0x8000;
const INT16_MAX = 0x7fff;

type Fields = Readonly<Record<string, unknown>>;

const isBool = (value: unknown): value is boolean => typeof value === "boolean";
const isInt16 = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= INT16_MIN && value <= INT16_MAX;
const isUnit = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 1;

/** Only these keys may appear for each type, so a message cannot smuggle extra data past the check. */
const ALLOWED_KEYS: Readonly<Record<string, readonly string[]>> = {
  key: ["t", "down", "code", "mods"],
  abs: ["t", "x", "y"],
  rel: ["t", "dx", "dy"],
  button: ["t", "down", "button"],
  wheel: ["t", "dx", "dy"],
};

function hasOnly(fields: Fields, allowed: readonly string[]): boolean {
  return Object.keys(fields).every((key) => allowed.includes(key));
}

/** Parses one page message; `undefined` for anything malformed, oversized or out of range. */
export function parseInputMessage(text: string): InputEvent | undefined {
  // Length in UTF-16 units bounds the UTF-8 size from below; ws already capped the frame at its maxPayload.
  if (text.length > MAX_INPUT_MESSAGE_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const fields = parsed as Fields;
  const type = fields.t;
  if (typeof type !== "string") return undefined;
  const allowed = ALLOWED_KEYS[type];
  if (allowed === undefined || !hasOnly(fields, allowed)) return undefined;
  switch (type) {
    case "key": {
      const { down, code, mods } = fields;
      if (!isBool(down) || typeof code !== "string" || !isValidKeyCode(code)) return undefined;
      if (typeof mods !== "number" || !Number.isInteger(mods) || mods < 0 || mods > MODIFIER_MASK) {
        return undefined;
      }
      return { type: "key", down, code, modifiers: mods };
    }
    case "abs": {
      const { x, y } = fields;
      if (!isUnit(x) || !isUnit(y)) return undefined;
      return {
        type: "mouse-absolute",
        x: Math.round(x * MAX_ABSOLUTE_COORD),
        y: Math.round(y * MAX_ABSOLUTE_COORD),
      };
    }
    case "rel":
    case "wheel": {
      const { dx, dy } = fields;
      if (!isInt16(dx) || !isInt16(dy)) return undefined;
      return type === "rel" ? { type: "mouse-relative", dx, dy } : { type: "wheel", dx, dy };
    }
    case "button": {
      const { down, button } = fields;
      if (!isBool(down) || typeof button !== "number" || !Number.isInteger(button)) return undefined;
      const name = BUTTONS[button];
      if (name === undefined) return undefined;
      return { type: "button", down, button: name };
    }
    default:
      return undefined;
  }
}
