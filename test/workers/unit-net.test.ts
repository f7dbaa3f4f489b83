import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Cidr, cidrContains, formatCidr, parseCidr } from "../../edge/net/cidr.ts";
import { clientAddress } from "../../edge/net/client-address.ts";
import { formatIp, isIPv4Mapped, parseIp, unmapIPv4 } from "../../edge/net/ip.ts";

// Runs inside workerd: the edge's address handling decides rate-limit keys and block lists, so every parser is
// fed arbitrary text and checked against the WHATWG URL parser (workerd's own) as an independent IPv6 oracle.

/** Any UTF-16 string, lone surrogates included (fast-check's "binary" unit never yields them). */
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 64 }),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%/[] ,"), maxLength: 50 }),
);

/** Single-character edits of a valid address: the inputs most likely to slip past a lenient parser. */
const mutatedIp = fc
  .tuple(
    fc.oneof(fc.ipV4(), fc.ipV6()),
    fc.nat(),
    fc.constantFrom("delete", "insert", "replace", "duplicate"),
    fc.constantFrom(..."0123456789abcdef:.ABCDEFx%/ "),
  )
  .map(([ip, at, op, ch]) => {
    const i = at % (ip.length + 1);
    switch (op) {
      case "delete":
        return ip.slice(0, i) + ip.slice(i + 1);
      case "insert":
        return ip.slice(0, i) + ch + ip.slice(i);
      case "replace":
        return ip.slice(0, i) + ch + ip.slice(i + 1);
      default:
        return ip.slice(0, i) + ip.slice(i, i + 2) + ip.slice(i);
    }
  });

/** workerd's WHATWG IPv6 parser: the bytes of `text`, or null when the URL parser refuses it. */
function whatwgIPv6(text: string): Uint8Array | null {
  let hostname: string;
  try {
    hostname = new URL(`http://[${text}]/`).hostname;
  } catch {
    return null;
  }
  return parseIp(hostname.slice(1, -1));
}

/**
 * Checks RFC 5952 §4.2 on formatted text without re-implementing it: "::" stands for at least two zero groups and
 * for the longest run; a run left uncompressed before it is shorter, one after it no longer (the first run wins a
 * tie); without "::" no two zero groups are adjacent.
 */
function expectRfc5952Compression(text: string): void {
  const runs = (part: string) =>
    part === "" ? [] : (part.match(/(?:^|:)0(?::0)*(?=:|$)/g) ?? []).map((r) => r.split("0").length - 1);
  const [before = "", after = ""] = text.split("::");
  if (!text.includes("::")) {
    expect(Math.max(0, ...runs(text)), text).toBeLessThan(2);
    return;
  }
  const explicit =
    (before === "" ? 0 : before.split(":").length) + (after === "" ? 0 : after.split(":").length);
  const compressed = 8 - explicit;
  expect(compressed, text).toBeGreaterThanOrEqual(2);
  expect(Math.max(0, ...runs(before)), text).toBeLessThan(compressed);
  expect(Math.max(0, ...runs(after)), text).toBeLessThanOrEqual(compressed);
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function mustParse(text: string): Uint8Array {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`expected ${text} to parse`);
  return parsed;
}

function mustParseCidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (parsed === null) throw new Error(`expected ${text} to parse as a CIDR`);
  return parsed;
}

describe("parseIp / formatIp: IPv4", () => {
  it("parses dotted quads to 4 bytes", () => {
    expect(parseIp("192.0.2.1")).toEqual(bytes(192, 0, 2, 1));
    expect(parseIp("0.0.0.0")).toEqual(bytes(0, 0, 0, 0));
    expect(parseIp("255.255.255.255")).toEqual(bytes(255, 255, 255, 255));
    expect(parseIp("10.0.100.9")).toEqual(bytes(10, 0, 100, 9));
  });

  it.each([
    ["leading zero (octal to inet_aton)", "010.0.0.1"],
    ["leading zero in the last octet", "1.2.3.04"],
    ["octet over 255", "1.2.3.256"],
    ["three parts", "1.2.3"],
    ["five parts", "1.2.3.4.5"],
    ["empty part", "1..3.4"],
    ["trailing dot", "1.2.3.4."],
    ["single number", "16909060"],
    ["hex octet", "0x1.2.3.4"],
    ["sign", "+1.2.3.4"],
    ["leading space", " 1.2.3.4"],
    ["trailing newline", "1.2.3.4\n"],
    ["port", "1.2.3.4:80"],
    ["full-width digits", "１.2.3.4"],
    ["Arabic-Indic digits", "١.2.3.4"],
    ["four digits", "1000.2.3.4"],
    ["empty string", ""],
  ])("refuses %s: %j", (_why, text) => {
    expect(parseIp(text)).toBeNull();
  });

  it("formats and re-parses fast-check's IPv4 addresses unchanged", () => {
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        expect(formatIp(mustParse(text))).toBe(text);
      }),
    );
  });
});

