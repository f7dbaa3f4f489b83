import { type Context, Hono } from "hono";
import { z } from "zod";
import { nobleBackend } from "../../protocol/crypto/noble-backend.ts";
import { deviceFingerprint, deviceIdFromKeys, isDeviceId } from "../../protocol/identity/device-id.ts";
import {
  canonicalEnrollmentCode,
  enrollmentProofMessage,
  tokenChallengeMessage,
} from "../../protocol/identity/device-proofs.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { requireDevice, requireUser, userIdOf } from "../middleware/auth.ts";
import { readJson } from "../middleware/body.ts";
import { rateLimit } from "../middleware/rate-limit.ts";
import { base64urlDecode, sha256Hex } from "../security/tokens-util.ts";
import {
  createChallenge,
  createEnrollmentCode,
  createGrant,
  deviceView,
  enrollForUser,
  enrollWithCode,
  findDevice,
  isUsableX25519PublicKey,
  listDevices,
  listGrants,
  type NewDevice,
  ownDevice,
  redeemChallenge,
  renameDevice,
  revokeDevice,
  revokeGrant,
  touchDevice,
} from "../services/devices.ts";
import { monitor } from "../services/monitor.ts";
import { disconnectDevice } from "../services/signaling.ts";
import { issueToken, TokenKind } from "../services/tokens.ts";

/** How far a proof's timestamp may be from the edge's clock, either way. */
export const PROOF_WINDOW_MS = 5 * 60_000;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

// 1..64 characters (code points), not blank, and nothing that could hide or reorder text in a listing: no control
// characters, no unpaired surrogates (they would not survive UTF-8 and the proof would sign something else), no
// line or paragraph separators.
const FORBIDDEN_IN_NAME = /[\p{Cc}\p{Cs}\u2028\u2029]/u;
const deviceName = z
  .string()
  .max(256)
  .refine((name) => {
    const length = [...name].length;
    return length >= 1 && length <= 64 && name.trim() !== "" && !FORBIDDEN_IN_NAME.test(name);
  });
/** 32 bytes, base64url without padding. */
const publicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
/** 64 bytes, base64url without padding. */
const signature = z.string().regex(/^[A-Za-z0-9_-]{86}$/);
const deviceId = z.string().refine(isDeviceId);

const enrollment = {
  name: deviceName,
  x25519PublicKey: publicKey,
  ed25519PublicKey: publicKey,
  timestampMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  proof: signature,
};
const EnrollBody = z.strictObject(enrollment);
const CodeEnrollBody = z.strictObject({ ...enrollment, code: z.string().max(64) });
const ChallengeBody = z.strictObject({ deviceId });
const TokenBody = z.strictObject({ challengeId: z.string().regex(/^[A-Za-z0-9_-]{22}$/), signature });
const RenameBody = z.strictObject({ name: deviceName });
const GrantBody = z.strictObject({ granteeDeviceId: deviceId });

type EnrollmentFields = z.infer<typeof EnrollBody>;

const badField = (field: string) => new ApiError(400, "invalid_body", `invalid field: ${field}`);

/**
 * Checks an enrollment request: the timestamp is fresh, the keys are usable, and the proof is an Ed25519 signature
 * by the enrolled key over {@link enrollmentProofMessage} bound to `userIdOrCode`. Returns the device to store.
 */
