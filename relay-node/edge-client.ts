import {
  type RelayControlResponse,
  type RelayHeartbeatRequest,
  type RelayRegisterRequest,
  relayControlResponse,
} from "../protocol/relay/registry-messages.ts";
import { RELAY_REQUEST_HEADERS, relayRequestSigningInput } from "../protocol/relay/signed-request.ts";
import type { Clock } from "./clock.ts";
import type { RelayIdentity } from "./identity.ts";

/**
 * The relay's three calls to the edge (issue 4: relay registry), each a POST with a JSON body signed by the relay
 * key over method, path, timestamp, nonce and body hash (protocol/relay/signed-request.ts). Answers are bounded in
 * size and time and checked against the shared schemas before anything uses them.
 */
export const EDGE_PATHS = {
  enroll: "/v1/relays/enroll",
  register: "/v1/relays/register",
  heartbeat: "/v1/relays/heartbeat",
} as const;

/** Why a call to the edge failed. */
export type EdgeFailureKind =
  /** No answer: network error, timeout, DNS. */
  | "unreachable"
  /** The edge answered 4xx: it refuses this request as sent (not enrolled, bad token, banned…). */
  | "refused"
  /** 5xx, an oversized or invalid body, or an answer for another relay. */
  | "bad-response";

/** A value, or a failure with the HTTP status and the edge's error code when there was an answer. */
export type EdgeResult<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly kind: EdgeFailureKind;
      readonly status: number | null;
      /** The edge's error code (`{ error: { code } }`), if it sent one. */
      readonly code: string | null;
    };

/** Where the edge is, who signs, and the clock and randomness for timestamps and nonces. */
export interface EdgeClientOptions {
  readonly edgeUrl: URL;
  readonly identity: RelayIdentity;
  readonly clock: Clock;
  readonly random: (length: number) => Uint8Array;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

/** Control responses carry at most 5000 CIDRs and 16 certificates: 1 MiB is far above any honest answer. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const NONCE_BYTES = 18;

async function readBounded(response: Response): Promise<string | null> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_RESPONSE_BYTES) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function errorCode(body: unknown): string | null {
  if (typeof body !== "object" || body === null || !("error" in body)) return null;
  const error = body.error;
  if (typeof error !== "object" || error === null || !("code" in error)) return null;
  return typeof error.code === "string" ? error.code.slice(0, 64) : null;
}

/** Signed calls to the edge's relay API. */
export class EdgeClient {
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  /** Aborts requests in flight at shutdown, so a hung edge never delays a stop. */
  private readonly closing = new AbortController();

  constructor(private readonly options: EdgeClientOptions) {
    this.fetch = options.fetch ?? fetch;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Aborts every request in flight; later requests fail as unreachable. */
  close(): void {
    this.closing.abort();
  }

  /** Binds this key to the one-time enrollment token. */
  async enroll(enrollmentToken: string): Promise<EdgeResult<null>> {
    const result = await this.post(EDGE_PATHS.enroll, {
      enrollmentToken,
      publicKey: this.options.identity.publicKeyText,
    });
    return result.ok ? { ok: true, value: null } : result;
  }

  register(body: RelayRegisterRequest): Promise<EdgeResult<RelayControlResponse>> {
    return this.control(EDGE_PATHS.register, body);
  }

  heartbeat(body: RelayHeartbeatRequest): Promise<EdgeResult<RelayControlResponse>> {
    return this.control(EDGE_PATHS.heartbeat, body);
  }

  private async control(path: string, body: object): Promise<EdgeResult<RelayControlResponse>> {
    const result = await this.post(path, body);
    if (!result.ok) return result;
    const parsed = relayControlResponse.safeParse(result.value);
    if (!parsed.success || parsed.data.relayId !== this.options.identity.relayId) {
      return { ok: false, kind: "bad-response", status: 200, code: null };
    }
    return { ok: true, value: parsed.data };
  }

  private async post(path: string, body: object): Promise<EdgeResult<unknown>> {
    const { identity, clock, random, edgeUrl } = this.options;
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const timestampMs = clock.nowMs();
    const nonce = Buffer.from(random(NONCE_BYTES)).toString("base64url");
    const signature = identity.sign(
      relayRequestSigningInput({ method: "POST", path, timestampMs, nonce, body: bytes }),
    );
    let response: Response;
    try {
      response = await this.fetch(new URL(path, edgeUrl), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [RELAY_REQUEST_HEADERS.relayId]: identity.relayId,
          [RELAY_REQUEST_HEADERS.timestamp]: String(timestampMs),
          [RELAY_REQUEST_HEADERS.nonce]: nonce,
          [RELAY_REQUEST_HEADERS.signature]: Buffer.from(signature).toString("base64url"),
        },
        body: bytes,
        redirect: "error",
        signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.closing.signal]),
      });
    } catch {
      return { ok: false, kind: "unreachable", status: null, code: null };
    }
    let text: string | null;
    try {
      text = await readBounded(response);
    } catch {
      return { ok: false, kind: "unreachable", status: response.status, code: null };
    }
    let json: unknown = null;
    try {
      json = text === null || text === "" ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    if (response.status >= 200 && response.status < 300 && text !== null) return { ok: true, value: json };
    const kind = response.status >= 400 && response.status < 500 ? "refused" : "bad-response";
    return { ok: false, kind, status: response.status, code: errorCode(json) };
  }
}
