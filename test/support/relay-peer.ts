import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import type { AddressInfo } from "node:net";
import type { Decoded } from "../../protocol/wire/decode.ts";
import {
  decodeRelayFrame,
  encodeHello,
  encodeLeasePresent,
  type RelayFrame,
  RelayFrameType,
  type Role,
} from "../../protocol/wire/relay-frames.ts";
import { type Ed25519Pair, leaseProof } from "./relay-lease-kit.ts";

/**
 * One endpoint's view of the relay in tests: a UDP socket on 127.0.0.1 with a receive queue, and the relay
 * handshake steps (HELLO -> CHALLENGE, LEASE_PRESENT -> LEASE_ACK | LEASE_REJECT).
 */
export class RelayPeer {
  private readonly queue: Buffer[] = [];
  private readonly waiters: ((datagram: Buffer) => void)[] = [];

  private constructor(
    readonly socket: Socket,
    readonly relay: AddressInfo,
  ) {
    socket.on("message", (datagram) => {
      const waiter = this.waiters.shift();
      if (waiter === undefined) this.queue.push(datagram);
      else waiter(datagram);
    });
  }

  static open(relay: AddressInfo): Promise<RelayPeer> {
    const socket = createSocket("udp4");
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => resolve(new RelayPeer(socket, relay)));
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(datagram: Uint8Array): void {
    this.socket.send(datagram, this.relay.port, "127.0.0.1");
  }

  /** The next datagram, or a rejection after `timeoutMs`. */
  next(timeoutMs = 2000): Promise<Buffer> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`no datagram within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (datagram: Buffer) => {
        clearTimeout(timer);
        resolve(datagram);
      };
      this.waiters.push(waiter);
    });
  }

  /** The next datagram decoded as a relay frame (fails the test if it is not one). */
  async nextFrame(timeoutMs = 2000): Promise<RelayFrame> {
    const decoded: Decoded<RelayFrame> = decodeRelayFrame(await this.next(timeoutMs));
    if (!decoded.ok) throw new Error(`relay sent an undecodable frame (${decoded.error})`);
    return decoded.value;
  }

  /** Resolves true when nothing arrives for `ms` (a dropped datagram gets no answer). */
  async silentFor(ms: number): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  /** HELLO -> CHALLENGE; returns the cookie. */
  async hello(sessionId: Uint8Array, role: Role): Promise<Uint8Array> {
    const nonce = randomBytes(16);
    this.send(encodeHello(sessionId, role, nonce));
    const frame = await this.nextFrame();
    if (frame.type !== RelayFrameType.Challenge)
      throw new Error(`expected CHALLENGE, got type ${frame.type}`);
    if (Buffer.compare(frame.clientNonce, nonce) !== 0) throw new Error("CHALLENGE echoes another nonce");
    return Uint8Array.from(frame.cookie);
  }

  /** The LEASE_PRESENT datagram this peer would send (exposed so tests can replay it from elsewhere). */
  presentFrame(
    sessionId: Uint8Array,
    role: Role,
    lease: string,
    cnf: Ed25519Pair,
    cookie: Uint8Array,
  ): Uint8Array {
    const leaseBytes = Buffer.from(lease, "latin1");
    const proof = leaseProof(cnf.privateKey, sessionId, role, cookie, leaseBytes);
    return encodeLeasePresent(sessionId, role, cookie, proof, leaseBytes);
  }

  /** HELLO, then LEASE_PRESENT; returns the relay's answer (LEASE_ACK or LEASE_REJECT). */
  async present(sessionId: Uint8Array, role: Role, lease: string, cnf: Ed25519Pair): Promise<RelayFrame> {
    const cookie = await this.hello(sessionId, role);
    this.send(this.presentFrame(sessionId, role, lease, cnf, cookie));
    return this.nextFrame();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
