/**
 * Results of decoding untrusted bytes. Decoders never throw: they return a value or one of these codes.
 * Results are plain objects, and failures are shared frozen singletons, so a flood of garbage costs no
 * exception and no allocation.
 */
export type DecodeErrorCode =
  | "too-short"
  | "too-large"
  | "unsupported-version"
  | "unknown-type"
  | "bad-length"
  | "bad-field";

export interface DecodeFailure {
  readonly ok: false;
  readonly error: DecodeErrorCode;
}

export interface DecodeSuccess<T> {
  readonly ok: true;
  readonly value: T;
}

export type Decoded<T> = DecodeSuccess<T> | DecodeFailure;

const FAILURES: Readonly<Record<DecodeErrorCode, DecodeFailure>> = Object.freeze({
  "too-short": Object.freeze({ ok: false, error: "too-short" }),
  "too-large": Object.freeze({ ok: false, error: "too-large" }),
  "unsupported-version": Object.freeze({ ok: false, error: "unsupported-version" }),
  "unknown-type": Object.freeze({ ok: false, error: "unknown-type" }),
  "bad-length": Object.freeze({ ok: false, error: "bad-length" }),
  "bad-field": Object.freeze({ ok: false, error: "bad-field" }),
});

/** The shared failure value for a code. */
export function fail(code: DecodeErrorCode): DecodeFailure {
  return FAILURES[code];
}

/** Wraps a decoded value. */
export function ok<T>(value: T): DecodeSuccess<T> {
  return { ok: true, value };
}

/** A DataView over exactly the bytes of `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** An error thrown by encoders for values a caller should never pass (a programming error, not input). */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
}
