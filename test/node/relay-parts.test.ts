import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LEASE_TYP } from "../../protocol/relay/lease.ts";
import { RejectReason } from "../../protocol/wire/relay-frames.ts";
import { observedAddress, parseHostPort } from "../../relay-node/address.ts";
import { AddressBlocks, parseCidr } from "../../relay-node/address-blocks.ts";
import { parseCompactJws } from "../../relay-node/compact-jws.ts";
import { COOKIE_BUCKET_MS, CookieJar } from "../../relay-node/cookie.ts";
import { decideBinding } from "../../relay-node/lease-binding.ts";
import { LeaseKeyStore } from "../../relay-node/lease-keys.ts";
import type { AcceptedLease } from "../../relay-node/lease-verifier.ts";
import { PeerBinding, SessionTable } from "../../relay-node/session-table.ts";
import { TokenBucket } from "../../relay-node/token-bucket.ts";
import { compactJws, ed25519Pair, LeaseAuthority, nowSecs } from "../support/relay-lease-kit.ts";

// The relay's pure-ish parts, one by one: cookies, strict JWS parsing, the certified key set, address blocks,
// address parsing, binding decisions, token buckets and the session table.

describe("stateless cookies", () => {
  const sid = new Uint8Array(randomBytes(16));
  it("verify for the same source and session within the current or the previous minute only", () => {
    const jar = new CookieJar((n) => randomBytes(n));
    const t0 = 1_700_000_000_000;
    const cookie = jar.mint("198.51.100.7", 4000, sid, t0);
    expect(cookie).toHaveLength(32);
    expect(jar.verify(cookie, "198.51.100.7", 4000, sid, t0)).toBe(true);
    expect(jar.verify(cookie, "198.51.100.7", 4000, sid, t0 + COOKIE_BUCKET_MS)).toBe(true);
    expect(jar.verify(cookie, "198.51.100.7", 4001, sid, t0)).toBe(false);
    expect(jar.verify(cookie, "198.51.100.8", 4000, sid, t0)).toBe(false);
    expect(jar.verify(cookie, "198.51.100.7", 4000, new Uint8Array(16), t0)).toBe(false);
    const tampered = cookie.slice();
    tampered[31] = (tampered[31] ?? 0) ^ 1;
    expect(jar.verify(tampered, "198.51.100.7", 4000, sid, t0)).toBe(false);
    expect(jar.verify(cookie, "198.51.100.7", 4000, sid, t0 + 2 * COOKIE_BUCKET_MS)).toBe(false);
  });

  it("die with the relay: another jar (a restart) accepts none of them", () => {
    const t0 = 1_700_000_000_000;
    const cookie = new CookieJar((n) => randomBytes(n)).mint("10.0.0.1", 1, sid, t0);
    expect(new CookieJar((n) => randomBytes(n)).verify(cookie, "10.0.0.1", 1, sid, t0)).toBe(false);
  });
});

