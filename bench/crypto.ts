/**
 * `npm run bench:crypto`: crypto figures measured side by side in one run.
 *
 *  - full Noise_XX peer-link handshakes per second (framing, both parties, fresh ephemerals), per backend;
 *  - transport seal+open per second of 1200-byte payloads through our session layer (seal, decode, replay
 *    check, open) against a raw node:crypto ChaCha20-Poly1305 seal+open loop of the same size, with the ratio.
 *
 * Rounds alternate between the contenders and the median round counts, so a busy moment hits both alike.
 * The last line is one JSON object with every figure.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from "node:crypto";
import { constantTimeEqual } from "../protocol/bytes.ts";
import { type CryptoBackend, generateX25519KeyPair, type RandomSource } from "../protocol/crypto/backend.ts";
import { nobleBackend } from "../protocol/crypto/noble-backend.ts";
import { nodeBackend } from "../protocol/crypto/node-backend.ts";
import { InitiatorHandshake, ResponderHandshake } from "../protocol/transport/peer-handshake.ts";
import { TransportSession } from "../protocol/transport/transport-session.ts";
import { decodePeerFrame, PeerFrameType } from "../protocol/wire/peer-frames.ts";

const random: RandomSource = (n) => randomFillSync(new Uint8Array(n));
const PAYLOAD = 1200;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 400);

/** Runs `op` repeatedly for about `ms` and returns operations per second. */
function rate(op: () => void, ms: number): number {
  let count = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 16; i++) op();
    count += 16;
    now = performance.now();
  }
  return (count * 1000) / (now - start);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function handshakeOnce(
  backend: CryptoBackend,
  client: ReturnType<typeof generateX25519KeyPair>,
  host: typeof client,
): void {
  const sessionId = random(16);
  const initiator = new InitiatorHandshake({
    backend,
    random,
    staticKeyPair: client,
    sessionId,
    localIndex: 1,
    verifyRemoteStatic: (k) => constantTimeEqual(k, host.publicKey),
  });
  const responder = new ResponderHandshake({
    backend,
    random,
    staticKeyPair: host,
    sessionId,
    localIndex: 2,
    verifyRemoteStatic: (k) => constantTimeEqual(k, client.publicKey),
  });
  const init = decodePeerFrame(initiator.start());
  if (!init.ok || init.value.type !== PeerFrameType.HandshakeInit) throw new Error("init");
  const resp = responder.handleInit(init.value);
  if (typeof resp === "string") throw new Error(resp);
  const respFrame = decodePeerFrame(resp);
  if (!respFrame.ok || respFrame.value.type !== PeerFrameType.HandshakeResponse) throw new Error("resp");
  const done = initiator.handleResponse(respFrame.value, 0);
  if (typeof done === "string") throw new Error(done);
  const fin = decodePeerFrame(done.final);
  if (!fin.ok || fin.value.type !== PeerFrameType.HandshakeFinal) throw new Error("final");
  if (typeof responder.handleFinal(fin.value, 0) === "string") throw new Error("responder");
}

function sessionPair(backend: CryptoBackend): { sender: TransportSession; receiver: TransportSession } {
  const a = random(32);
  const b = random(32);
  const common = {
    backend,
    establishedAt: 0,
    handshakeHash: new Uint8Array(32),
    remoteStaticKey: new Uint8Array(32),
  };
  return {
    sender: new TransportSession({ ...common, sendKey: a, receiveKey: b, localIndex: 1, remoteIndex: 2 }),
    receiver: new TransportSession({ ...common, sendKey: b, receiveKey: a, localIndex: 2, remoteIndex: 1 }),
  };
}

function sessionSealOpen(backend: CryptoBackend): () => void {
  const { sender, receiver } = sessionPair(backend);
  const payload = random(PAYLOAD);
  return () => {
    const datagram = sender.seal(payload, 0);
    const frame = decodePeerFrame(datagram);
    if (!frame.ok || frame.value.type !== PeerFrameType.Data) throw new Error("decode");
    const opened = receiver.open(frame.value, 0);
    if (typeof opened === "string") throw new Error(opened);
  };
}

