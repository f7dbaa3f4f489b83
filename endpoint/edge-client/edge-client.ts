import { z } from "zod";
import { enrollmentProofMessage, tokenChallengeMessage } from "../../protocol/identity/device-proofs.ts";
import type { Environment } from "../config.ts";
import { toBase64url } from "../identity/device-identity.ts";

/**
 * The endpoint's HTTP client for the edge API (API.md: Users, Devices). Every answer is bounded in size and time
 * and checked against a schema before use. Tokens and passwords go only into request bodies and the
 * Authorization header: never into errors, URLs or logs. https is required in production.
 *
 * There is no edge route that returns another user's device keys: a peer's keys arrive with a session request
 * over signaling (DESIGN.md: Signaling). {@link EdgeClient.listDevices} returns the keys of the caller's own
 * devices, which is what `wavry trust pin` uses.
 */

/** The signing half of a device identity that enrollment and device tokens need. */
export interface DeviceSigner {
  readonly deviceId: string;
  readonly x25519PublicKey: Uint8Array;
  readonly ed25519PublicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** Why a call failed: no answer, a refusal (4xx, with the edge's code and message), or a broken answer. */
export type EdgeErrorKind = "unreachable" | "refused" | "bad-response";

/** A failed edge call. The message is the edge's own (safe to show) or a description; never a secret. */
export class EdgeError extends Error {
  override readonly name = "EdgeError";
  constructor(
    readonly kind: EdgeErrorKind,
    readonly status: number | null,
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }
}

const MAX_ANSWER_BYTES = 1024 * 1024;
const TIMEOUT_MS = 15_000;

const LoginAnswer = z.object({
  accessToken: z.string().min(1).max(4096),
  refreshToken: z.string().min(1).max(512),
  expiresIn: z.number().int().positive(),
});
const EnrolledAnswer = z.object({ deviceId: z.string(), fingerprint: z.string() });
const CodeAnswer = z.object({ code: z.string().max(64), expiresAt: z.number() });
const ChallengeAnswer = z.object({
  challengeId: z.string().max(64),
  challenge: z.string().max(256),
  expiresAt: z.number(),
});
const TokenAnswer = z.object({
  accessToken: z.string().min(1).max(4096),
  expiresIn: z.number().int().positive(),
});
const DeviceView = z.object({
  deviceId: z.string(),
  name: z.string(),
  fingerprint: z.string(),
  x25519PublicKey: z.string(),
  ed25519PublicKey: z.string(),
  createdAt: z.number(),
  lastSeenAt: z.number().nullable(),
  revoked: z.boolean(),
});
const DevicesAnswer = z.object({ devices: z.array(DeviceView) });
const MeAnswer = z.object({ deviceId: z.string(), userId: z.string(), name: z.string() });
const ErrorAnswer = z.object({ error: z.object({ code: z.string().max(64), message: z.string().max(500) }) });

/** A user session as login and refresh return it. */
export type UserTokens = z.infer<typeof LoginAnswer>;
/** One of the caller's devices (keys as base64url). */
export type DeviceInfo = z.infer<typeof DeviceView>;
/** What a device token says about its device. */
export type DeviceSelf = z.infer<typeof MeAnswer>;

/** Options of {@link EdgeClient}. */
export interface EdgeClientOptions {
  readonly baseUrl: URL;
  readonly environment: Environment;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  /** Epoch milliseconds; defaults to Date.now. */
  readonly now?: () => number;
}

/** A small client for the edge API. Construction refuses plain http in production. */
export class EdgeClient {
  private readonly fetcher: typeof fetch;
  private readonly now: () => number;
  readonly baseUrl: URL;

  constructor(options: EdgeClientOptions) {
    if (options.environment === "production" && options.baseUrl.protocol !== "https:") {
      throw new EdgeError("refused", null, null, "the edge URL must use https:// in production");
    }
    this.baseUrl = options.baseUrl;
    this.fetcher = options.fetch ?? fetch;
    this.now = options.now ?? Date.now;
  }

  /** POST /v1/auth/login. */
  login(email: string, password: string, totpCode?: string): Promise<UserTokens> {
    const body = totpCode === undefined ? { email, password } : { email, password, totpCode };
    return this.call("POST", "/v1/auth/login", { body }, LoginAnswer);
  }

  /** POST /v1/auth/refresh: rotates the refresh token (the old one must never be used again). */
  refresh(refreshToken: string): Promise<UserTokens> {
    return this.call("POST", "/v1/auth/refresh", { body: { refreshToken } }, LoginAnswer);
  }

  /** POST /v1/auth/logout: revokes the session's token family. */
  async logout(accessToken: string, refreshToken: string): Promise<void> {
    await this.call("POST", "/v1/auth/logout", { body: { refreshToken }, token: accessToken }, null);
  }

  /** POST /v1/devices: enrolls `device` for the signed-in user `userId` (the proof binds that user). */
  enrollForUser(accessToken: string, userId: string, device: DeviceSigner, name: string) {
    const body = this.enrollmentBody(device, userId, name);
    return this.call("POST", "/v1/devices", { body, token: accessToken }, EnrolledAnswer);
  }

  /** POST /v1/devices/enroll: enrolls `device` with a one-time code (`code` must already be canonical). */
  enrollWithCode(code: string, device: DeviceSigner, name: string) {
    const body = { code, ...this.enrollmentBody(device, code, name) };
    return this.call("POST", "/v1/devices/enroll", { body }, EnrolledAnswer);
  }

  /** POST /v1/devices/enrollment-codes: a one-time code for a headless host (10 minutes). */
  createEnrollmentCode(accessToken: string) {
    return this.call("POST", "/v1/devices/enrollment-codes", { token: accessToken }, CodeAnswer);
  }

  /** GET /v1/devices: the signed-in user's devices. */
  async listDevices(accessToken: string): Promise<DeviceInfo[]> {
    return (await this.call("GET", "/v1/devices", { token: accessToken }, DevicesAnswer)).devices;
  }

  /** POST /v1/devices/challenge then /v1/devices/token: a device access token for `device`. */
  async deviceToken(device: DeviceSigner): Promise<{ accessToken: string; expiresAt: number }> {
    const started = this.now();
    const challenge = await this.call(
      "POST",
      "/v1/devices/challenge",
      { body: { deviceId: device.deviceId } },
      ChallengeAnswer,
    );
    const bytes = /^[A-Za-z0-9_-]{22,256}$/.test(challenge.challenge)
      ? new Uint8Array(Buffer.from(challenge.challenge, "base64url"))
      : null;
    if (bytes === null) throw new EdgeError("bad-response", 200, null, "the edge sent a malformed challenge");
    const signature = device.sign(
      tokenChallengeMessage({
        challengeId: challenge.challengeId,
        challenge: bytes,
        deviceId: device.deviceId,
      }),
    );
    const token = await this.call(
      "POST",
      "/v1/devices/token",
      { body: { challengeId: challenge.challengeId, signature: toBase64url(signature) } },
      TokenAnswer,
    );
    // Counted from before the request, so network time only makes the token look older than it is.
    return { accessToken: token.accessToken, expiresAt: started + token.expiresIn * 1000 };
  }

  /** GET /v1/devices/me with a device token. */
  deviceSelf(deviceToken: string): Promise<DeviceSelf> {
    return this.call("GET", "/v1/devices/me", { token: deviceToken }, MeAnswer);
  }

  private enrollmentBody(device: DeviceSigner, userIdOrCode: string, name: string) {
    const timestampMs = this.now();
    const proof = device.sign(
      enrollmentProofMessage({
        userIdOrCode,
        x25519Public: device.x25519PublicKey,
        ed25519Public: device.ed25519PublicKey,
        name,
        timestampMs,
      }),
    );
    return {
      name,
      x25519PublicKey: toBase64url(device.x25519PublicKey),
      ed25519PublicKey: toBase64url(device.ed25519PublicKey),
      timestampMs,
      proof: toBase64url(proof),
    };
  }

  private async call<T>(
    method: "GET" | "POST",
    pathname: string,
    options: { readonly body?: unknown; readonly token?: string },
    schema: z.ZodType<T> | null,
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const init: RequestInit = { method, headers, redirect: "error", signal: AbortSignal.timeout(TIMEOUT_MS) };
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response: Response;
    let text: string;
    try {
      response = await this.fetcher(new URL(pathname, this.baseUrl), init);
      text = await response.text();
    } catch (error) {
      const why = error instanceof Error && error.name === "TimeoutError" ? "timed out" : "no answer";
      throw new EdgeError(
        "unreachable",
        null,
        null,
        `the edge at ${this.baseUrl.origin} is unreachable (${why})`,
      );
    }
    if (text.length > MAX_ANSWER_BYTES)
      throw new EdgeError("bad-response", response.status, null, "answer too large");
    let json: unknown = null;
    try {
      json = text === "" ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = ErrorAnswer.safeParse(json);
      const kind = response.status >= 500 ? "bad-response" : "refused";
      if (error.success)
        throw new EdgeError(kind, response.status, error.data.error.code, error.data.error.message);
      throw new EdgeError(kind, response.status, null, `the edge answered HTTP ${response.status}`);
    }
    if (schema === null) return undefined as T;
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new EdgeError(
        "bad-response",
        response.status,
        null,
        `unexpected answer from ${method} ${pathname}`,
      );
    }
    return parsed.data;
  }
}

/** Renew this long before expiry, so a token never expires in flight. */
const RENEW_BEFORE_MS = 30_000;

/**
 * Device access tokens for one device, obtained by challenge and signature and cached until shortly before they
 * expire. Concurrent callers share one request.
 */
export class DeviceTokenSource {
  private cached: { accessToken: string; expiresAt: number } | null = null;
  private pending: Promise<string> | null = null;

  constructor(
    private readonly client: EdgeClient,
    private readonly device: DeviceSigner,
    private readonly now: () => number = Date.now,
  ) {}

  /** A device token valid for at least 30 more seconds. */
  token(): Promise<string> {
    if (this.cached !== null && this.cached.expiresAt - RENEW_BEFORE_MS > this.now()) {
      return Promise.resolve(this.cached.accessToken);
    }
    if (this.pending === null) {
      this.pending = this.client
        .deviceToken(this.device)
        .then((issued) => {
          this.cached = issued;
          return issued.accessToken;
        })
        .finally(() => {
          this.pending = null;
        });
    }
    return this.pending;
  }

  /** Drops the cached token (after the edge refused it, e.g. a key rotation or a revoked device). */
  invalidate(): void {
    this.cached = null;
  }
}
