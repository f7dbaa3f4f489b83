import { randomFillSync } from "node:crypto";
import path from "node:path";
import { z } from "zod";
import {
  generateEd25519KeyPair,
  generateX25519KeyPair,
  type KeyPair,
} from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { deviceFingerprint, deviceIdFromKeys } from "../../protocol/identity/device-id.ts";
import { PrivateFileError, readPrivateFile, writeNewPrivateFile } from "./private-file.ts";

/**
 * The device identity (DESIGN.md: Identity): an X25519 static key (the Noise identity) and an Ed25519 key (signs
 * control-plane requests), kept in `$WAVRY_HOME/identity.json` with mode 0600. The private keys stay inside the
 * closures of {@link DeviceIdentity}: its enumerable fields are public values only, so logging or JSON-encoding
 * an identity by mistake prints nothing secret.
 */

/** File name of the identity inside the state directory. */
export const IDENTITY_FILE = "identity.json";
const MAX_IDENTITY_BYTES = 4096;

/** A loaded device identity. Enumerable fields are public; the private keys are reachable only via methods. */
export interface DeviceIdentity {
  readonly deviceId: string;
  /** Shown to humans ("1a2b 3c4d …", 10 groups of 4 hex digits). */
  readonly fingerprint: string;
  readonly x25519PublicKey: Uint8Array;
  readonly ed25519PublicKey: Uint8Array;
  /** Epoch milliseconds the identity was created. */
  readonly createdAt: number;
  /** Ed25519 signature over `message` (enrollment proofs, token challenges). */
  sign(message: Uint8Array): Uint8Array;
  /** The Noise static key pair; for the peer link only (a copy, so a caller cannot alter the identity). */
  noiseStaticKeyPair(): KeyPair;
}

const b64key = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const IdentityFile = z.strictObject({
  version: z.literal(1),
  x25519PrivateKey: b64key,
  ed25519PrivateKey: b64key,
  createdAt: z.number().int().min(0),
});

/** base64url without padding, as the edge API spells keys. */
export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** Decodes canonical base64url of exactly `length` bytes, or returns null. */
export function fromBase64url(text: string, length: number): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const bytes = new Uint8Array(Buffer.from(text, "base64url"));
  return bytes.length === length && toBase64url(bytes) === text ? bytes : null;
}

/** The identity file's path for a state directory. */
export function identityPath(home: string): string {
  return path.join(home, IDENTITY_FILE);
}

function identityOf(
  x25519Private: Uint8Array,
  ed25519Private: Uint8Array,
  createdAt: number,
): DeviceIdentity {
  const x25519PublicKey = nodeBackend.x25519PublicKey(x25519Private);
  const ed25519PublicKey = nodeBackend.ed25519PublicKey(ed25519Private);
  return {
    deviceId: deviceIdFromKeys(x25519PublicKey, ed25519PublicKey),
    fingerprint: deviceFingerprint(x25519PublicKey, ed25519PublicKey),
    x25519PublicKey,
    ed25519PublicKey,
    createdAt,
    sign: (message) => nodeBackend.ed25519Sign(ed25519Private, message),
    noiseStaticKeyPair: () => ({ privateKey: x25519Private.slice(), publicKey: x25519PublicKey.slice() }),
  };
}

const nodeRandom = (length: number) => randomFillSync(new Uint8Array(length));

/**
 * Creates a new identity in `home` (directory 0700, file 0600). Refuses to overwrite an existing identity
 * (PrivateFileError "exists"): replacing the keys would silently turn this machine into another device.
 */
export function createIdentity(home: string, now: number = Date.now()): DeviceIdentity {
  const x25519 = generateX25519KeyPair(nodeBackend, nodeRandom);
  const ed25519 = generateEd25519KeyPair(nodeBackend, nodeRandom);
  const body = {
    version: 1,
    x25519PrivateKey: toBase64url(x25519.privateKey),
    ed25519PrivateKey: toBase64url(ed25519.privateKey),
    createdAt: now,
  };
  const file = identityPath(home);
  try {
    writeNewPrivateFile(file, `${JSON.stringify(body, null, 2)}\n`);
  } catch (error) {
    if (error instanceof PrivateFileError && error.code === "exists") {
      throw new PrivateFileError(
        "exists",
        `a device identity already exists at ${file}; it was not replaced`,
      );
    }
    throw error;
  }
  return identityOf(x25519.privateKey, ed25519.privateKey, now);
}

/**
 * Loads the identity from `home`, or returns null when there is none. Throws PrivateFileError for a file with
 * unsafe permissions (the message says `chmod 600`), another owner, or content that is not an identity.
 */
export function loadIdentity(home: string): DeviceIdentity | null {
  const file = identityPath(home);
  const text = readPrivateFile(file, MAX_IDENTITY_BYTES);
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  const parsed = IdentityFile.safeParse(json);
  const x = parsed.success ? fromBase64url(parsed.data.x25519PrivateKey, 32) : null;
  const ed = parsed.success ? fromBase64url(parsed.data.ed25519PrivateKey, 32) : null;
  if (!parsed.success || x === null || ed === null) {
    // The content is never quoted: it holds private keys.
    throw new PrivateFileError("malformed", `${file} is not a valid wavry identity file`);
  }
  return identityOf(x, ed, parsed.data.createdAt);
}
