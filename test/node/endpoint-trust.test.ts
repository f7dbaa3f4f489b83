import { randomFillSync } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import {
  type PeerKeys,
  TrustError,
  TrustStore,
  trustStorePath,
  verifyPeerKey,
} from "../../endpoint/trust/trust-store.ts";
import { generateEd25519KeyPair, generateX25519KeyPair } from "../../protocol/crypto/backend.ts";
import { nodeBackend } from "../../protocol/crypto/node-backend.ts";
import { deviceFingerprint, deviceIdFromKeys } from "../../protocol/identity/device-id.ts";
import { formatShortAuthString, shortAuthString } from "../../protocol/identity/sas.ts";

const random = (n: number) => randomFillSync(new Uint8Array(n));
const dirs: string[] = [];
function home(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "wavry-trust-"));
  dirs.push(dir);
  return path.join(dir, "state");
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function peer(name = "laptop"): PeerKeys {
  const x = generateX25519KeyPair(nodeBackend, random).publicKey;
  const ed = generateEd25519KeyPair(nodeBackend, random).publicKey;
  return { deviceId: deviceIdFromKeys(x, ed), x25519PublicKey: x, ed25519PublicKey: ed, name };
}

describe("endpoint trust store", () => {
  it("first contact, then pinned; a changed key is 'changed'; forget clears it", () => {
    const dir = home();
    const a = peer();
    const other = peer();
    const store = TrustStore.open(dir);
    expect(store.check(a.deviceId, a.x25519PublicKey)).toBe("first-contact");
    const pinned = store.pin(a, 1_000);
    expect(pinned.fingerprint).toBe(deviceFingerprint(a.x25519PublicKey, a.ed25519PublicKey));
    expect(statSync(trustStorePath(dir)).mode & 0o777).toBe(0o600);

    // A fresh process sees the pin.
    const reopened = TrustStore.open(dir);
    expect(reopened.check(a.deviceId, a.x25519PublicKey)).toBe("pinned");
    expect(reopened.check(a.deviceId, other.x25519PublicKey)).toBe("changed");
    expect(reopened.check(a.deviceId, new Uint8Array(5))).toBe("changed");
    expect(reopened.list().map((p) => [p.deviceId, p.firstSeenAt, p.name])).toEqual([
      [a.deviceId, 1_000, "laptop"],
    ]);

    // Pinning the same keys again keeps the first-seen time; another key for the id is refused loudly.
    expect(reopened.pin(a, 2_000).firstSeenAt).toBe(1_000);
    const changed = { ...a, x25519PublicKey: other.x25519PublicKey };
    expect(() => reopened.pin(changed)).toThrow(TrustError);

    expect(reopened.forget(a.deviceId)).toBe(true);
    expect(reopened.forget(a.deviceId)).toBe(false);
    expect(TrustStore.open(dir).check(a.deviceId, a.x25519PublicKey)).toBe("first-contact");
  });

  it("refuses keys that do not derive the device id", () => {
    const a = peer();
    const b = peer();
    const store = TrustStore.open(home());
    expect(() => store.pin({ ...a, x25519PublicKey: b.x25519PublicKey })).toThrow(/do not belong/);
    expect(store.list()).toEqual([]);
  });

  it("keeps pins made by another process (re-reads before writing)", () => {
    const dir = home();
    const first = TrustStore.open(dir);
    const second = TrustStore.open(dir);
    const a = peer("a");
    const b = peer("b");
    first.pin(a);
    second.pin(b);
    expect(
      TrustStore.open(dir)
        .list()
        .map((p) => p.deviceId)
        .sort(),
    ).toEqual([a.deviceId, b.deviceId].sort());
  });

  it("refuses a group-readable trust store", () => {
    const dir = home();
    TrustStore.open(dir).pin(peer());
    chmodSync(trustStorePath(dir), 0o644);
    expect(() => TrustStore.open(dir)).toThrow(/chmod 600/);
  });

  it("verifyPeerKey: pins on first contact, refuses an edge mismatch and a changed key with the loud message", () => {
    const store = TrustStore.open(home());
    const a = peer();
    const impostor = peer();
    const first = verifyPeerKey(store, a, a.x25519PublicKey, 5);
    expect(first).toMatchObject({ ok: true, check: "first-contact" });
    expect(verifyPeerKey(store, a, a.x25519PublicKey)).toMatchObject({ ok: true, check: "pinned" });
    expect(verifyPeerKey(store, a, impostor.x25519PublicKey)).toMatchObject({
      ok: false,
      reason: "edge-mismatch",
    });
    // The edge itself publishes other keys for the id (they cannot derive the id, but the handshake matches them).
    const lying = { ...a, x25519PublicKey: impostor.x25519PublicKey };
    expect(verifyPeerKey(TrustStore.open(home()), lying, impostor.x25519PublicKey)).toMatchObject({
      ok: false,
      reason: "edge-mismatch",
    });
    const refused = verifyPeerKey(store, lying, impostor.x25519PublicKey);
    expect(refused).toMatchObject({ ok: false, reason: "changed" });
    if (!refused.ok) {
      expect(refused.message).toContain("HAS CHANGED");
      expect(refused.message).toContain(`wavry trust forget ${a.deviceId}`);
    }
  });
});

describe("short authentication string", () => {
  it("is six digits, deterministic, and a pinned vector", () => {
    const h = new Uint8Array(32).map((_, i) => i);
    expect(shortAuthString(h)).toMatch(/^\d{6}$/);
    expect(shortAuthString(h)).toBe(shortAuthString(h.slice()));
    expect(shortAuthString(h)).toBe(SAS_VECTOR);
    expect(formatShortAuthString("048213")).toBe("048 213");
    expect(() => shortAuthString(new Uint8Array(16))).toThrow(RangeError);
  });

  it("differs for different handshake hashes (almost always) and is always 6 digits", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 64 }), (h) => {
        expect(shortAuthString(h)).toMatch(/^\d{6}$/);
      }),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(shortAuthString(random(32)));
    expect(seen.size).toBeGreaterThan(190);
  });
});

// Computed independently: SHA-256("wavry sas v1\0" || 00 01 .. 1f), first 8 bytes big-endian, mod 10^6.
const SAS_VECTOR = "391208";
