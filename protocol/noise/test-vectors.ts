import { constantTimeEqual, fromHex, toHex } from "../bytes.ts";
import type { CryptoBackend, KeyPair } from "../crypto/backend.ts";
import { HandshakeState } from "./handshake-state.ts";
import { parseProtocolName, SUITE } from "./protocol-name.ts";

/**
 * Runs vectors in the Noise wiki's test-vector JSON format (as published by cacophony and snow):
 * `{ vectors: [{ protocol_name, init_*, resp_*, handshake_hash?, messages: [{ payload, ciphertext }] }] }`.
 * Pure: the caller reads the file and prints the outcome.
 */

export interface VectorOutcome {
  readonly name: string;
  readonly passed: boolean;
  /** Why it failed (a short reason), absent when it passed. */
  readonly reason?: string;
}

export interface VectorReport {
  readonly outcomes: readonly VectorOutcome[];
  /** Vectors of other cipher suites, ignored. */
  readonly otherSuites: number;
}

interface RawVector {
  protocol_name?: unknown;
  messages?: unknown;
  handshake_hash?: unknown;
  [key: string]: unknown;
}

/** Runs every vector of the 25519_ChaChaPoly_BLAKE2s suite in `document` on `backend`. */
export function runNoiseVectors(document: unknown, backend: CryptoBackend): VectorReport {
  const vectors = extractVectors(document);
  const outcomes: VectorOutcome[] = [];
  let otherSuites = 0;
  vectors.forEach((raw, index) => {
    const name = typeof raw.protocol_name === "string" ? raw.protocol_name : `vector #${index}`;
    if (typeof raw.protocol_name === "string" && !raw.protocol_name.endsWith(`_${SUITE}`)) {
      otherSuites++;
      return;
    }
    try {
      runOne(raw, backend);
      outcomes.push({ name, passed: true });
    } catch (error) {
      outcomes.push({ name, passed: false, reason: error instanceof Error ? error.message : String(error) });
    }
  });
  return { outcomes, otherSuites };
}

function extractVectors(document: unknown): RawVector[] {
  const list = Array.isArray(document)
    ? document
    : typeof document === "object" &&
        document !== null &&
        Array.isArray((document as { vectors?: unknown }).vectors)
      ? (document as { vectors: unknown[] }).vectors
      : undefined;
  if (list === undefined) throw new TypeError('not a Noise test-vector file: expected { "vectors": [...] }');
  return list.map((v) => (typeof v === "object" && v !== null ? (v as RawVector) : {}));
}

function hexField(raw: RawVector, key: string): Uint8Array | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new Error(`${key} is not a hex string`);
  return fromHex(value);
}

function hexList(raw: RawVector, key: string): Uint8Array[] | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string"))
    throw new Error(`${key} is not a list`);
  return value.map((v: string) => fromHex(v));
}

function noRandom(): Uint8Array {
  throw new Error("test vectors supply every ephemeral key");
}

function party(raw: RawVector, backend: CryptoBackend, prefix: "init" | "resp"): HandshakeState {
  const privateStatic = hexField(raw, `${prefix}_static`);
  const privateEphemeral = hexField(raw, `${prefix}_ephemeral`);
  const remoteStatic = hexField(raw, `${prefix}_remote_static`);
  const remoteEphemeral = hexField(raw, `${prefix}_remote_ephemeral`);
  const prologue = hexField(raw, `${prefix}_prologue`);
  const psks = hexList(raw, `${prefix}_psks`);
  const pair = (privateKey: Uint8Array): KeyPair => ({
    privateKey,
    publicKey: backend.x25519PublicKey(privateKey),
  });
  return new HandshakeState({
    backend,
    protocolName: raw.protocol_name as string,
    initiator: prefix === "init",
    random: noRandom,
    ...(prologue !== undefined && { prologue }),
    ...(privateStatic !== undefined && { staticKeyPair: pair(privateStatic) }),
    ...(privateEphemeral !== undefined && { fixedEphemeralKeyPair: pair(privateEphemeral) }),
    ...(remoteStatic !== undefined && { remoteStaticKey: remoteStatic }),
    ...(remoteEphemeral !== undefined && { remoteEphemeralKey: remoteEphemeral }),
    ...(psks !== undefined && { psks }),
  });
}

function runOne(raw: RawVector, backend: CryptoBackend): void {
  if (typeof raw.protocol_name !== "string") throw new Error("missing protocol_name");
  const parsed = parseProtocolName(raw.protocol_name);
  if (parsed === undefined) throw new Error("unsupported pattern or modifier");
  if (!Array.isArray(raw.messages) || raw.messages.length === 0) throw new Error("no messages");
  const initiator = party(raw, backend, "init");
  const responder = party(raw, backend, "resp");
  const handshakeLength = parsed.pattern.messages.length;
  if (raw.messages.length < handshakeLength) throw new Error("fewer messages than the handshake needs");

  const messages = raw.messages.map((m: unknown, i: number) => {
    const entry = m as { payload?: unknown; ciphertext?: unknown };
    if (typeof entry.payload !== "string" || typeof entry.ciphertext !== "string") {
      throw new Error(`message ${i} lacks payload or ciphertext`);
    }
    return { payload: fromHex(entry.payload), ciphertext: fromHex(entry.ciphertext) };
  });

  for (let i = 0; i < handshakeLength; i++) {
    const { payload, ciphertext } = messages[i] as { payload: Uint8Array; ciphertext: Uint8Array };
    const [sender, receiver] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
    const written = sender.writeMessage(payload);
    if (!constantTimeEqual(written, ciphertext))
      throw new Error(`handshake message ${i}: ciphertext differs`);
    const read = receiver.readMessage(written);
    if (!constantTimeEqual(read, payload)) throw new Error(`handshake message ${i}: payload differs`);
  }

  const a = initiator.split();
  const b = responder.split();
  const expectedHash = hexField(raw, "handshake_hash");
  if (expectedHash !== undefined) {
    if (toHex(a.handshakeHash) !== toHex(expectedHash)) throw new Error("initiator handshake_hash differs");
    if (toHex(b.handshakeHash) !== toHex(expectedHash)) throw new Error("responder handshake_hash differs");
  }

  for (let i = handshakeLength; i < messages.length; i++) {
    const { payload, ciphertext } = messages[i] as { payload: Uint8Array; ciphertext: Uint8Array };
    // One-way patterns only carry initiator-to-responder traffic; otherwise directions keep alternating.
    const fromInitiator = parsed.pattern.oneWay || i % 2 === 0;
    const send = fromInitiator ? a.send : b.send;
    const receive = fromInitiator ? b.receive : a.receive;
    if (send === null || receive === null) throw new Error(`transport message ${i}: no cipher for direction`);
    const written = send.encryptWithAd(new Uint8Array(0), payload);
    if (!constantTimeEqual(written, ciphertext))
      throw new Error(`transport message ${i}: ciphertext differs`);
    const read = receive.decryptWithAd(new Uint8Array(0), written);
    if (!constantTimeEqual(read, payload)) throw new Error(`transport message ${i}: payload differs`);
  }
}
