import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { NoiseCipherState, NoiseHandshakeState, NoiseLib } from "noise-c.wasm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type CryptoBackend,
  generateX25519KeyPair,
  type RandomSource,
} from "../../protocol/crypto/backend.ts";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { CipherState } from "../../protocol/noise/cipher-state.ts";
import { NoiseError } from "../../protocol/noise/errors.ts";
import { HandshakeState, type TransportCiphers } from "../../protocol/noise/handshake-state.ts";

/**
 * Interop with an independent Noise implementation: rweather/noise-c, compiled to wasm (noise-c.wasm).
 * The cacophony vectors pin our output byte for byte; this pins that a live peer we did not write agrees.
 */

const PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const NPM_HINT = "noise-c.wasm (a dev dependency) could not be loaded: run `npm install`";
const random: RandomSource = (n) => new Uint8Array(randomBytes(n));
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const PROLOGUE = text("wavry/interop/v1");
// Distinct payloads, one per XX message, so a dropped or swapped payload shows up.
const PAYLOADS = [text("-> e"), text("<- e, ee, s, es"), text("-> s, se")];
// Transport plaintext sizes: empty (tag only), tiny, odd, and larger than a ChaCha block several times.
const TRANSPORT_SIZES = [0, 1, 333, 1000];

let noise: NoiseLib;

/**
 * noise-c.wasm calls back once the wasm is instantiated and never calls back if that fails, so a
 * timeout and onAbort turn a broken install into a loud failure instead of a hang.
 */
async function loadNoiseC(): Promise<NoiseLib> {
  let createNoise: typeof import("noise-c.wasm").default;
  let wasmBinary: Uint8Array;
  try {
    createNoise = (await import("noise-c.wasm")).default;
    // Handing over the bytes skips the Emscripten glue's fetch() of a file path, which fails on Node 20.
    const entry = createRequire(import.meta.url).resolve("noise-c.wasm");
    wasmBinary = readFileSync(path.join(path.dirname(entry), "noise-c.wasm"));
  } catch (error) {
    throw new Error(`${NPM_HINT} (${String(error)})`);
  }
  // The glue installs process-wide handlers on load (unhandledRejection calls process.exit(1)); they
  // would take down the vitest worker, so we remove whatever it added.
  const uncaught = process.listeners("uncaughtException");
  const rejected = process.listeners("unhandledRejection");
  try {
    return await new Promise<NoiseLib>((resolve, reject) => {
      const fail = (reason: unknown) => reject(new Error(`${NPM_HINT} (${String(reason)})`));
      const timer = setTimeout(() => fail("the wasm did not initialise within 20 s"), 20_000);
      try {
        createNoise({ wasmBinary, onAbort: fail }, (lib) => {
          clearTimeout(timer);
          resolve(lib);
        });
      } catch (error) {
        clearTimeout(timer);
        fail(error);
      }
    });
  } finally {
    for (const listener of process.listeners("uncaughtException")) {
      if (!uncaught.includes(listener)) process.removeListener("uncaughtException", listener);
    }
    for (const listener of process.listeners("unhandledRejection")) {
      if (!rejected.includes(listener)) process.removeListener("unhandledRejection", listener);
    }
  }
}

beforeAll(async () => {
  noise = await loadNoiseC();
});

/** Our handshake against noise-c's, each with its own freshly generated static key. */
function startPair(
  backend: CryptoBackend,
  oursInitiator: boolean,
  ourPrologue: Uint8Array,
  theirPrologue: Uint8Array,
) {
  const { constants } = noise;
  const ourStatic = generateX25519KeyPair(backend, random);
  const [theirPrivate, theirPublic] = noise.CreateKeyPair(constants.NOISE_DH_CURVE25519);
  const ours = new HandshakeState({
    backend,
    protocolName: PROTOCOL,
    initiator: oursInitiator,
    prologue: ourPrologue,
    staticKeyPair: ourStatic,
    random,
  });
  const role = oursInitiator ? constants.NOISE_ROLE_RESPONDER : constants.NOISE_ROLE_INITIATOR;
  const theirs = new noise.HandshakeState(PROTOCOL, role);
  theirs.Initialize(theirPrologue, theirPrivate);
  return { ours, theirs, ourStatic, theirPrivate, theirPublic };
}

/**
 * Runs the three XX messages in turn, each written by one side and read by the other. Every payload
 * read is pushed to `received`, so a caller whose handshake throws can see how far it got.
 */
