import { toHex, utf8 } from "../../protocol/bytes.ts";

const keys = new Map<string, Promise<CryptoKey>>();

/**
 * HMAC-SHA-256 of `value` under the deployment's log hash key, hex, 128 bits. Used wherever an address or an
 * email must be recognisable across records (logs, audit rows, alerts) without being readable: without the key
 * nobody can test a guess against it.
 */
export async function keyedHash(key: string, value: string): Promise<string> {
  let imported = keys.get(key);
  if (imported === undefined) {
    imported = crypto.subtle.importKey("raw", utf8(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(key, imported);
  }
  const mac = await crypto.subtle.sign("HMAC", await imported, utf8(value));
  return toHex(new Uint8Array(mac).subarray(0, 16));
}