describe("strict compact JWS", () => {
  const key = ed25519Pair();
  const token = (header: object, payload: object = { a: 1 }) =>
    Buffer.from(compactJws(header, payload, key.privateKey), "latin1");

  it("parses EdDSA with typ and kid", () => {
    const jws = parseCompactJws(token({ alg: "EdDSA", typ: LEASE_TYP, kid: "k1" }));
    expect(jws?.header).toEqual({ alg: "EdDSA", typ: LEASE_TYP, kid: "k1" });
    expect(jws?.payload).toEqual({ a: 1 });
  });

  it("refuses other algorithms, unknown header members, bad kids and malformed encodings", () => {
    for (const header of [
      { alg: "none", typ: LEASE_TYP },
      { alg: "HS256", typ: LEASE_TYP },
      { alg: "ES256", typ: LEASE_TYP },
      { alg: "EdDSA" },
      { alg: "EdDSA", typ: LEASE_TYP, jwk: key.x },
      { alg: "EdDSA", typ: LEASE_TYP, kid: "../../etc" },
      { alg: "EdDSA", typ: LEASE_TYP, b64: false },
    ]) {
      expect(parseCompactJws(token(header))).toBeNull();
    }
    const good = token({ alg: "EdDSA", typ: LEASE_TYP }).toString("latin1");
    const [h, p, s] = good.split(".");
    for (const text of [
      `${h}.${p}`,
      `${good}.`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s}A`,
      `${h}..${s}`,
      `.${p}.${s}`,
    ]) {
      expect(parseCompactJws(Buffer.from(text, "latin1"))).toBeNull();
    }
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        parseCompactJws(bytes);
      }),
    );
  });
});

describe("certified lease keys", () => {
  const authority = new LeaseAuthority();
  const now = nowSecs();

  it("trusts certified keys until the certificate expires, and revocation wins", () => {
    const store = new LeaseKeyStore(authority.master.publicKey);
    const update = store.apply(
      [authority.certificate("a"), authority.certificate("b", { exp: now + 10 }), authority.certificate("c")],
      ["c"],
      now,
    );
    expect(update).toEqual({ trusted: 2, refused: [], newlyRevoked: ["c"] });
    expect(store.lookup("a", now).status).toBe("trusted");
    expect(store.lookup("b", now + 10).status).toBe("unknown");
    expect(store.lookup("c", now).status).toBe("revoked");
    expect(store.lookup("zzz", now).status).toBe("unknown");
    // The next answer replaces the set: "a" was rotated out.
    store.apply([authority.certificate("b")], ["c"], now);
    expect(store.lookup("a", now).status).toBe("unknown");
    expect(store.apply([], ["c"], now).newlyRevoked).toEqual([]);
  });

  it("refuses certificates signed by another master, for another kid, of another typ, or not yet valid", () => {
    const store = new LeaseKeyStore(authority.master.publicKey);
    const wrongTyp = {
      kid: "t",
      certificate: compactJws(
        { alg: "EdDSA", typ: "JWT" },
        {
          iss: "wavry-relay-master",
          sub: "t",
          jwk: { kty: "OKP", crv: "Ed25519", x: key().x },
          iat: now,
          exp: now + 60,
        },
        authority.master.privateKey,
      ),
    };
    const update = store.apply(
      [
        new LeaseAuthority().certificate("m"),
        authority.certificate("s", { sub: "other" }),
        authority.certificate("f", { iat: now + 3600 }),
        wrongTyp,
      ],
      [],
      now,
    );
    expect(update.refused).toEqual(["m", "s", "f", "t"]);
    expect(store.size).toBe(0);
  });
  const key = () => ed25519Pair();
});

describe("address blocks and addresses", () => {
  it("parses CIDRs strictly and matches IPv4-mapped sources against IPv4 ranges", () => {
    for (const bad of [
      "10.0.0.0",
      "010.0.0.0/8",
      "10.0.0/8",
      "10.0.0.0/33",
      "10.0.0.0/08",
      "::/129",
      "fe80::1%1/64",
    ]) {
      expect(parseCidr(bad)).toBeNull();
    }
    const blocks = new AddressBlocks();
    const generation = blocks.generation;
    expect(blocks.apply(["203.0.113.0/24", "2001:db8::/32", "junk"])).toEqual({ applied: 2, refused: 1 });
    expect(blocks.generation).toBe(generation + 1);
    expect(blocks.has("203.0.113.9", "IPv4")).toBe(true);
    expect(blocks.has("::ffff:203.0.113.9", "IPv6")).toBe(true);
    expect(blocks.has("2001:db8::5", "IPv6")).toBe(true);
    expect(blocks.has("203.0.114.1", "IPv4")).toBe(false);
  });

  it("parses listen addresses and reports observed addresses as LEASE_ACK carries them", () => {
    expect(parseHostPort("0.0.0.0:7400")).toEqual({ host: "0.0.0.0", port: 7400 });
    expect(parseHostPort("[::]:7400")).toEqual({ host: "::", port: 7400 });
    for (const bad of ["localhost:1", "1.2.3.4", "1.2.3.4:65536", "::1:80", "[1.2.3.4]:1"]) {
      expect(parseHostPort(bad)).toBeNull();
    }
    expect(observedAddress("192.0.2.1", 5)).toEqual({
      family: 4,
      address: Uint8Array.of(192, 0, 2, 1),
      port: 5,
    });
    expect(observedAddress("::ffff:192.0.2.1", 5)).toEqual({
      family: 4,
      address: Uint8Array.of(192, 0, 2, 1),
      port: 5,
    });
    const v6 = observedAddress("2001:db8::1", 6);
    expect(v6?.family).toBe(6);
    expect([...(v6?.address ?? [])]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(observedAddress("fe80::1%eth0", 7)?.address[0]).toBe(0xfe);
    expect(observedAddress("::", 1)?.address).toEqual(new Uint8Array(16));
    expect(observedAddress("1:2:3:4:5:6:7:8:9", 1)).toBeNull();
  });
});

describe("binding decisions", () => {
  const lease = (over: Partial<AcceptedLease> = {}): AcceptedLease => ({
    sub: "d_a",
    jti: "j1",
    kid: "k",
    iatSecs: 100,
    expSecs: 400,
    kbps: 1000,
    burstKb: 100,
    ...over,
  });
  const bound = new PeerBinding("192.0.2.1", 1000, "IPv4", lease(), 430_000, new TokenBucket(1, 1, 0));

  it("follows the documented table", () => {
    const at = 200_000;
    expect(decideBinding(null, lease(), "192.0.2.1", 1000, at).kind).toBe("bind");
    expect(decideBinding(bound, lease({ sub: "d_b", jti: "j9" }), "192.0.2.1", 1000, 430_000).kind).toBe(
      "bind",
    );
    expect(decideBinding(bound, lease(), "192.0.2.1", 1000, at).kind).toBe("keep");
    expect(decideBinding(bound, lease({ jti: "j0", iatSecs: 50 }), "192.0.2.1", 1000, at).kind).toBe("keep");
    expect(decideBinding(bound, lease({ jti: "j2", iatSecs: 150 }), "192.0.2.1", 1000, at).kind).toBe(
      "renew",
    );
    expect(decideBinding(bound, lease({ jti: "j2", iatSecs: 150 }), "192.0.2.1", 1001, at).kind).toBe("move");
    for (const other of [
      lease(),
      lease({ jti: "j0", iatSecs: 50 }),
      lease({ sub: "d_b", jti: "j3", iatSecs: 150 }),
    ]) {
      expect(decideBinding(bound, other, "198.51.100.1", 1000, at)).toEqual({
        kind: "reject",
        reason: RejectReason.SessionFull,
      });
    }
  });
});

describe("token bucket and session table", () => {
  it("refills at its rate up to its burst, and never drains on a clock step back", () => {
    const bucket = new TokenBucket(1, 10, 0);
    expect(bucket.take(10, 0)).toBe(true);
    expect(bucket.take(1, 0)).toBe(false);
    expect(bucket.take(5, 5)).toBe(true);
    expect(bucket.take(1, 2)).toBe(false);
    expect(bucket.take(10, 1000)).toBe(true);
  });

  it("finds sessions by id words, through collision chains, and deletes any link of a chain", () => {
    const table = new SessionTable(10);
    const ids = [0, 1, 2].map((i) => Uint8Array.of(1, 2, 3, 4, ...new Array<number>(11).fill(0), i));
    const sessions = ids.map((id) => table.create(id, 0));
    const datagram = (id: Uint8Array) => Buffer.concat([Buffer.from([1, 0x15, 0, 0]), id, Buffer.from([9])]);
    for (const [i, id] of ids.entries()) {
      expect(table.find(datagram(id))).toBe(sessions[i]);
      expect(table.findId(id)).toBe(sessions[i]);
    }
    expect(table.find(datagram(Uint8Array.of(1, 2, 3, 4, ...new Array<number>(12).fill(7))))).toBeUndefined();
    table.delete(sessions[1] as NonNullable<(typeof sessions)[1]>);
    expect(table.size).toBe(2);
    expect(table.findId(ids[1] as Uint8Array)).toBeUndefined();
    expect(table.findId(ids[2] as Uint8Array)).toBe(sessions[2]);
    expect([...table]).toHaveLength(2);
  });
});
