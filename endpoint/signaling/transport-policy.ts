/**
 * Which signaling URLs an endpoint may use, read once from the environment at start (DESIGN.md: Signaling; issue 5,
 * "Signaling client"): `wss://` is required in production, `WAVRY_ALLOW_INSECURE_SIGNALING=1` allows `ws://` only
 * outside production, and `WAVRY_SIGNALING_TLS_PINS_SHA256` optionally pins a certificate of the presented chain.
 */

/** Why the signaling configuration was refused. */
export type SignalingConfigErrorCode =
  | "insecure_url"
  | "insecure_flag_in_production"
  | "invalid_flag"
  | "invalid_pins"
  | "pins_need_tls"
  | "invalid_url";

/** A signaling setting that cannot work; thrown at start, and the message names the setting to fix. */
export class SignalingConfigError extends Error {
  override readonly name = "SignalingConfigError";
  constructor(
    readonly code: SignalingConfigErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The environment variables this module reads. */
export const SIGNALING_ENV = {
  environment: "WAVRY_ENVIRONMENT",
  allowInsecure: "WAVRY_ALLOW_INSECURE_SIGNALING",
  pins: "WAVRY_SIGNALING_TLS_PINS_SHA256",
} as const;

/** The validated transport settings. */
export interface SignalingTransport {
  readonly production: boolean;
  /** `ws://` allowed (never in production). */
  readonly allowInsecure: boolean;
  /** Lowercase hex SHA-256 of DER certificates; empty means no pinning (normal validation only). */
  readonly pins: readonly string[];
}

/** The environment as `process.env` gives it. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Parses a pin list: comma-separated SHA-256 fingerprints, hex, colons allowed, any case, as `openssl x509 -outform
 * DER | openssl dgst -sha256` or `openssl x509 -fingerprint -sha256` print them. Any bad entry refuses the whole list:
 * a typo must not silently drop a pin.
 */
export function parseTlsPins(text: string): string[] {
  const pins = text.split(",").map((entry) => entry.trim().replaceAll(":", "").toLowerCase());
  for (const [index, pin] of pins.entries()) {
    if (!/^[0-9a-f]{64}$/.test(pin)) {
      throw new SignalingConfigError(
        "invalid_pins",
        `${SIGNALING_ENV.pins}: entry ${index + 1} is not a SHA-256 fingerprint (64 hex digits, colons allowed)`,
      );
    }
  }
  return [...new Set(pins)];
}

/**
 * Reads and checks the transport settings. An unset `WAVRY_ENVIRONMENT` counts as production, so a forgotten setting
 * fails closed.
 */
export function readSignalingTransport(env: Environment): SignalingTransport {
  const production = (env[SIGNALING_ENV.environment] ?? "production") === "production";
  const flag = env[SIGNALING_ENV.allowInsecure];
  if (flag !== undefined && flag !== "" && flag !== "0" && flag !== "1") {
    throw new SignalingConfigError("invalid_flag", `${SIGNALING_ENV.allowInsecure} must be 1 or 0`);
  }
  const allowInsecure = flag === "1";
  if (allowInsecure && production) {
    throw new SignalingConfigError(
      "insecure_flag_in_production",
      `${SIGNALING_ENV.allowInsecure}=1 is refused in production; remove it and use a wss:// signaling URL`,
    );
  }
  const pinText = env[SIGNALING_ENV.pins]?.trim() ?? "";
  return { production, allowInsecure, pins: pinText === "" ? [] : parseTlsPins(pinText) };
}

/** Checks a signaling URL against the transport settings and returns it parsed. */
export function checkSignalingUrl(url: string, transport: SignalingTransport): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SignalingConfigError("invalid_url", "the signaling URL is not a URL");
  }
  if (parsed.protocol === "wss:") return parsed;
  if (parsed.protocol !== "ws:") {
    throw new SignalingConfigError("invalid_url", "the signaling URL must start with wss:// (or ws://)");
  }
  if (transport.production) {
    throw new SignalingConfigError(
      "insecure_url",
      "signaling needs a wss:// URL in production; ws:// would send the device token in clear",
    );
  }
  if (!transport.allowInsecure) {
    throw new SignalingConfigError(
      "insecure_url",
      `the signaling URL is ws://; use wss://, or set ${SIGNALING_ENV.allowInsecure}=1 (development only)`,
    );
  }
  if (transport.pins.length > 0) {
    throw new SignalingConfigError(
      "pins_need_tls",
      `${SIGNALING_ENV.pins} is set but the signaling URL is ws://; pins need wss://`,
    );
  }
  return parsed;
}
