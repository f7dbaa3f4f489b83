/** The closed set of crypto failures. They carry no detail an attacker could use. */
export type CryptoErrorCode =
  | "invalid-key-length"
  | "invalid-nonce-length"
  | "invalid-tag"
  | "invalid-public-key"
  | "invalid-signature-length"
  | "zero-shared-secret"
  | "random-source";

const MESSAGES: Record<CryptoErrorCode, string> = {
  "invalid-key-length": "invalid key length",
  "invalid-nonce-length": "invalid nonce length",
  "invalid-tag": "invalid tag",
  "invalid-public-key": "invalid public key",
  "invalid-signature-length": "invalid signature length",
  "zero-shared-secret": "invalid shared secret",
  "random-source": "random source returned the wrong number of bytes",
};

/** A crypto failure. The message is fixed per code: an authentication failure says only "invalid tag". */
export class CryptoError extends Error {
  override readonly name = "CryptoError";
  readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode) {
    super(MESSAGES[code]);
    this.code = code;
  }
}