function runHandshake(ours: HandshakeState, theirs: NoiseHandshakeState, oursInitiator: boolean) {
  const received: Uint8Array[] = [];
  const step = () => {
    const index = received.length;
    const payload = PAYLOADS[index] as Uint8Array;
    const oursWrites = (index % 2 === 0) === oursInitiator;
    // noise-c returns the payload only when asked to (payloadNeeded = true).
    received.push(
      oursWrites
        ? theirs.ReadMessage(ours.writeMessage(payload), true)
        : ours.readMessage(theirs.WriteMessage(payload)),
    );
  };
  return { received, step };
}

/** Sends messages both ways, interleaved, so each direction's nonce has to advance in step. */
function checkTransport(
  ours: TransportCiphers,
  [theirSend, theirReceive]: [NoiseCipherState, NoiseCipherState],
) {
  expect(ours.send).toBeInstanceOf(CipherState);
  expect(ours.receive).toBeInstanceOf(CipherState);
  const send = ours.send as CipherState;
  const receive = ours.receive as CipherState;
  TRANSPORT_SIZES.forEach((size, i) => {
    // Alternate empty and non-empty associated data: both sides must authenticate it identically.
    const ad = i % 2 === 0 ? new Uint8Array(0) : text(`ad-${i}`);
    const outbound = random(size);
    const sealed = send.encryptWithAd(ad, outbound);
    expect(sealed.length).toBe(size + 16);
    expect(theirReceive.DecryptWithAd(ad, sealed)).toEqual(outbound);
    const inbound = random(size);
    expect(receive.decryptWithAd(ad, theirSend.EncryptWithAd(ad, inbound))).toEqual(inbound);
  });
}

function thrownBy(fn: () => void): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe.each([nobleBackend, nodeBackend] as CryptoBackend[])(
  "interop with noise-c on the $name backend",
  (backend) => {
    describe.each([
      { label: "ours initiator, noise-c responder", oursInitiator: true },
      { label: "noise-c initiator, ours responder", oursInitiator: false },
    ])("$label", ({ oursInitiator }) => {
      it("completes XX with payloads, agrees on hash and static keys, and carries transport both ways", () => {
        const pair = startPair(backend, oursInitiator, PROLOGUE, PROLOGUE);
        const { theirs } = pair;
        // Both implementations derive the same public key from noise-c's private key.
        expect(backend.x25519PublicKey(pair.theirPrivate)).toEqual(pair.theirPublic);

        const { received, step } = runHandshake(pair.ours, theirs, oursInitiator);
        for (let i = 0; i < PAYLOADS.length; i++) step();
        expect(received).toEqual(PAYLOADS);
        expect(pair.ours.status).toBe("finished");
        expect(theirs.GetAction()).toBe(noise.constants.NOISE_ACTION_SPLIT);

        // noise-c's Split() frees the handshake, so read its hash and remote key first.
        const theirHash = theirs.GetHandshakeHash();
        expect(theirs.GetRemotePublicKey()).toEqual(pair.ourStatic.publicKey);
        const theirCiphers = theirs.Split();
        try {
          const ours = pair.ours.split();
          expect(theirHash.length).toBe(32);
          expect(ours.handshakeHash).toEqual(theirHash);
          expect(ours.remoteStaticKey).toEqual(pair.theirPublic);
          checkTransport(ours, theirCiphers);
        } finally {
          for (const cipher of theirCiphers) cipher.free();
        }
      });

      it("fails on the first encrypted message when the prologues differ", () => {
        const pair = startPair(backend, oursInitiator, PROLOGUE, text("wavry/interop/v2"));
        const { received, step } = runHandshake(pair.ours, pair.theirs, oursInitiator);
        // Message 1 (-> e) carries its payload in clear, so it still goes through.
        step();
        expect(received).toEqual([PAYLOADS[0]]);
        // Message 2 is the first encrypted one, and its AD is the handshake hash, which starts from the
        // prologue: the reader must reject it.
        const error = thrownBy(step);
        if (oursInitiator) {
          expect(error).toBeInstanceOf(NoiseError);
          expect((error as NoiseError).code).toBe("decrypt-failed");
          pair.theirs.free();
        } else {
          // noise-c reports errors as Error(<constant name>) and has already freed its handshake.
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message).toBe("NOISE_ERROR_MAC_FAILURE");
        }
        expect(received).toHaveLength(1);
      });
    });
  },
);