function checkEnrollment(body: EnrollmentFields, userIdOrCode: string, now: number): NewDevice {
  if (Math.abs(now - body.timestampMs) > PROOF_WINDOW_MS) {
    throw new ApiError(
      400,
      "bad_request",
      "timestampMs is more than 5 minutes from the server clock; check the device clock",
    );
  }
  const x25519 = base64urlDecode(body.x25519PublicKey);
  const ed25519 = base64urlDecode(body.ed25519PublicKey);
  const proof = base64urlDecode(body.proof);
  if (x25519 === null || !isUsableX25519PublicKey(x25519)) throw badField("x25519PublicKey");
  if (ed25519 === null) throw badField("ed25519PublicKey");
  if (proof === null) throw badField("proof");
  const message = enrollmentProofMessage({
    userIdOrCode,
    x25519Public: x25519,
    ed25519Public: ed25519,
    name: body.name,
    timestampMs: body.timestampMs,
  });
  // Strict RFC 8032 verification also refuses a small-order or non-canonical Ed25519 key.
  if (!nobleBackend.ed25519Verify(ed25519, message, proof)) {
    throw new ApiError(400, "bad_request", "invalid enrollment proof");
  }
  return {
    id: deviceIdFromKeys(x25519, ed25519),
    name: body.name,
    x25519PublicKey: body.x25519PublicKey,
    ed25519PublicKey: body.ed25519PublicKey,
  };
}

function enrolled(c: Context<AppEnv>, device: NewDevice, by: "user" | "code") {
  logEvent("info", "devices", "enroll", "ok", { requestId: c.get("requestId"), deviceId: device.id, by });
  const x = base64urlDecode(device.x25519PublicKey) ?? new Uint8Array(0);
  const ed = base64urlDecode(device.ed25519PublicKey) ?? new Uint8Array(0);
  return c.json({ deviceId: device.id, fingerprint: deviceFingerprint(x, ed) }, 201);
}

/** A path id that cannot be a device id is simply not found (no 400 that would differ from a missing device). */
function pathDeviceId(c: Context<AppEnv>): string {
  const id = c.req.param("id");
  if (!isDeviceId(id)) throw new ApiError(404, "not_found", "device not found");
  return id;
}

/** The one answer for every failed device-token exchange; the log line says which step failed. */
const tokenFailure = (
  c: Context<AppEnv>,
  reason: "signature_encoding" | "challenge" | "signature",
  userId: string | null = null,
) => {
  logEvent("warn", "devices", "device_token", "failed", { requestId: c.get("requestId"), reason });
  monitor(c, (range) => ({
    kind: "auth_failure",
    at: Date.now(),
    source: "device_challenge",
    account: userId === null ? null : `user:${userId}`,
    range,
  }));
  return new ApiError(401, "unauthorized", "invalid, used or expired challenge, or bad signature");
};

/**
 * Device routes, mounted at /v1/devices: enrollment (by a signed-in user or a one-time code), challenge/response
 * device tokens, the owner's device list, rename, revoke, and grants to other users' devices.
 */