describe("parseIp / formatIp: IPv6", () => {
  it.each([
    // RFC 4291 §2.2 examples, with their RFC 5952 canonical forms.
    ["2001:DB8:0:0:8:800:200C:417A", "2001:db8::8:800:200c:417a"],
    ["FF01:0:0:0:0:0:0:101", "ff01::101"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["2001:DB8::8:800:200C:417A", "2001:db8::8:800:200c:417a"],
    ["0:0:0:0:0:0:13.1.68.3", "::d01:4403"],
    ["::13.1.68.3", "::d01:4403"],
    ["0:0:0:0:0:FFFF:129.144.52.38", "::ffff:129.144.52.38"],
    ["::FFFF:129.144.52.38", "::ffff:129.144.52.38"],
    ["::ffff:8190:3426", "::ffff:129.144.52.38"],
    // RFC 5952 §4: leading zeros dropped, lower case, the longest run compressed, the first of equal runs.
    ["2001:0db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    // §4.2.2: one zero group is never "::", although "::" for one group is valid input (RFC 4291 "one or more").
    ["2001:db8::1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
    ["1::", "1::"],
    ["::", "::"],
    ["0000:0000:0000:0000:0000:0000:255.255.255.255", "::ffff:ffff"],
    ["fe80::1:2:3:4", "fe80::1:2:3:4"],
    ["1:0:0:2::3", "1:0:0:2::3"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
  ])("parses %s and formats it as %s", (text, canonical) => {
    const parsed = mustParse(text);
    expect(parsed.length).toBe(16);
    expect(formatIp(parsed)).toBe(canonical);
    expect(parseIp(canonical)).toEqual(parsed);
  });

  it.each([
    ["zone id", "fe80::1%eth0"],
    ["zone id, numeric", "fe80::1%1"],
    ["brackets", "[::1]"],
    ["brackets and port", "[::1]:443"],
    ["three colons", ":::"],
    ["'::' twice", "1::2::3"],
    ["':::' inside", "1:::2"],
    ["nine groups", "1:2:3:4:5:6:7:8:9"],
    ["seven groups without '::'", "1:2:3:4:5:6:7"],
    ["eight groups and '::'", "1:2:3:4:5:6:7:8::"],
    ["'::' in front of eight groups", "::1:2:3:4:5:6:7:8"],
    ["five hex digits", "12345::"],
    ["non-hex digit", "g::"],
    ["single leading colon", ":1::"],
    ["single trailing colon", "1::2:"],
    ["single colon", ":"],
    ["short embedded quad", "::1.2.3"],
    ["leading zero in embedded quad", "::1.2.3.04"],
    ["embedded quad over 255", "::ffff:1.2.3.256"],
    ["embedded quad not last", "::1.2.3.4:5"],
    ["embedded quad first", "1.2.3.4::"],
    ["eight groups plus a quad", "1:2:3:4:5:6:7:1.2.3.4"],
    ["seven groups and a quad without '::'", "1:2:3:4:5:6:7:8:1.2.3.4"],
    ["trailing space", "::1 "],
    ["far longer than any address", `${"0:".repeat(100)}0`],
  ])("refuses %s: %j", (_why, text) => {
    expect(parseIp(text)).toBeNull();
  });

  it("round-trips every 16-byte address through formatIp, and formatIp is a fixed point", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (address) => {
        const text = formatIp(address);
        expect(parseIp(text)).toEqual(address);
        expect(formatIp(mustParse(text))).toBe(text);
      }),
    );
  });

  it("round-trips addresses that are mostly zero groups (the compression cases)", () => {
    const sparse = fc
      .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
        minLength: 8,
        maxLength: 8,
      })
      .map((groups) => {
        const out = new Uint8Array(16);
        groups.forEach((g, i) => {
          out[2 * i] = g >>> 8;
          out[2 * i + 1] = g & 0xff;
        });
        return out;
      });
    fc.assert(
      fc.property(sparse, (address) => {
        const text = formatIp(address);
        expect(parseIp(text)).toEqual(address);
        expectRfc5952Compression(text);
        expect(text).not.toMatch(/[A-F]|(^|:)0[0-9a-f]/); // lower case, no leading zeros
      }),
    );
  });

  it("agrees with workerd's WHATWG URL parser on fast-check's IPv6 addresses (bytes and canonical text)", () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const ours = mustParse(text);
        expect(whatwgIPv6(text)).toEqual(ours);
        // WHATWG writes IPv4-mapped addresses in hex; elsewhere both follow RFC 5952's compression rules.
        if (!isIPv4Mapped(ours)) expect(`[${formatIp(ours)}]`).toBe(new URL(`http://[${text}]/`).hostname);
      }),
      { numRuns: 500 },
    );
  });

  it("agrees with the WHATWG parser on which one-character edits of valid addresses are IPv6 addresses", () => {
    fc.assert(
      fc.property(mutatedIp, (text) => {
        // The URL parser takes a zone-free bracketed host; '%', '/', ' ' and brackets mean something else there.
        fc.pre(text.includes(":") && !/[%/ [\]x]/.test(text));
        expect(parseIp(text)).toEqual(whatwgIPv6(text));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("parseIp fuzz", () => {
  it("never throws on arbitrary text, and whatever it accepts round-trips", () => {
    fc.assert(
      fc.property(fc.oneof(anyString, mutatedIp), (text) => {
        const parsed = parseIp(text);
        if (parsed !== null) {
          expect([4, 16]).toContain(parsed.length);
          expect(parseIp(formatIp(parsed))).toEqual(parsed);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("IPv4-mapped addresses", () => {
  it("unmapIPv4 extracts the IPv4 address and leaves everything else alone", () => {
    expect(unmapIPv4(mustParse("::ffff:192.0.2.1"))).toEqual(bytes(192, 0, 2, 1));
    expect(unmapIPv4(mustParse("192.0.2.1"))).toEqual(bytes(192, 0, 2, 1));
    const compatible = mustParse("::192.0.2.1"); // deprecated IPv4-compatible form: not mapped
    expect(unmapIPv4(compatible)).toBe(compatible);
    const nat64 = mustParse("64:ff9b::192.0.2.1");
    expect(unmapIPv4(nat64)).toBe(nat64);
    expect(isIPv4Mapped(mustParse("::fffe:192.0.2.1"))).toBe(false);
    expect(isIPv4Mapped(mustParse("1::ffff:192.0.2.1"))).toBe(false);
  });

  it("formatIp refuses a byte length that is not an address", () => {
    expect(() => formatIp(new Uint8Array(5))).toThrow(TypeError);
  });
});

describe("parseCidr / formatCidr", () => {
  it.each([
    ["10.0.0.0/8", 4, 8, "10.0.0.0/8"],
    ["10.1.2.3/8", 4, 8, "10.0.0.0/8"], // host bits accepted and cleared
    ["192.168.1.255/23", 4, 23, "192.168.0.0/23"],
    ["0.0.0.0/0", 4, 0, "0.0.0.0/0"],
    ["255.255.255.255/0", 4, 0, "0.0.0.0/0"],
    ["1.2.3.4/32", 4, 32, "1.2.3.4/32"],
    ["2001:DB8::1/32", 6, 32, "2001:db8::/32"],
    ["2001:db8:ffff::/33", 6, 33, "2001:db8:8000::/33"],
    ["::/0", 6, 0, "::/0"],
    ["ffff::/0", 6, 0, "::/0"],
    ["2001:db8::1/128", 6, 128, "2001:db8::1/128"],
    ["::1/128", 6, 128, "::1/128"],
    // Inside ::ffff:0:0/96 a prefix stands for an IPv4 prefix (addresses are compared unmapped).
    ["::ffff:10.1.2.3/104", 4, 8, "10.0.0.0/8"],
    ["::ffff:0:0/96", 4, 0, "0.0.0.0/0"],
    ["::ffff:1.2.3.4/128", 4, 32, "1.2.3.4/32"],
    ["::ffff:0:0/95", 6, 95, "::fffe:0:0/95"],
  ])("parses %s as IPv%i /%i, canonical %s", (text, family, prefix, canonical) => {
    const cidr = mustParseCidr(text);
    expect(cidr.family).toBe(family);
    expect(cidr.prefix).toBe(prefix);
    expect(cidr.network.length).toBe(family === 4 ? 4 : 16);
    expect(formatCidr(cidr)).toBe(canonical);
    expect(parseCidr(canonical)).toEqual(cidr);
  });

  it.each([
    ["IPv4 prefix over 32", "10.0.0.0/33"],
    ["IPv6 prefix over 128", "::/129"],
    ["leading zero in the prefix", "10.0.0.0/08"],
    ["empty prefix", "10.0.0.0/"],
    ["no prefix", "10.0.0.0"],
    ["no address", "/8"],
    ["two prefixes", "10.0.0.0/8/8"],
    ["negative prefix", "10.0.0.0/-1"],
    ["plus sign", "10.0.0.0/+8"],
    ["exponent", "10.0.0.0/1e1"],
    ["space before the prefix", "10.0.0.0/ 8"],
    ["leading space", " 10.0.0.0/8"],
    ["netmask instead of a length", "10.0.0.0/255.0.0.0"],
    ["bad address", "10.0.0/8"],
    ["zone id", "fe80::%eth0/64"],
    ["huge prefix", "::/1000"],
    ["too long", `${"0".repeat(60)}/8`],
  ])("refuses %s: %j", (_why, text) => {
    expect(parseCidr(text)).toBeNull();
  });

  it("never throws on arbitrary text; accepted prefixes are masked and round-trip", () => {
    const cidrish = fc
      .tuple(fc.oneof(fc.ipV4(), fc.ipV6(), mutatedIp), fc.oneof(fc.nat(140).map(String), anyString))
      .map(([ip, prefix]) => `${ip}/${prefix}`);
    fc.assert(
      fc.property(fc.oneof(anyString, cidrish), (text) => {
        const cidr = parseCidr(text);
        if (cidr !== null) {
          expect(cidr.network.length).toBe(cidr.family === 4 ? 4 : 16);
          expect(parseCidr(formatCidr(cidr))).toEqual(cidr);
          expect(cidrContains(cidr, cidr.network)).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("cidrContains", () => {
  const inside = (cidr: string, ip: string) => cidrContains(mustParseCidr(cidr), mustParse(ip));

  it("/0 contains every address of its family and none of the other", () => {
    expect(inside("0.0.0.0/0", "0.0.0.0")).toBe(true);
    expect(inside("0.0.0.0/0", "255.255.255.255")).toBe(true);
    expect(inside("0.0.0.0/0", "::ffff:203.0.113.9")).toBe(true);
    expect(inside("0.0.0.0/0", "2001:db8::1")).toBe(false);
    expect(inside("::/0", "2001:db8::1")).toBe(true);
    expect(inside("::/0", "::")).toBe(true);
    expect(inside("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    // A v4-mapped address is the IPv4 address: never inside an IPv6 prefix, not even ::/0.
    expect(inside("::/0", "203.0.113.9")).toBe(false);
    expect(inside("::/0", "::ffff:203.0.113.9")).toBe(false);
  });

  it("/32 and /128 contain exactly one address", () => {
    expect(inside("198.51.100.7/32", "198.51.100.7")).toBe(true);
    expect(inside("198.51.100.7/32", "198.51.100.6")).toBe(false);
    expect(inside("198.51.100.7/32", "198.51.100.8")).toBe(false);
    expect(inside("198.51.100.7/32", "::ffff:198.51.100.7")).toBe(true);
    expect(inside("2001:db8::7/128", "2001:db8::7")).toBe(true);
    expect(inside("2001:db8::7/128", "2001:db8::6")).toBe(false);
    expect(inside("2001:db8::7/128", "2001:db8::7:0")).toBe(false);
  });

  it("compares the bits of a prefix that does not end on a byte", () => {
    expect(inside("192.168.0.0/23", "192.168.0.0")).toBe(true);
    expect(inside("192.168.0.0/23", "192.168.1.255")).toBe(true);
    expect(inside("192.168.0.0/23", "192.168.2.0")).toBe(false);
    expect(inside("192.168.0.0/23", "192.167.255.255")).toBe(false);
    expect(inside("2001:db8::/33", "2001:db8:7fff:ffff::1")).toBe(true);
    expect(inside("2001:db8::/33", "2001:db8:8000::")).toBe(false);
    expect(inside("128.0.0.0/1", "127.255.255.255")).toBe(false);
    expect(inside("128.0.0.0/1", "128.0.0.0")).toBe(true);
  });

  it("matches v4-mapped addresses and v4-mapped prefixes as IPv4", () => {
    expect(inside("10.0.0.0/8", "::ffff:10.200.0.1")).toBe(true);
    expect(inside("10.0.0.0/8", "::ffff:11.0.0.1")).toBe(false);
    expect(inside("::ffff:10.0.0.0/104", "10.9.9.9")).toBe(true);
    expect(inside("::ffff:10.0.0.0/104", "::ffff:10.9.9.9")).toBe(true);
    expect(inside("::ffff:10.0.0.0/104", "11.9.9.9")).toBe(false);
    // The deprecated IPv4-compatible form ::a.b.c.d is an IPv6 address, not IPv4.
    expect(inside("10.0.0.0/8", "::10.0.0.1")).toBe(false);
    expect(inside("::/96", "::10.0.0.1")).toBe(true);
  });

  it("is false, not an exception, for addresses and prefixes of the wrong shape", () => {
    const v4 = mustParseCidr("10.0.0.0/8");
    expect(cidrContains(v4, new Uint8Array(0))).toBe(false);
    expect(cidrContains(v4, new Uint8Array(5))).toBe(false);
    expect(cidrContains({ family: 4, network: bytes(10, 0, 0, 0), prefix: 33 }, bytes(10, 0, 0, 1))).toBe(
      false,
    );
    expect(cidrContains({ family: 4, network: bytes(10, 0, 0, 0), prefix: -1 }, bytes(10, 0, 0, 1))).toBe(
      false,
    );
    expect(cidrContains({ family: 4, network: bytes(10, 0, 0, 0), prefix: 1.5 }, bytes(10, 0, 0, 1))).toBe(
      false,
    );
    expect(cidrContains({ family: 4, network: bytes(10, 0, 0), prefix: 8 }, bytes(10, 0, 0))).toBe(false);
  });

  it("agrees with a BigInt model on random prefixes and addresses", () => {
    const toBig = (b: Uint8Array) => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
    const family = fc.constantFrom(4, 16);
    const arb = family.chain((len) =>
      fc.record({
        network: fc.uint8Array({ minLength: len, maxLength: len }),
        address: fc.uint8Array({ minLength: len, maxLength: len }),
        prefix: fc.integer({ min: 0, max: len * 8 }),
        // Half the time the address shares a long head with the network, so matches are common.
        share: fc.integer({ min: 0, max: len }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ network, address: random, prefix, share }) => {
        const address = random.slice();
        address.set(network.subarray(0, share));
        // Keep the model on plain IPv6: mapped addresses are compared unmapped (tested above).
        fc.pre(!isIPv4Mapped(address) && !isIPv4Mapped(network));
        const bits = BigInt(network.length * 8);
        const shift = bits - BigInt(prefix);
        const expected = toBig(network) >> shift === toBig(address) >> shift;
        const cidr = mustParseCidr(`${formatIp(network)}/${prefix}`);
        expect(cidrContains(cidr, address)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("clientAddress", () => {
  const trusted = { trustProxyHeaders: true };
  const untrusted = { trustProxyHeaders: false };
  const headers = (entries: [string, string][]) => {
    const h = new Headers();
    for (const [name, value] of entries) h.append(name, value);
    return h;
  };

  it("uses CF-Connecting-IP, in canonical form, whatever the trust setting", () => {
    for (const options of [trusted, untrusted]) {
      expect(clientAddress(headers([["CF-Connecting-IP", "203.0.113.9"]]), options)).toBe("203.0.113.9");
      expect(clientAddress(headers([["cf-connecting-ip", "2001:DB8:0::1"]]), options)).toBe("2001:db8::1");
      expect(clientAddress(headers([["CF-Connecting-IP", "::ffff:203.0.113.9"]]), options)).toBe(
        "203.0.113.9",
      );
    }
  });

  it("prefers CF-Connecting-IP over X-Forwarded-For", () => {
    const h = headers([
      ["X-Forwarded-For", "198.51.100.1, 198.51.100.2"],
      ["CF-Connecting-IP", "203.0.113.9"],
    ]);
    expect(clientAddress(h, trusted)).toBe("203.0.113.9");
  });

  it("is null for an invalid CF-Connecting-IP, without falling back to X-Forwarded-For", () => {
    for (const bad of [
      "unknown",
      "203.0.113.9:443",
      "[2001:db8::1]",
      "203.0.113.09",
      "203.0.113.9, 1.2.3.4",
    ]) {
      const h = headers([
        ["CF-Connecting-IP", bad],
        ["X-Forwarded-For", "198.51.100.2"],
      ]);
      expect(clientAddress(h, trusted), bad).toBeNull();
    }
  });

  it("ignores X-Forwarded-For entirely when proxy headers are not trusted", () => {
    expect(clientAddress(headers([["X-Forwarded-For", "198.51.100.2"]]), untrusted)).toBeNull();
    expect(clientAddress(headers([]), untrusted)).toBeNull();
    expect(clientAddress(headers([]), trusted)).toBeNull();
  });

  it("takes only the rightmost X-Forwarded-For entry when trusted", () => {
    const cases: [string[], string | null][] = [
      [["198.51.100.2"], "198.51.100.2"],
      [["1.1.1.1, 198.51.100.2"], "198.51.100.2"],
      [["1.1.1.1,198.51.100.2"], "198.51.100.2"],
      [["1.1.1.1 ,\t 2001:DB8::2 "], "2001:db8::2"],
      [["evil, 1.1.1.1, ::ffff:198.51.100.2"], "198.51.100.2"],
      // Several header lines are one list; the proxy appended to the last.
      [["1.1.1.1", "198.51.100.2"], "198.51.100.2"],
      // The rightmost entry is not an address: null, never a client-chosen entry further left.
      [["198.51.100.2, unknown"], null],
      [["198.51.100.2,"], null],
      [["198.51.100.2, 198.51.100.3:8080"], null],
      [["198.51.100.2, [2001:db8::1]"], null],
      [["198.51.100.2, fe80::1%eth0"], null],
      [[""], null],
    ];
    for (const [values, expected] of cases) {
      const h = headers(values.map((v): [string, string] => ["X-Forwarded-For", v]));
      expect(clientAddress(h, trusted), JSON.stringify(values)).toBe(expected);
    }
  });

  it("whatever a client puts in front, the answer is the entry the proxy appended", () => {
    const printable = fc.string({ unit: "grapheme-ascii", maxLength: 40 });
    fc.assert(
      fc.property(fc.array(printable, { maxLength: 8 }), fc.oneof(fc.ipV4(), fc.ipV6()), (spoofed, real) => {
        const h = headers([["X-Forwarded-For", [...spoofed, real].join(", ")]]);
        expect(clientAddress(h, trusted)).toBe(formatIp(unmapIPv4(mustParse(real))));
        expect(clientAddress(h, untrusted)).toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on arbitrary header values, and what it returns is canonical", () => {
    // Visible ASCII, space and tab: what a header value can carry (workerd warns on, and UTF-8-encodes, the rest).
    const value = fc.oneof(
      fc.string({
        unit: fc.oneof(fc.constant("\t"), fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 })),
      }),
      fc.ipV4(),
      fc.ipV6(),
      mutatedIp,
    );
    fc.assert(
      fc.property(fc.option(value), fc.option(value), fc.boolean(), (cf, xff, trustProxyHeaders) => {
        const entries: [string, string][] = [];
        if (cf !== null) entries.push(["CF-Connecting-IP", cf]);
        if (xff !== null) entries.push(["X-Forwarded-For", xff]);
        const result = clientAddress(headers(entries), { trustProxyHeaders });
        if (result !== null) expect(formatIp(mustParse(result))).toBe(result);
      }),
      { numRuns: 2000 },
    );
  });
});