/** The floor: node:crypto ChaCha20-Poly1305 seal then open, same sizes, nonce and AD, nothing else. */
function rawSealOpen(): () => void {
  const key = random(32);
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  const ad = random(16);
  const payload = random(PAYLOAD);
  let counter = 0;
  return () => {
    view.setUint32(4, counter++, true);
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    cipher.setAAD(ad, { plaintextLength: payload.length });
    const body = cipher.update(payload);
    cipher.final();
    const tag = cipher.getAuthTag();
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    decipher.setAuthTag(tag);
    decipher.setAAD(ad, { plaintextLength: body.length });
    decipher.update(body);
    decipher.final();
  };
}

const log = (line: string) => process.stdout.write(`${line}\n`);
log(`node ${process.version}, ${ROUNDS} rounds of ${ROUND_MS} ms each, medians reported`);

const keys = {
  node: {
    client: generateX25519KeyPair(nodeBackend, random),
    host: generateX25519KeyPair(nodeBackend, random),
  },
  noble: {
    client: generateX25519KeyPair(nobleBackend, random),
    host: generateX25519KeyPair(nobleBackend, random),
  },
};
const handshakes = { node: [] as number[], noble: [] as number[] };
const transport = { sessionNode: [] as number[], raw: [] as number[], sessionNoble: [] as number[] };
const ops = {
  sessionNode: sessionSealOpen(nodeBackend),
  raw: rawSealOpen(),
  sessionNoble: sessionSealOpen(nobleBackend),
};
// Warm-up: let the JIT settle before the rounds that count.
rate(() => handshakeOnce(nodeBackend, keys.node.client, keys.node.host), 200);
rate(ops.sessionNode, 200);
rate(ops.raw, 200);

for (let round = 0; round < ROUNDS; round++) {
  handshakes.node.push(rate(() => handshakeOnce(nodeBackend, keys.node.client, keys.node.host), ROUND_MS));
  handshakes.noble.push(
    rate(() => handshakeOnce(nobleBackend, keys.noble.client, keys.noble.host), ROUND_MS),
  );
  transport.raw.push(rate(ops.raw, ROUND_MS));
  transport.sessionNode.push(rate(ops.sessionNode, ROUND_MS));
  transport.sessionNoble.push(rate(ops.sessionNoble, ROUND_MS / 2));
}

const figures = {
  handshakesPerSecNode: Math.round(median(handshakes.node)),
  handshakesPerSecNoble: Math.round(median(handshakes.noble)),
  sealOpenPerSecSessionNode: Math.round(median(transport.sessionNode)),
  sealOpenPerSecRawNodeCrypto: Math.round(median(transport.raw)),
  sealOpenPerSecSessionNoble: Math.round(median(transport.sessionNoble)),
  sessionToRawRatio: Number((median(transport.sessionNode) / median(transport.raw)).toFixed(3)),
  payloadBytes: PAYLOAD,
};
const mbps = (pps: number) => ((pps * PAYLOAD * 8) / 1e6).toFixed(0);
log(
  `XX handshakes/s            node ${figures.handshakesPerSecNode}   noble ${figures.handshakesPerSecNoble}   (target >= 1500 on node)`,
);
log(
  `seal+open/s @ ${PAYLOAD} B       session(node) ${figures.sealOpenPerSecSessionNode} (${mbps(figures.sealOpenPerSecSessionNode)} Mbit/s)   raw node:crypto ${figures.sealOpenPerSecRawNodeCrypto}   session(noble) ${figures.sealOpenPerSecSessionNoble}`,
);
log(`session / raw              ${(figures.sessionToRawRatio * 100).toFixed(1)}%   (target >= 70%)`);
log(JSON.stringify(figures));
