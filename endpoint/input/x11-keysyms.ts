/**
 * DOM `KeyboardEvent.code` (the physical key, UIEvents-code spec) to X11 keysym names as xdotool takes them.
 * Unshifted keysyms: the host's own modifier state (Shift arrives as its own key events) picks the shifted
 * symbol, as on a local keyboard. A code missing here is dropped by the injector, never passed on.
 */
const NAMED: Readonly<Record<string, string>> = {
  Enter: "Return",
  NumpadEnter: "KP_Enter",
  Escape: "Escape",
  Tab: "Tab",
  Backspace: "BackSpace",
  Space: "space",
  Delete: "Delete",
  Insert: "Insert",
  Home: "Home",
  End: "End",
  PageUp: "Prior",
  PageDown: "Next",
  ArrowUp: "Up",
  ArrowDown: "Down",
  ArrowLeft: "Left",
  ArrowRight: "Right",
  ShiftLeft: "Shift_L",
  ShiftRight: "Shift_R",
  ControlLeft: "Control_L",
  ControlRight: "Control_R",
  AltLeft: "Alt_L",
  AltRight: "Alt_R",
  MetaLeft: "Super_L",
  MetaRight: "Super_R",
  CapsLock: "Caps_Lock",
  NumLock: "Num_Lock",
  ScrollLock: "Scroll_Lock",
  PrintScreen: "Print",
  Pause: "Pause",
  ContextMenu: "Menu",
  Minus: "minus",
  Equal: "equal",
  BracketLeft: "bracketleft",
  BracketRight: "bracketright",
  Backslash: "backslash",
  Semicolon: "semicolon",
  Quote: "apostrophe",
  Backquote: "grave",
  Comma: "comma",
  Period: "period",
  Slash: "slash",
  IntlBackslash: "less",
  NumpadAdd: "KP_Add",
  NumpadSubtract: "KP_Subtract",
  NumpadMultiply: "KP_Multiply",
  NumpadDivide: "KP_Divide",
  NumpadDecimal: "KP_Decimal",
};

function build(): ReadonlyMap<string, string> {
  const table = new Map<string, string>(Object.entries(NAMED));
  for (let c = 0x41; c <= 0x5a; c++) {
    const letter = String.fromCharCode(c);
    table.set(`Key${letter}`, letter.toLowerCase());
  }
  for (let d = 0; d <= 9; d++) {
    table.set(`Digit${d}`, String(d));
    table.set(`Numpad${d}`, `KP_${d}`);
  }
  for (let f = 1; f <= 24; f++) table.set(`F${f}`, `F${f}`);
  return table;
}

const TABLE = build();

/** The X keysym name for a DOM code, or null when the code is not in the table. */
export function keysymForCode(code: string): string | null {
  return TABLE.get(code) ?? null;
}
