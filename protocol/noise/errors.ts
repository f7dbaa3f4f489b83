/**
 * The closed set of Noise failures. A decrypt failure is reported as `decrypt-failed` and nothing more,
 * whether the tag, the key or the data was wrong.
 */
export type NoiseErrorCode =
  | "decrypt-failed"
  | "invalid-dh"
  | "message-too-large"
  | "message-too-short"
  | "nonce-exhausted"
  | "handshake-finished"
  | "handshake-not-finished"
  | "handshake-failed"
  | "not-my-turn"
  | "missing-key"
  | "invalid-key"
  | "invalid-psk"
  | "unsupported-protocol"
  | "one-way-pattern"
  | "remote-static-rejected";

const MESSAGES: Record<NoiseErrorCode, string> = {
  "decrypt-failed": "decryption failed",
  "invalid-dh": "invalid Diffie-Hellman result",
  "message-too-large": "a Noise message is at most 65535 bytes",
  "message-too-short": "message too short",
  "nonce-exhausted": "cipher nonce exhausted: rekey or start a new session",
  "handshake-finished": "the handshake has finished and cannot be used again",
  "handshake-not-finished": "the handshake has not finished",
  "handshake-failed": "the handshake failed and cannot be used again",
  "not-my-turn": "it is the other party's turn in the handshake",
  "missing-key": "a key the pattern needs was not given",
  "invalid-key": "a key has the wrong length",
  "invalid-psk": "pre-shared keys must be 32 bytes, one per psk token",
  "unsupported-protocol": "unsupported Noise protocol name",
  "one-way-pattern": "a one-way pattern has no responder-to-initiator transport",
  "remote-static-rejected": "the peer's static key is not the expected one",
};

/** A Noise failure with a code from a closed set and a fixed message. */
export class NoiseError extends Error {
  override readonly name = "NoiseError";
  readonly code: NoiseErrorCode;
  constructor(code: NoiseErrorCode) {
    super(MESSAGES[code]);
    this.code = code;
  }
}

/** Noise §3: every handshake and transport message is at most 65535 bytes. */
export const MAX_MESSAGE_LEN = 65535;
