/**
 * At-rest encryption of small secrets (TOTP seeds and the like) under a key ring with versioned key ids, so keys can
 * be rotated: new data is sealed under the first (current) key, older data still opens under the others until it is
 * re-sealed. WebCrypto AES-256-GCM (NIST SP 800-38D). Pure: nonces come from a passed-in random source.
 *
 * Sealed form: `v1.<kid>.<nonce>.<ciphertext>`
 *   v1          format version
 *   kid         key id, /^[A-Za-z0-9_-]{1,32}$/
 *   nonce       12 random bytes, base64url without padding
 *   ciphertext  AES-GCM ciphertext || 16-byte tag, base64url without padding
 * The additional data is `v1.<kid>.` followed by the caller's AAD, so the header is authenticated too.
 */
import { concatBytes, constantTimeEqual, utf8 } from "../../protocol/bytes.ts";
import { type RandomSource, randomBytes } from "../../protocol/crypto/backend.ts";
import { base64urlDecode, base64urlEncode } from "./tokens-util.ts";

/**
 * A parsed key ring. It exposes key ids only: the key material lives in a module-private table, so logging or
 * serializing a ring cannot leak a key.
 */
export interface KeyRing {
  /** The key id new secrets are sealed under (the first entry of the configuration). */
  readonly currentKeyId: string;
  /** Every key id in configuration order, current first. */
  readonly keyIds: readonly string[];
}

interface KeyMaterial {
  readonly raw: ReadonlyMap<string, Uint8Array>;
  /** Imported WebCrypto keys, created on first use. */
  readonly imported: Map<string, Promise<CryptoKey>>;
}

const MATERIAL = new WeakMap<KeyRing, KeyMaterial>();

const VERSION = "v1";
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_LEN = 32;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** Limits on the configuration text: far above any sane ring, low enough to bound the work of parsing it. */
const MAX_KEYS = 16;
const MAX_KEY_RING_TEXT = 4096;
/**
 * Largest plaintext sealSecret accepts. These are small secrets; the bound also caps what openSecret will decode.
 * With random 96-bit nonces a key must seal fewer than 2^32 messages (NIST SP 800-38D §8.3), far beyond our use.
 */
export const SECRET_BOX_MAX_PLAINTEXT = 65536;
const MAX_SEALED_LENGTH =
  VERSION.length + 1 + 32 + 1 + 16 + 1 + Math.ceil(((SECRET_BOX_MAX_PLAINTEXT + TAG_LEN) * 4) / 3);

const HOW_TO_GENERATE = "generate one with: openssl rand -base64 32 | tr '+/' '-_' | tr -d '='";

/**
 * Parses a key ring from configuration text `kid1:KEY1,kid2:KEY2,...` where each KEY is 32 bytes in base64url
 * without padding and the first entry is the current key. Whitespace around entries is ignored. Refuses an empty
 * ring, a bad or repeated key id, a key that is not exactly 32 bytes, a weak key (every byte the same), and the same
 * key under two ids. The error names the entry and the problem and never echoes key material.
 */
export function parseKeyRing(text: string): KeyRing | { error: string } {
  if (text.length > MAX_KEY_RING_TEXT) {
    return { error: `key ring is longer than ${MAX_KEY_RING_TEXT} characters` };
  }
  if (text.trim() === "") return { error: "key ring is empty: set at least one kid:key entry" };
  const entries = text.split(",");
  if (entries.length > MAX_KEYS) return { error: `key ring has more than ${MAX_KEYS} entries` };
  const raw = new Map<string, Uint8Array>();
  for (const [index, entry] of entries.entries()) {
    const where = `key ring entry ${index + 1}`;
    const colon = entry.indexOf(":");
    if (colon < 0) return { error: `${where} is not kid:key` };
    const kid = entry.slice(0, colon).trim();
    if (!KEY_ID_PATTERN.test(kid)) {
      return { error: `${where}: key id must be 1 to 32 characters of A-Z a-z 0-9 _ -` };
    }
    if (raw.has(kid)) return { error: `${where}: key id "${kid}" appears twice` };
    const key = base64urlDecode(entry.slice(colon + 1).trim());
    if (key === null) {
      return { error: `${where} (${kid}): key is not base64url without padding; ${HOW_TO_GENERATE}` };
    }
    if (key.length !== KEY_LEN) {
      return { error: `${where} (${kid}): key must be 32 bytes, not ${key.length}; ${HOW_TO_GENERATE}` };
    }
    if (key.every((b) => b === key[0])) {
      return { error: `${where} (${kid}): key is weak (every byte the same); ${HOW_TO_GENERATE}` };
    }
    for (const [otherKid, other] of raw) {
      if (constantTimeEqual(key, other)) return { error: `${where} (${kid}): same key as "${otherKid}"` };
    }
    raw.set(kid, key);
  }
  const keyIds = Object.freeze([...raw.keys()]);
  const ring: KeyRing = Object.freeze({ currentKeyId: keyIds[0] as string, keyIds });
  MATERIAL.set(ring, { raw, imported: new Map() });
  return ring;
}

