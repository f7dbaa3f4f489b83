import { randomFillSync } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { EventEmitter } from "node:events";
import type { Channel } from "../../protocol/channels/channel.ts";
import type { CryptoBackend, KeyPair, RandomSource } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import type { RekeyLimits } from "../../protocol/transport/transport-session.ts";
import {
  decodeRelayFrame,
  isForwardFor,
  type ObservedAddress,
  RELAY_HEADER_LEN,
  RelayFrameType,
  Role,
} from "../../protocol/wire/relay-frames.ts";
import { PROTOCOL_VERSION, SESSION_ID_LEN } from "../../protocol/wire/version.ts";
import {
  DEFAULT_LINK_TIMING,
  type EstablishedInfo,
  LinkCore,
  type LinkCoreEvents,
  type LinkFailure,
  type LinkTiming,
} from "./link-core.ts";
import { directPath, type PeerPath, RELAY_PATH } from "./paths.ts";
import { RelayBinder, type RelayFailure, type RelayTiming } from "./relay-binder.ts";

/** A relay assigned by signaling (`relay.assigned`): where it is and this peer's own lease for it. */
export interface RelayAssignment {
  readonly address: string;
  readonly port: number;
  /** This peer's lease (compact JWS); its role and session id must be this link's. */
  readonly lease: string;
  /**
   * The device's Ed25519 private key (32-byte seed), the lease's `cnf`, which signs the LEASE_PRESENT proof; or a
   * function signing with it (a DeviceIdentity's `sign`), so a daemon never has to take the seed out.
   */
  readonly signingKey: Uint8Array | ((message: Uint8Array) => Uint8Array);
}

/** A UDP address. */
export interface UdpAddress {
  readonly address: string;
  readonly port: number;
}

/** Options common to both sides. */
export interface PeerLinkOptions {
  /** The session id chosen by the edge (16 bytes); bound into the Noise prologue and every relay frame. */
  readonly sessionId: Uint8Array;
  /** This device's X25519 key pair. */
  readonly staticKeyPair: KeyPair;
  /**
   * Accepts the peer's static key only if it is the key the edge published for the expected device and the local
   * trust store holds. A refusal fails only that datagram; the link fails with `remote-static-rejected` at timeout.
   */
  readonly verifyRemoteStatic: (remoteStaticKey: Uint8Array) => boolean;
  /** Client: the host's direct candidates (literal `ip:port` from signaling). */
  readonly candidates?: readonly UdpAddress[];
  /** The relay, when signaling assigned one before the link starts (later ones: {@link PeerLink.useRelay}). */
  readonly relay?: RelayAssignment;
  /** Local socket address; default 0.0.0.0 on an ephemeral port. Ignored with `socket`. */
  readonly bind?: Partial<UdpAddress>;
  /**
   * An already bound udp4 socket the link takes over (and closes): a daemon binds it before it publishes the
   * port as a candidate, so no other process can take the port in between.
   */
  readonly socket?: Socket;
  /** Encrypted handshake payload (e.g. the device id), at most 256 bytes. */
  readonly payload?: Uint8Array;
  readonly limits?: RekeyLimits;
  readonly timing?: Partial<LinkTiming>;
  readonly relayTiming?: RelayTiming;
  /** Milliseconds, monotonic; default `performance.now()`. */
  readonly clock?: { nowMs(): number };
  readonly backend?: CryptoBackend;
  readonly random?: RandomSource;
  /** How often timers are checked; default 25 ms. */
  readonly tickMs?: number;
}

/** Events of a {@link PeerLink}. */
export interface PeerLinkEvents {
  established: [info: EstablishedInfo];
  data: [channel: Channel, body: Uint8Array];
  pathChanged: [path: PeerPath];
  failed: [reason: LinkFailure];
  /** The relay bound this peer (`peerBound`: the other one too); `observed` is a direct-path candidate. */
  relayBound: [peerBound: boolean, observed: ObservedAddress];
  /** The relay refused the lease for good; a fresh assignment is needed (the direct path may still work). */
  relayFailed: [reason: RelayFailure];
}

const nodeRandom: RandomSource = (length) => randomFillSync(new Uint8Array(length));
const monotonic = { nowMs: () => performance.now() };

function isRelayType(type: number | undefined): boolean {
  return type !== undefined && type >= 0x10 && type <= 0x17;
}

