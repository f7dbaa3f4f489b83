import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import path from "node:path";
import { relayIdFromKey } from "../protocol/identity/relay-id.ts";

/**
 * The relay's Ed25519 identity (DESIGN.md: Identity): one key kept in a file across restarts, created with mode
 * 0600; the relay id is derived from its public half, so the id cannot be taken over by re-registering. The
 * private key never leaves this module except as signatures, and is never logged.
 */
export interface RelayIdentity {
  readonly relayId: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The public key as base64url (what the enrollment request carries). */
  readonly publicKeyText: string;
  /** Ed25519 signature over `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** Why a key file was refused. */
export type KeyFileErrorCode = "insecure-permissions" | "wrong-owner" | "unreadable" | "malformed";

/** A key file the relay must not use; the message names WAVRY_RELAY_KEY_FILE and says how to fix it. */
export class KeyFileError extends Error {
  override readonly name = "KeyFileError";
  constructor(
    readonly code: KeyFileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const MAX_KEY_FILE_BYTES = 4096;

function identityOf(privateKey: KeyObject): RelayIdentity {
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  const publicKeyText = typeof jwk.x === "string" ? jwk.x : "";
  const publicKey = new Uint8Array(Buffer.from(publicKeyText, "base64url"));
  return {
    relayId: relayIdFromKey(publicKey),
    publicKey,
    publicKeyText,
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}

function readKey(file: string): KeyObject {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    throw new KeyFileError("unreadable", `WAVRY_RELAY_KEY_FILE: cannot open ${file} (${codeOf(error)})`);
  }
  try {
    // Checked on the open descriptor, so the file checked is the file read.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KeyFileError("unreadable", `WAVRY_RELAY_KEY_FILE: ${file} is not a file`);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
      throw new KeyFileError(
        "insecure-permissions",
        `WAVRY_RELAY_KEY_FILE: ${file} is readable by group or others (mode ${mode}); run chmod 600 ${file}, ` +
          "and treat the key as leaked if others could read it (see OPERATIONS.md)",
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new KeyFileError(
        "wrong-owner",
        `WAVRY_RELAY_KEY_FILE: ${file} belongs to uid ${stat.uid}, not to the relay's user (uid ${uid})`,
      );
    }
    if (stat.size > MAX_KEY_FILE_BYTES)
      throw new KeyFileError("malformed", `WAVRY_RELAY_KEY_FILE: ${file} is too large`);
    const text = readFileSync(fd, "utf8");
    try {
      const key = createPrivateKey({ key: text, format: "pem" });
      if (key.asymmetricKeyType !== "ed25519") throw new Error("not ed25519");
      return key;
    } catch {
      throw new KeyFileError(
        "malformed",
        `WAVRY_RELAY_KEY_FILE: ${file} does not hold an Ed25519 private key (PKCS#8 PEM)`,
      );
    }
  } finally {
    closeSync(fd);
  }
}

function codeOf(error: unknown): string {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : "error";
}

/**
 * Loads the key from `file`, or creates it (mode 0600, exclusive create, parent directory 0700) when the file does
 * not exist. Refuses a file that group or others can read, or that another user owns.
 */
export function loadOrCreateIdentity(file: string): { identity: RelayIdentity; created: boolean } {
  let fd: number | null = null;
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // "wx": fails if the file exists, so a racing second process never overwrites the first one's key.
    fd = openSync(file, "wx", 0o600);
  } catch (error) {
    if (codeOf(error) !== "EEXIST") {
      throw new KeyFileError("unreadable", `WAVRY_RELAY_KEY_FILE: cannot create ${file} (${codeOf(error)})`);
    }
  }
  if (fd === null) return { identity: identityOf(readKey(file)), created: false };
  try {
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" });
    writeSync(fd, typeof pem === "string" ? pem : pem.toString("utf8"));
    fsyncSync(fd);
    return { identity: identityOf(privateKey), created: true };
  } finally {
    closeSync(fd);
  }
}
