import { exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { utf8 } from "../../protocol/bytes.ts";
import { type KeyRing, openSecret, parseKeyRing, sealSecret } from "../security/secret-box.ts";

/**
 * The token-signing key set. Keys are Ed25519, generated here, and stored in D1 with the private half sealed under
 * the WAVRY_SIGNING_KEY_WRAP_KEYS ring (so a copy of the database alone cannot mint tokens).
 *
 * Life of a key: next -> current -> previous -> retired. JWKS publishes next, current and previous, so verifiers
 * learn a key before it signs anything; "previous" still verifies until the longest access token it signed has
 * expired, so a rotation never breaks a client; "retired" verifies nothing.
 */
export type KeyStatus = "next" | "current" | "previous" | "retired";

interface LoadedKey {
  readonly kid: string;
  readonly status: KeyStatus;
  readonly publicJwk: JWK;
  readonly retireAt: number | null;
  publicKey?: CryptoKey;
  privateKey?: CryptoKey;
  readonly privateSealed: string;
}

interface Row {
  kid: string;
  status: KeyStatus;
  public_jwk: string;
  private_sealed: string;
  retire_at: number | null;
}

const CACHE_MS = 5_000;
let cache: { loadedAt: number; keys: Map<string, LoadedKey> } | null = null;

/** Forgets cached keys (after a rotation, and between tests). */
export function clearSigningKeyCache(): void {
  cache = null;
}

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

// Parsed once per ring text: parsing imports the AES keys, which is wasted work per request.
const rings = new Map<string, KeyRing>();
function ringOf(text: string): KeyRing {
  let ring = rings.get(text);
  if (ring === undefined) {
    const parsed = parseKeyRing(text);
    if ("error" in parsed) throw new Error("signing key wrap ring is invalid");
    ring = parsed;
    rings.set(text, ring);
  }
  return ring;
}
const aadFor = (kid: string) => utf8(`wavry signing key ${kid}`);

async function newKey(wrapRing: string, status: "next" | "current", now: number) {
  const ring = ringOf(wrapRing);
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = `k${now.toString(36)}${Array.from(random(6), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  const pub = await exportJWK(publicKey);
  const priv = await exportJWK(privateKey);
  const publicJwk: JWK = { kty: "OKP", crv: "Ed25519", x: pub.x as string, kid, alg: "EdDSA", use: "sig" };
  const sealed = await sealSecret(ring, utf8(priv.d as string), aadFor(kid), random);
  return { kid, status, publicJwk: JSON.stringify(publicJwk), sealed, now };
}

function insert(db: D1Database, key: Awaited<ReturnType<typeof newKey>>): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO signing_keys (kid, status, public_jwk, private_sealed, created_at, activated_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(key.kid, key.status, key.publicJwk, key.sealed, key.now, key.status === "current" ? key.now : null);
}

async function load(db: D1Database, now: number): Promise<Map<string, LoadedKey>> {
  if (cache !== null && now - cache.loadedAt < CACHE_MS) return cache.keys;
  // Previous keys whose grace period ended become retired for good.
  await db
    .prepare(
      "UPDATE signing_keys SET status = 'retired', retired_at = ? WHERE status = 'previous' AND retire_at <= ?",
    )
    .bind(now, now)
    .run();
  const { results } = await db
    .prepare(
      "SELECT kid, status, public_jwk, private_sealed, retire_at FROM signing_keys WHERE status != 'retired'",
    )
    .all<Row>();
  const keys = new Map<string, LoadedKey>();
  for (const row of results) {
    keys.set(row.kid, {
      kid: row.kid,
      status: row.status,
      publicJwk: JSON.parse(row.public_jwk) as JWK,
      retireAt: row.retire_at,
      privateSealed: row.private_sealed,
    });
  }
  cache = { loadedAt: now, keys };
  return keys;
}

/** Ensures a current and a next key exist (first start), racing safely with other isolates. */
async function ensureKeys(db: D1Database, wrapRing: string, now: number): Promise<Map<string, LoadedKey>> {
  let keys = await load(db, now);
  const has = (status: KeyStatus) => [...keys.values()].some((k) => k.status === status);
  if (has("current") && has("next")) return keys;
  const statements: D1PreparedStatement[] = [];
  if (!has("current")) statements.push(insert(db, await newKey(wrapRing, "current", now)));
  if (!has("next")) statements.push(insert(db, await newKey(wrapRing, "next", now)));
  try {
    await db.batch(statements);
  } catch {
    // Another isolate created them first (one current and one next are unique in the schema).
  }
  clearSigningKeyCache();
  keys = await load(db, now);
  return keys;
}

async function privateKeyOf(key: LoadedKey, wrapRing: string): Promise<CryptoKey> {
  if (key.privateKey !== undefined) return key.privateKey;
  const ring = ringOf(wrapRing);
  const d = await openSecret(ring, key.privateSealed, aadFor(key.kid));
  if (d === null) throw new Error("a signing key cannot be unsealed with the configured ring");
  const privateKey = (await importJWK(
    { kty: "OKP", crv: "Ed25519", x: key.publicJwk.x as string, d: new TextDecoder().decode(d) },
    "EdDSA",
  )) as CryptoKey;
  key.privateKey = privateKey;
  return privateKey;
}

/** The key to sign with now. */
export async function currentSigningKey(
  db: D1Database,
  wrapRing: string,
  now: number,
): Promise<{ kid: string; key: CryptoKey }> {
  const keys = await ensureKeys(db, wrapRing, now);
  const current = [...keys.values()].find((k) => k.status === "current");
  if (current === undefined) throw new Error("no current signing key");
  return { kid: current.kid, key: await privateKeyOf(current, wrapRing) };
}

/**
 * The public key for `kid` if it may still verify (next, current, or previous inside its grace period);
 * null for an unknown or retired kid.
 */
export async function verificationKey(db: D1Database, kid: string, now: number): Promise<CryptoKey | null> {
  let keys = await load(db, now);
  if (!keys.has(kid)) {
    // A kid minted by another isolate after our cache was filled.
    clearSigningKeyCache();
    keys = await load(db, now);
  }
  const key = keys.get(kid);
  if (key === undefined || key.status === "retired") return null;
  if (key.status === "previous" && key.retireAt !== null && key.retireAt <= now) return null;
  if (key.publicKey === undefined) key.publicKey = (await importJWK(key.publicJwk, "EdDSA")) as CryptoKey;
  return key.publicKey;
}

/** The public JWKS: next, current and previous keys. */
export async function publicJwks(db: D1Database, wrapRing: string, now: number): Promise<{ keys: JWK[] }> {
  const keys = await ensureKeys(db, wrapRing, now);
  const order: Record<KeyStatus, number> = { current: 0, next: 1, previous: 2, retired: 3 };
  return {
    keys: [...keys.values()]
      .filter((k) => k.status !== "retired")
      .sort((a, b) => order[a.status] - order[b.status])
      .map((k) => k.publicJwk),
  };
}

/**
 * Rotates: previous -> retired (past grace), current -> previous (verifies for `graceMs` more), next -> current,
 * and a new next key. One D1 batch, so it happens entirely or not at all.
 */
export async function rotateSigningKeys(
  db: D1Database,
  wrapRing: string,
  now: number,
  graceMs: number,
): Promise<{ current: string; next: string; previous: string | null }> {
  const keys = await ensureKeys(db, wrapRing, now);
  const current = [...keys.values()].find((k) => k.status === "current");
  const next = [...keys.values()].find((k) => k.status === "next");
  if (current === undefined || next === undefined) throw new Error("signing keys are not initialised");
  const fresh = await newKey(wrapRing, "next", now);
  await db.batch([
    db
      .prepare("UPDATE signing_keys SET status = 'retired', retired_at = ? WHERE status = 'previous'")
      .bind(now),
    db
      .prepare(
        "UPDATE signing_keys SET status = 'previous', retire_at = ? WHERE kid = ? AND status = 'current'",
      )
      .bind(now + graceMs, current.kid),
    db
      .prepare(
        "UPDATE signing_keys SET status = 'current', activated_at = ? WHERE kid = ? AND status = 'next'",
      )
      .bind(now, next.kid),
    insert(db, fresh),
  ]);
  clearSigningKeyCache();
  return { current: next.kid, next: fresh.kid, previous: current.kid };
}
