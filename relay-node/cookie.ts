import { createHmac, timingSafeEqual } from "node:crypto";
import { COOKIE_LEN } from "../protocol/wire/relay-frames.ts";

/**
 * Stateless CHALLENGE cookies (PROTOCOL.md 0x11): a peer proves it receives at the address it claims before the
 * relay spends a signature check or keeps any state for it. Layout of the 32 bytes:
 *
 *   bucket u32 LE | HMAC-SHA256(secret[bucket], "wavry relay cookie v1\0" | len u8 | address | port u16 LE |
 *                               session_id[16] | bucket u32 LE) truncated to 28 bytes
 *
 * A bucket is one minute; the secret is fresh random per bucket and only the current and the previous secrets are
 * kept, so a cookie lives one to two minutes and a relay restart invalidates all of them (peers get BAD_COOKIE and
 * send a new HELLO). The bucket in clear lets a check run one HMAC, not two.
 */
export const COOKIE_BUCKET_MS = 60_000;
const MAC_LEN = COOKIE_LEN - 4;
const SECRET_LEN = 32;
const CONTEXT = Buffer.from("wavry relay cookie v1\0", "latin1");

/** Mints and checks cookies; holds only the current and the previous minute's secrets. */
export class CookieJar {
  private bucket = -1;
  private current: Buffer | null = null;
  private previous: Buffer | null = null;
  private readonly scratch = Buffer.alloc(2 + 4);

  /** @param random fills fresh secrets (node:crypto randomBytes in the relay). */
  constructor(private readonly random: (length: number) => Uint8Array) {}

  /** The cookie for this source and session, now. */
  mint(address: string, port: number, sessionId: Uint8Array, nowMs: number): Uint8Array {
    const bucket = this.rotate(nowMs);
    const out = new Uint8Array(COOKIE_LEN);
    new DataView(out.buffer).setUint32(0, bucket, true);
    out.set(this.mac(this.current ?? Buffer.alloc(0), address, port, sessionId, bucket), 4);
    return out;
  }

  /** True when `cookie` was minted for this source and session in the current or the previous bucket. */
  verify(cookie: Uint8Array, address: string, port: number, sessionId: Uint8Array, nowMs: number): boolean {
    if (cookie.length !== COOKIE_LEN) return false;
    const current = this.rotate(nowMs);
    const bucket = new DataView(cookie.buffer, cookie.byteOffset, COOKIE_LEN).getUint32(0, true);
    const secret = bucket === current ? this.current : bucket === current - 1 ? this.previous : null;
    if (secret === null) return false;
    return timingSafeEqual(this.mac(secret, address, port, sessionId, bucket), cookie.subarray(4));
  }

  private rotate(nowMs: number): number {
    const bucket = Math.floor(nowMs / COOKIE_BUCKET_MS);
    if (bucket !== this.bucket) {
      // Only the bucket right before keeps its secret; after a gap (or a clock step) the old one is useless.
      this.previous = bucket === this.bucket + 1 ? this.current : null;
      this.current = Buffer.from(this.random(SECRET_LEN));
      this.bucket = bucket;
    }
    return bucket;
  }

  private mac(secret: Buffer, address: string, port: number, sessionId: Uint8Array, bucket: number): Buffer {
    const scratch = this.scratch;
    scratch.writeUInt16LE(port, 0);
    scratch.writeUInt32LE(bucket >>> 0, 2);
    const addressBytes = Buffer.from(address, "latin1");
    return createHmac("sha256", secret)
      .update(CONTEXT)
      .update(Uint8Array.of(addressBytes.length))
      .update(addressBytes)
      .update(scratch.subarray(0, 2))
      .update(sessionId)
      .update(scratch.subarray(2, 6))
      .digest()
      .subarray(0, MAC_LEN);
  }
}
