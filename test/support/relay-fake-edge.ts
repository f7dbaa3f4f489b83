import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { relayIdFromKey } from "../../protocol/identity/relay-id.ts";
import {
  type RelayControlResponse,
  type RelayHeartbeatRequest,
  type RelayRegisterRequest,
  relayEnrollRequest,
  relayHeartbeatRequest,
  relayRegisterRequest,
} from "../../protocol/relay/registry-messages.ts";
import {
  RELAY_NONCE_PATTERN,
  RELAY_REQUEST_HEADERS,
  RELAY_REQUEST_MAX_SKEW_MS,
  relayRequestSigningInput,
} from "../../protocol/relay/signed-request.ts";

/**
 * A small stand-in for the edge's relay registry (the real one runs in workerd; issue 4), on 127.0.0.1. It checks
 * what the real one must: every request signed by the relay key over the shared signing input, timestamps within
 * the allowed skew, nonces never reused, bodies per the shared zod schemas, one-time enrollment tokens. It answers
 * register and heartbeat with `control`, which tests change to push lease keys, revocations, blocks and states.
 * `pause()` / `resume()` simulate an outage on the same port.
 */
export type FakeEdgeControl = Omit<RelayControlResponse, "relayId">;

/** Requests accepted per route, and refusals. */
export interface FakeEdgeCounts {
  enroll: number;
  register: number;
  heartbeat: number;
  refused: number;
}

const MAX_BODY = 64 * 1024;

function readBody(request: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    request.on("data", (chunk: Buffer) => {
      total += chunk.length;
      if (total > MAX_BODY) resolve(null);
      else chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function ed25519FromX(x: string): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}

/** The fake edge; start with {@link FakeEdge.start}. */
export class FakeEdge {
  readonly counts: FakeEdgeCounts = { enroll: 0, register: 0, heartbeat: 0, refused: 0 };
  /** Why requests were refused, in order (e.g. "bad_signature"). */
  readonly refusals: string[] = [];
  readonly registrations: RelayRegisterRequest[] = [];
  lastHeartbeat: RelayHeartbeatRequest | null = null;
  private readonly relays = new Map<string, KeyObject>();
  private readonly nonces = new Set<string>();
  private readonly tokens: Set<string>;
  private server: Server | null = null;

  private constructor(
    private port: number,
    tokens: readonly string[],
    public control: FakeEdgeControl,
  ) {
    this.tokens = new Set(tokens);
  }

  static async start(options: {
    enrollmentTokens: readonly string[];
    control?: Partial<FakeEdgeControl>;
  }): Promise<FakeEdge> {
    const edge = new FakeEdge(0, options.enrollmentTokens, {
      state: "active",
      heartbeatIntervalMs: 1000,
      leaseKeys: [],
      revokedLeaseKeyIds: [],
      blockedCidrs: [],
      ...options.control,
    });
    await edge.resume();
    return edge;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Whether `relayId` enrolled here. */
  enrolled(relayId: string): boolean {
    return this.relays.has(relayId);
  }

  /** Listens (again) on the same port. */
  resume(): Promise<void> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch(() => this.refuse(response, 500, "bug"));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        this.port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  /** Stops answering: an edge outage. */
  pause(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private refuse(response: ServerResponse, status: number, code: string): void {
    this.counts.refused++;
    this.refusals.push(code);
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify({ error: { code, message: code } }));
  }

  private answer(response: ServerResponse, status: number, body: object): void {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = request.url ?? "";
    if (request.method !== "POST") return this.refuse(response, 405, "method_not_allowed");
    const body = await readBody(request);
    if (body === null) return this.refuse(response, 413, "too_large");
    const header = (name: string) => {
      const value = request.headers[name];
      return typeof value === "string" ? value : "";
    };
    const relayId = header(RELAY_REQUEST_HEADERS.relayId);
    const timestamp = header(RELAY_REQUEST_HEADERS.timestamp);
    const nonce = header(RELAY_REQUEST_HEADERS.nonce);
    const signature = Buffer.from(header(RELAY_REQUEST_HEADERS.signature), "base64url");
    if (!/^\d{1,16}$/.test(timestamp) || !RELAY_NONCE_PATTERN.test(nonce) || signature.length !== 64) {
      return this.refuse(response, 401, "bad_signature_headers");
    }
    if (Math.abs(Date.now() - Number(timestamp)) > RELAY_REQUEST_MAX_SKEW_MS)
      return this.refuse(response, 401, "stale");
    if (this.nonces.has(nonce)) return this.refuse(response, 401, "replayed_nonce");
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      return this.refuse(response, 400, "bad_json");
    }
    const input = relayRequestSigningInput({
      method: "POST",
      path,
      timestampMs: Number(timestamp),
      nonce,
      body,
    });

    if (path === "/v1/relays/enroll") {
      const parsed = relayEnrollRequest.safeParse(json);
      if (!parsed.success) return this.refuse(response, 400, "bad_body");
      const key = ed25519FromX(parsed.data.publicKey);
      if (relayIdFromKey(Buffer.from(parsed.data.publicKey, "base64url")) !== relayId)
        return this.refuse(response, 401, "id_mismatch");
      if (!verify(null, input, key, signature)) return this.refuse(response, 401, "bad_signature");
      this.nonces.add(nonce);
      // As the real edge: an enrolled key gets 409 and the token is not spent.
      if (this.relays.has(relayId)) return this.refuse(response, 409, "conflict");
      if (!this.tokens.delete(parsed.data.enrollmentToken))
        return this.refuse(response, 401, "invalid_token");
      this.relays.set(relayId, key);
      this.counts.enroll++;
      return this.answer(response, 201, { relayId });
    }

    const key = this.relays.get(relayId);
    if (key === undefined) return this.refuse(response, 401, "not_enrolled");
    if (!verify(null, input, key, signature)) return this.refuse(response, 401, "bad_signature");
    this.nonces.add(nonce);
    if (path === "/v1/relays/register") {
      const parsed = relayRegisterRequest.safeParse(json);
      if (!parsed.success) return this.refuse(response, 400, "bad_body");
      this.registrations.push(parsed.data);
      this.counts.register++;
    } else if (path === "/v1/relays/heartbeat") {
      const parsed = relayHeartbeatRequest.safeParse(json);
      if (!parsed.success) return this.refuse(response, 400, "bad_body");
      this.lastHeartbeat = parsed.data;
      this.counts.heartbeat++;
    } else {
      return this.refuse(response, 404, "not_found");
    }
    const answer: RelayControlResponse = { relayId, ...this.control };
    return this.answer(response, 200, answer);
  }
}