export function deviceRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tokenLimit = rateLimit("token", (c) => c.get("config").rateLimits.token, "closed");

  app.post("/", requireUser(), async (c) => {
    const userId = userIdOf(c.get("principal"));
    const body = await readJson(c, EnrollBody);
    const now = Date.now();
    const device = checkEnrollment(body, userId, now);
    await enrollForUser(c.env.DB, userId, device, now);
    return enrolled(c, device, "user");
  });

  app.get("/", requireUser(), async (c) => {
    const devices = await listDevices(c.env.DB, userIdOf(c.get("principal")));
    return c.json({ devices: devices.map(deviceView) });
  });

  app.post("/enrollment-codes", requireUser(), async (c) => {
    const created = await createEnrollmentCode(c.env.DB, userIdOf(c.get("principal")), random, Date.now());
    return c.json(created, 201);
  });

  // No user token here (a headless host), so the code is the credential: its own budget, failing closed.
  app.post(
    "/enroll",
    rateLimit("enroll", (c) => c.get("config").rateLimits.auth, "closed"),
    async (c) => {
      const body = await readJson(c, CodeEnrollBody);
      const code = canonicalEnrollmentCode(body.code);
      if (code === null) throw new ApiError(401, "unauthorized", "invalid or expired enrollment code");
      const now = Date.now();
      const device = checkEnrollment(body, code, now);
      await enrollWithCode(c.env.DB, await sha256Hex(code), device, now);
      return enrolled(c, device, "code");
    },
  );

  app.post("/challenge", tokenLimit, async (c) => {
    const body = await readJson(c, ChallengeBody);
    return c.json(await createChallenge(c.env.DB, body.deviceId, random, Date.now()));
  });

  app.post("/token", tokenLimit, async (c) => {
    const body = await readJson(c, TokenBody);
    const signatureBytes = base64urlDecode(body.signature);
    if (signatureBytes === null) throw tokenFailure(c, "signature_encoding");
    const now = Date.now();
    const redeemed = await redeemChallenge(c.env.DB, body.challengeId, now);
    if (redeemed === null) throw tokenFailure(c, "challenge");
    const message = tokenChallengeMessage({
      challengeId: body.challengeId,
      challenge: redeemed.challenge,
      deviceId: redeemed.deviceId,
    });
    if (!nobleBackend.ed25519Verify(redeemed.ed25519PublicKey, message, signatureBytes))
      throw tokenFailure(c, "signature", redeemed.userId);
    const config = c.get("config");
    const issued = await issueToken(
      c.env.DB,
      config,
      TokenKind.deviceAccess,
      redeemed.deviceId,
      [],
      { uid: redeemed.userId },
      now,
    );
    await touchDevice(c.env.DB, redeemed.deviceId, now);
    logEvent("info", "devices", "device_token", "ok", {
      requestId: c.get("requestId"),
      deviceId: redeemed.deviceId,
      userId: redeemed.userId,
    });
    return c.json({ accessToken: issued.token, expiresIn: config.accessTokenTtlSecs, tokenType: "Bearer" });
  });

  app.get("/me", requireDevice(), async (c) => {
    const principal = c.get("principal");
    if (principal.kind !== "device") throw new ApiError(403, "forbidden", "a device token is required");
    const device = await findDevice(c.env.DB, principal.deviceId);
    if (device === null) throw new ApiError(404, "not_found", "device not found");
    return c.json({ deviceId: device.id, userId: device.userId, name: device.name });
  });

  app.patch("/:id", requireUser(), async (c) => {
    const userId = userIdOf(c.get("principal"));
    const id = pathDeviceId(c);
    const body = await readJson(c, RenameBody);
    return c.json(deviceView(await renameDevice(c.env.DB, userId, id, body.name)));
  });

  app.delete("/:id", requireUser(), async (c) => {
    const device = await ownDevice(c.env.DB, userIdOf(c.get("principal")), pathDeviceId(c));
    await revokeDevice(c.env.DB, device.id, Date.now());
    await disconnectDevice(c.env, device.id, "device_revoked");
    return c.body(null, 204);
  });

  app.post("/:id/grants", requireUser(), async (c) => {
    const userId = userIdOf(c.get("principal"));
    const host = await ownDevice(c.env.DB, userId, pathDeviceId(c));
    if (host.revokedAt !== null) throw new ApiError(409, "conflict", "device is revoked");
    const body = await readJson(c, GrantBody);
    const grantee = await findDevice(c.env.DB, body.granteeDeviceId);
    // A revoked grantee looks exactly like a missing one.
    if (grantee === null || grantee.revokedAt !== null)
      throw new ApiError(404, "not_found", "device not found");
    if (grantee.userId === userId) {
      throw new ApiError(400, "bad_request", "not needed: both devices are yours");
    }
    const grantId = await createGrant(c.env.DB, host, grantee, random, Date.now());
    return c.json({ grantId }, 201);
  });

  app.get("/:id/grants", requireUser(), async (c) => {
    const host = await ownDevice(c.env.DB, userIdOf(c.get("principal")), pathDeviceId(c));
    return c.json({ grants: await listGrants(c.env.DB, host.id) });
  });

  app.delete("/:id/grants/:grantId", requireUser(), async (c) => {
    const host = await ownDevice(c.env.DB, userIdOf(c.get("principal")), pathDeviceId(c));
    const grantId = c.req.param("grantId");
    if (grantId.length > 64 || !(await revokeGrant(c.env.DB, host.id, grantId, Date.now()))) {
      throw new ApiError(404, "not_found", "grant not found");
    }
    return c.body(null, 204);
  });

  return app;
}
