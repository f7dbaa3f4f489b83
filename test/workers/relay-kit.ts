import { base64urlEncode } from "../../edge/security/tokens-util.ts";
import { generateEd25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { relayIdFromKey } from "../../protocol/identity/relay-id.ts";
import { RELAY_REQUEST_HEADERS, relayRequestSigningInput } from "../../protocol/relay/signed-request.ts";
import { type CallResult, call, freshAddress } from "./helpers.ts";

/** Relays for the Workers tests: a key pair and signed requests exactly as a relay node makes them. */

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

export interface Relay {
  readonly seed: Uint8Array;
  readonly publicKey: string;
  readonly id: string;
  /** One address per relay, so the per-address budget of one test never leaks into the next. */
  readonly address: string;
}

export function newRelay(): Relay {
  const pair = generateEd25519KeyPair(nobleBackend, random);
  return {
    seed: pair.privateKey,
    publicKey: base64urlEncode(pair.publicKey),
    id: relayIdFromKey(pair.publicKey),
    address: freshAddress(),
  };
}

export interface SignOptions {
  readonly timestampMs?: number;
  readonly nonce?: string;
  /** Sign with this seed instead of the relay's own key. */
  readonly seed?: Uint8Array;
  /** Sign this text but send the body. */
  readonly signedBody?: string;
  readonly relayId?: string;
}

/** The four signed-request headers for `body`, as a relay node computes them. */
export function signedHeaders(relay: Relay, path: string, raw: string, options: SignOptions = {}) {
  const timestampMs = options.timestampMs ?? Date.now();
  const nonce = options.nonce ?? base64urlEncode(random(16));
  const input = relayRequestSigningInput({
    method: "POST",
    path,
    timestampMs,
    nonce,
    body: new TextEncoder().encode(options.signedBody ?? raw),
  });
  return {
    [RELAY_REQUEST_HEADERS.relayId]: options.relayId ?? relay.id,
    [RELAY_REQUEST_HEADERS.timestamp]: String(timestampMs),
    [RELAY_REQUEST_HEADERS.nonce]: nonce,
    [RELAY_REQUEST_HEADERS.signature]: base64urlEncode(
      nobleBackend.ed25519Sign(options.seed ?? relay.seed, input),
    ),
  };
}

export function signed<T = Record<string, unknown>>(
  relay: Relay,
  path: string,
  body: unknown,
  options: SignOptions = {},
): Promise<CallResult<T>> {
  const raw = JSON.stringify(body);
  return call<T>(path, { raw, address: relay.address, headers: signedHeaders(relay, path, raw, options) });
}