/**
 * One peer link: one UDP socket per session, the Noise XX handshake with retransmission, direct paths first and
 * the relay as fallback, keepalives, rekey and recovery. Create with {@link PeerLink.client} or
 * {@link PeerLink.host}; `send` takes a plaintext whose first byte is the channel (protocol/channels/channel.ts).
 */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly #socket: Socket;
  readonly #core: LinkCore;
  readonly #clock: { nowMs(): number };
  #relay: RelayAssignment | null = null;
  #binder: RelayBinder | null = null;
  readonly #role: "client" | "host";
  readonly #backend: CryptoBackend;
  readonly #random: RandomSource;
  readonly #relayTiming: RelayTiming | undefined;
  /** The FORWARD header is the same for every datagram of the session: built once, sent as a gather buffer. */
  readonly #forwardHeader = new Uint8Array(RELAY_HEADER_LEN);
  /** Node copies the list on send, so one array serves every FORWARD. */
  readonly #gather: Uint8Array[] = [this.#forwardHeader, this.#forwardHeader];
  readonly #sessionId: Uint8Array;
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  #socketClosed: Promise<void> | null = null;

  private constructor(role: "client" | "host", options: PeerLinkOptions, socket: Socket) {
    super();
    if (options.sessionId.length !== SESSION_ID_LEN) throw new RangeError("sessionId must be 16 bytes");
    this.#socket = socket;
    this.#sessionId = options.sessionId.slice();
    this.#clock = options.clock ?? monotonic;
    this.#role = role;
    this.#relayTiming = options.relayTiming;
    this.#forwardHeader[0] = PROTOCOL_VERSION;
    this.#forwardHeader[1] = RelayFrameType.Forward;
    this.#forwardHeader.set(this.#sessionId, 4);
    const backend = options.backend ?? nodeBackend;
    const random = options.random ?? nodeRandom;
    this.#backend = backend;
    this.#random = random;
    const candidates = (options.candidates ?? []).map((c) => directPath(c.address, c.port));
    const events: LinkCoreEvents = {
      established: (info) => this.emit("established", info),
      data: (channel, body) => this.emit("data", channel, body),
      pathChanged: (path) => this.emit("pathChanged", path),
      failed: (reason) => {
        this.#shutdown();
        void this.#closeSocket();
        this.emit("failed", reason);
      },
    };
    this.#core = new LinkCore({
      role,
      backend,
      random,
      staticKeyPair: options.staticKeyPair,
      sessionId: this.#sessionId,
      verifyRemoteStatic: options.verifyRemoteStatic,
      timing: { ...DEFAULT_LINK_TIMING, ...options.timing },
      send: (datagram, path) => this.#sendPeer(datagram, path),
      initPaths: () => (this.#binder?.forwarding === true ? [...candidates, RELAY_PATH] : candidates),
      events,
      ...(options.payload !== undefined && { payload: options.payload }),
      ...(options.limits !== undefined && { limits: options.limits }),
    });
    const now = this.#clock.nowMs();
    if (options.relay !== undefined) this.#bindRelay(options.relay, now);
    socket.on("message", this.#onMessage);
    // Send errors (an unreachable candidate, a vanished interface) must not kill the session: other paths remain.
    socket.on("error", () => this.#core.countDrop("socket-error"));
    this.#core.start(now);
    this.#timer = setInterval(() => this.#tick(), options.tickMs ?? 25);
  }

  /** The client side (Noise initiator): binds its socket and starts the handshake on every path. */
  static client(options: PeerLinkOptions): Promise<PeerLink> {
    return PeerLink.#open("client", options);
  }

  /** The host side (Noise responder): binds its socket and waits for the client's INIT. */
  static host(options: PeerLinkOptions): Promise<PeerLink> {
    return PeerLink.#open("host", options);
  }

  static #open(role: "client" | "host", options: PeerLinkOptions): Promise<PeerLink> {
    const given = options.socket;
    if (given !== undefined) {
      try {
        return Promise.resolve(new PeerLink(role, options, given));
      } catch (error) {
        given.close();
        return Promise.reject(error);
      }
    }
    const socket = createSocket("udp4");
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(options.bind?.port ?? 0, options.bind?.address ?? "0.0.0.0", () => {
        socket.off("error", reject);
        try {
          resolve(new PeerLink(role, options, socket));
        } catch (error) {
          socket.close();
          reject(error);
        }
      });
    });
  }

  /**
   * Takes a relay assigned after the link started (a fallback the client asked for, or a fresh assignment after
   * `relayFailed`): presents its lease at once and, once both peers are bound, offers the relay as a path. A
   * previous relay binding is dropped. Ignored after close.
   */
  useRelay(relay: RelayAssignment): void {
    if (this.#closed) return;
    this.#bindRelay(relay, this.#clock.nowMs());
  }

  #bindRelay(relay: RelayAssignment, now: number): void {
    const backend = this.#backend;
    this.#relay = relay;
    this.#binder = new RelayBinder(
      {
        sessionId: this.#sessionId,
        role: this.#role === "host" ? Role.Host : Role.Client,
        lease: relay.lease,
        sign: (message) =>
          typeof relay.signingKey === "function"
            ? relay.signingKey(message)
            : backend.ed25519Sign(relay.signingKey, message),
        random: this.#random,
        send: (datagram) => this.#sendRaw(datagram, relay.port, relay.address),
        onBound: (peerBound, observed) => {
          // A replaced binder's late callbacks must not speak for the current relay.
          if (this.#relay !== relay) return;
          this.emit("relayBound", peerBound, observed);
          if (peerBound) this.#core.relayReady(this.#clock.nowMs());
        },
        onFailed: (reason) => {
          if (this.#relay === relay) this.emit("relayFailed", reason);
        },
        ...(this.#relayTiming !== undefined && { timing: this.#relayTiming }),
      },
      now,
    );
  }

  /** The local socket address (a candidate to publish for the direct path). */
  get localAddress(): UdpAddress {
    const { address, port } = this.#socket.address();
    return { address, port };
  }

  get status(): "handshaking" | "established" | "failed" | "closed" {
    return this.#core.status;
  }

  /** The path the last authenticated datagram arrived on, or null before the handshake. */
  get activePath(): PeerPath | null {
    return this.#core.activePath;
  }

  /** Completed rekeys. */
  get rekeys(): number {
    return this.#core.rekeys;
  }

  /** Times the relay binding was lost and re-presented (relay restart, missed PONGs). */
  get relayRebinds(): number {
    return this.#binder?.rebinds ?? 0;
  }

  /** Host handshakes given up to make room for newer INITs (a flood indicator). */
  get responderEvictions(): number {
    return this.#core.responderEvictions;
  }

  /** Dropped datagrams by reason (metric labels). */
  get drops(): ReadonlyMap<string, number> {
    return this.#core.drops;
  }

  /** Encrypts and sends one plaintext (channel byte first); false when the link is not established. */
  send(plaintext: Uint8Array): boolean {
    if (this.#closed) return false;
    return this.#core.send(plaintext, this.#clock.nowMs());
  }

  /** Stops timers and closes the socket. Idempotent. */
  close(): Promise<void> {
    this.#shutdown();
    this.#core.close();
    return this.#closeSocket();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#socket.off("message", this.#onMessage);
  }

  #closeSocket(): Promise<void> {
    this.#socketClosed ??= new Promise((resolve) => this.#socket.close(() => resolve()));
    return this.#socketClosed;
  }

  #tick(): void {
    const now = this.#clock.nowMs();
    this.#binder?.tick(now);
    this.#core.tick(now);
  }

  readonly #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const now = this.#clock.nowMs();
    if (!isRelayType(msg[1])) {
      this.#core.receive(msg, rinfo.address, rinfo.port, now);
      return;
    }
    const relay = this.#relay;
    const binder = this.#binder;
    // Relay frames count only from the relay's own address; anything else claiming to be one is noise.
    if (relay === null || binder === null || rinfo.port !== relay.port || rinfo.address !== relay.address) {
      this.#core.countDrop("not-relay");
      return;
    }
    // The hot path (every relayed datagram): a FORWARD for this session, checked in place (only the payload view
    // is allocated, where the full decode built five objects per datagram).
    if (isForwardFor(msg, this.#sessionId)) {
      this.#core.receive(msg.subarray(RELAY_HEADER_LEN), null, 0, now);
      return;
    }
    const decoded = decodeRelayFrame(msg);
    if (!decoded.ok) {
      this.#core.countDrop(`relay-${decoded.error}`);
      return;
    }
    const frame = decoded.value;
    // A well-formed FORWARD for another session: not ours, dropped without a word (as before the fast path).
    if (frame.type === RelayFrameType.Forward) return;
    binder.handle(frame, now);
  };

  #sendPeer(datagram: Uint8Array, path: PeerPath): void {
    if (path.kind === "direct") {
      this.#sendRaw(datagram, path.port, path.address);
      return;
    }
    const relay = this.#relay;
    // Before the relay bound us a FORWARD would only earn an UNKNOWN_SESSION reject.
    if (relay === null || this.#binder?.state.kind !== "bound") return;
    this.#gather[1] = datagram;
    this.#sendRaw(this.#gather, relay.port, relay.address);
  }

  #sendRaw(datagram: Uint8Array | readonly Uint8Array[], port: number, address: string): void {
    if (this.#closed) return;
    this.#socket.send(datagram, port, address);
  }
}