function importedKey(ring: KeyRing, kid: string): Promise<CryptoKey> | null {
  const material = MATERIAL.get(ring);
  const raw = material?.raw.get(kid);
  if (material === undefined || raw === undefined) return null;
  let key = material.imported.get(kid);
  if (key === undefined) {
    // Not extractable: once imported, the key cannot be read back out of WebCrypto.
    key = crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
    material.imported.set(kid, key);
  }
  return key;
}

function additionalData(kid: string, aad: Uint8Array): Uint8Array {
  // kid cannot contain ".", so the prefix ends unambiguously before the caller's AAD.
  return concatBytes(utf8(`${VERSION}.${kid}.`), aad);
}

/**
 * Seals `plaintext` under the ring's current key with a fresh random nonce, binding `aad` (for example the row's
 * table, column and primary key, so a sealed value cannot be moved to another row). Returns
 * `v1.<kid>.<nonce>.<ciphertext>`. Throws a RangeError for plaintext over {@link SECRET_BOX_MAX_PLAINTEXT} bytes or
 * a ring that parseKeyRing did not produce.
 */
export async function sealSecret(
  ring: KeyRing,
  plaintext: Uint8Array,
  aad: Uint8Array,
  random: RandomSource,
): Promise<string> {
  if (plaintext.length > SECRET_BOX_MAX_PLAINTEXT) {
    throw new RangeError(`secret-box plaintext must be at most ${SECRET_BOX_MAX_PLAINTEXT} bytes`);
  }
  const kid = ring.currentKeyId;
  const key = importedKey(ring, kid);
  if (key === null) throw new RangeError("key ring was not created by parseKeyRing");
  const nonce = randomBytes(random, NONCE_LEN);
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: additionalData(kid, aad), tagLength: TAG_LEN * 8 },
    await key,
    plaintext,
  );
  return `${VERSION}.${kid}.${base64urlEncode(nonce)}.${base64urlEncode(new Uint8Array(ciphertext))}`;
}

interface SealedParts {
  readonly kid: string;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

function parseSealed(sealed: string): SealedParts | null {
  if (sealed.length > MAX_SEALED_LENGTH) return null;
  const parts = sealed.split(".");
  if (parts.length !== 4) return null;
  const [version, kid, nonceText, ciphertextText] = parts as [string, string, string, string];
  if (version !== VERSION || !KEY_ID_PATTERN.test(kid)) return null;
  const nonce = base64urlDecode(nonceText);
  const ciphertext = base64urlDecode(ciphertextText);
  if (nonce === null || nonce.length !== NONCE_LEN || ciphertext === null || ciphertext.length < TAG_LEN) {
    return null;
  }
  return { kid, nonce, ciphertext };
}

/**
 * Opens a sealed secret with the key its kid names. Null for an unknown kid, a malformed string, a wrong `aad`,
 * or any tampering (AES-GCM authentication failure); never throws and says nothing about which it was.
 */
export async function openSecret(ring: KeyRing, sealed: string, aad: Uint8Array): Promise<Uint8Array | null> {
  const parts = parseSealed(sealed);
  if (parts === null) return null;
  const key = importedKey(ring, parts.kid);
  if (key === null) return null;
  try {
    const plaintext = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: parts.nonce,
        additionalData: additionalData(parts.kid, aad),
        tagLength: TAG_LEN * 8,
      },
      await key,
      parts.ciphertext,
    );
    return new Uint8Array(plaintext);
  } catch {
    return null;
  }
}

/**
 * The key id of a well-formed sealed string, or null. Compare it with `ring.currentKeyId` to find values to
 * re-seal after a rotation. It does not authenticate anything.
 */
export function sealedKeyId(sealed: string): string | null {
  return parseSealed(sealed)?.kid ?? null;
}
