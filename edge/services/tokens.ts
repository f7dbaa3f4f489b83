import { decodeProtectedHeader, type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { EdgeConfig } from "../env.ts";
import { ApiError } from "../errors.ts";
import { currentSigningKey, verificationKey } from "./signing-keys.ts";

/**
 * Access tokens: EdDSA JWTs with a `typ` header and an audience per kind. Verification pins the algorithm,
 * the issuer, the audience and the type, and accepts only keys the key set still trusts.
 */
export const TokenKind = {
  userAccess: { typ: "wavry-user-access+jwt", audience: "wavry-api" },
  deviceAccess: { typ: "wavry-device-access+jwt", audience: "wavry-device" },
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: number;
}

export interface VerifiedToken {
  readonly sub: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly scopes: readonly string[];
  readonly claims: JWTPayload;
}

/** Signs a token of `kind` for `subject` with the current key. */
export async function issueToken(
  db: D1Database,
  config: EdgeConfig,
  kind: TokenKind,
  subject: string,
  scopes: readonly string[],
  extra: Record<string, string | number>,
  now: number,
): Promise<IssuedToken> {
  const { kid, key } = await currentSigningKey(db, config.signingKeyWrapKeys, now);
  const jti = crypto.randomUUID();
  const iat = Math.floor(now / 1000);
  const exp = iat + config.accessTokenTtlSecs;
  // `ims`: issue time in milliseconds, compared with revocation instants stored in milliseconds.
  const token = await new SignJWT({ ...extra, scope: scopes.join(" "), ims: now })
    .setProtectedHeader({ alg: "EdDSA", kid, typ: kind.typ })
    .setIssuer(config.issuer)
    .setAudience(kind.audience)
    .setSubject(subject)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key);
  return { token, jti, expiresAt: exp * 1000 };
}

const invalid = () =>
  new ApiError(401, "invalid_token", "invalid or expired token", {
    "WWW-Authenticate": 'Bearer error="invalid_token"',
  });

/**
 * Verifies a token of `kind`. Any failure (malformed, alg other than EdDSA, unknown or retired kid, bad signature,
 * wrong iss/aud/typ, expired) is the same 401: a caller learns nothing about why.
 */
export async function verifyToken(
  db: D1Database,
  config: EdgeConfig,
  kind: TokenKind,
  token: string,
  now: number,
): Promise<VerifiedToken> {
  if (token.length > 4096) throw invalid();
  let kid: unknown;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== "EdDSA" || header.typ !== kind.typ) throw invalid();
    kid = header.kid;
  } catch {
    throw invalid();
  }
  if (typeof kid !== "string" || kid.length > 64) throw invalid();
  const key = await verificationKey(db, kid, now);
  if (key === null) throw invalid();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ["EdDSA"],
      issuer: config.issuer,
      audience: kind.audience,
      typ: kind.typ,
      requiredClaims: ["sub", "jti", "iat", "exp"],
      currentDate: new Date(now),
      clockTolerance: 5,
    }));
  } catch {
    throw invalid();
  }
  const { sub, jti, iat, exp, scope } = payload;
  if (
    typeof sub !== "string" ||
    typeof jti !== "string" ||
    typeof iat !== "number" ||
    typeof exp !== "number"
  ) {
    throw invalid();
  }
  return {
    sub,
    jti,
    iat,
    exp,
    scopes: typeof scope === "string" && scope !== "" ? scope.split(" ") : [],
    claims: payload,
  };
}

/** The bearer token of a request, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(header);
  return match?.[1] ?? null;
}
