/**
 * Handshake patterns as data (Noise §7). A small loop in handshake-state.ts walks them.
 *
 * Messages alternate directions starting with the initiator (-> then <-), so a pattern is its
 * pre-messages plus an ordered list of token lists.
 */

export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";
export type PreToken = "e" | "s";

export interface HandshakePattern {
  readonly name: string;
  /** Pre-message of the initiator (keys the responder knows in advance). */
  readonly initiatorPre: readonly PreToken[];
  /** Pre-message of the responder (keys the initiator knows in advance). */
  readonly responderPre: readonly PreToken[];
  readonly messages: readonly (readonly Token[])[];
  /** One-way patterns (§7.4) have a single message and only initiator-to-responder transport. */
  readonly oneWay: boolean;
}

type Row = readonly [name: string, initiatorPre: string, responderPre: string, messages: readonly string[]];

// Written as in the specification: pre-messages, then one entry per message ("," separates tokens).
const ONE_WAY: readonly Row[] = [
  ["N", "", "s", ["e, es"]],
  ["K", "s", "s", ["e, es, ss"]],
  ["X", "", "s", ["e, es, s, ss"]],
];

// §7.5 fundamental interactive patterns.
const INTERACTIVE: readonly Row[] = [
  ["NN", "", "", ["e", "e, ee"]],
  ["NK", "", "s", ["e, es", "e, ee"]],
  ["NX", "", "", ["e", "e, ee, s, es"]],
  ["KN", "s", "", ["e", "e, ee, se"]],
  ["KK", "s", "s", ["e, es, ss", "e, ee, se"]],
  ["KX", "s", "", ["e", "e, ee, se, s, es"]],
  ["XN", "", "", ["e", "e, ee", "s, se"]],
  ["XK", "", "s", ["e, es", "e, ee", "s, se"]],
  ["XX", "", "", ["e", "e, ee, s, es", "s, se"]],
  ["IN", "", "", ["e, s", "e, ee, se"]],
  ["IK", "", "s", ["e, es, s, ss", "e, ee, se"]],
  ["IX", "", "", ["e, s", "e, ee, se, s, es"]],
];

// §7.6 deferred patterns.
const DEFERRED: readonly Row[] = [
  ["NK1", "", "s", ["e", "e, ee, es"]],
  ["NX1", "", "", ["e", "e, ee, s", "es"]],
  ["X1N", "", "", ["e", "e, ee", "s", "se"]],
  ["X1K", "", "s", ["e, es", "e, ee", "s", "se"]],
  ["XK1", "", "s", ["e", "e, ee, es", "s, se"]],
  ["X1K1", "", "s", ["e", "e, ee, es", "s", "se"]],
  ["X1X", "", "", ["e", "e, ee, s, es", "s", "se"]],
  ["XX1", "", "", ["e", "e, ee, s", "es, s, se"]],
  ["X1X1", "", "", ["e", "e, ee, s", "es, s", "se"]],
  ["K1N", "s", "", ["e", "e, ee", "se"]],
  ["K1K", "s", "s", ["e, es", "e, ee", "se"]],
  ["KK1", "s", "s", ["e", "e, ee, se, es"]],
  ["K1K1", "s", "s", ["e", "e, ee, es", "se"]],
  ["K1X", "s", "", ["e", "e, ee, s, es", "se"]],
  ["KX1", "s", "", ["e", "e, ee, se, s", "es"]],
  ["K1X1", "s", "", ["e", "e, ee, s", "se, es"]],
  ["I1N", "", "", ["e, s", "e, ee", "se"]],
  ["I1K", "", "s", ["e, es, s", "e, ee", "se"]],
  ["IK1", "", "s", ["e, s", "e, ee, se, es"]],
  ["I1K1", "", "s", ["e, s", "e, ee, es", "se"]],
  ["I1X", "", "", ["e, s", "e, ee, s, es", "se"]],
  ["IX1", "", "", ["e, s", "e, ee, se, s", "es"]],
  ["I1X1", "", "", ["e, s", "e, ee, s", "se, es"]],
];

function tokens<T extends string>(text: string): T[] {
  return text === "" ? [] : (text.split(",").map((t) => t.trim()) as T[]);
}

function build(row: Row, oneWay: boolean): HandshakePattern {
  const [name, initiatorPre, responderPre, messages] = row;
  return {
    name,
    initiatorPre: tokens<PreToken>(initiatorPre),
    responderPre: tokens<PreToken>(responderPre),
    messages: messages.map((m) => tokens<Token>(m)),
    oneWay,
  };
}

/** Every fundamental and deferred pattern of Noise revision 34, by name. */
export const PATTERNS: ReadonlyMap<string, HandshakePattern> = new Map(
  [...ONE_WAY.map((r) => build(r, true)), ...[...INTERACTIVE, ...DEFERRED].map((r) => build(r, false))].map(
    (p) => [p.name, p],
  ),
);

/**
 * Applies psk modifiers (§9.2): "psk0" puts a psk token at the start of the first message,
 * "pskN" (N >= 1) at the end of the Nth message. Returns undefined for an invalid modifier.
 */
export function applyPskModifiers(
  pattern: HandshakePattern,
  modifiers: readonly string[],
): HandshakePattern | undefined {
  const messages = pattern.messages.map((m) => [...m]);
  for (const modifier of modifiers) {
    const match = /^psk(\d)$/.exec(modifier);
    if (match === null) return undefined;
    const index = Number(match[1]);
    if (index === 0) {
      (messages[0] as Token[]).unshift("psk");
    } else {
      const message = messages[index - 1];
      if (message === undefined) return undefined;
      message.push("psk");
    }
  }
  return { ...pattern, name: pattern.name + modifiers.join("+"), messages };
}
