import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkPasswordPolicy,
  DUMMY_PASSWORD_HASH,
  hashPassword,
  PASSWORD_MAX,
  PASSWORD_MIN,
  parsePasswordHash,
  verifyPassword,
} from "../../edge/security/password.ts";
import {
  type KeyRing,
  openSecret,
  parseKeyRing,
  SECRET_BOX_MAX_PLAINTEXT,
  sealedKeyId,
  sealSecret,
} from "../../edge/security/secret-box.ts";
import {
  base64NoPadDecode,
  base64NoPadEncode,
  base64urlDecode,
  base64urlEncode,
  randomToken,
  sha256Hex,
  timingSafeEqualString,
} from "../../edge/security/tokens-util.ts";
import {
  base32Decode,
  base32Encode,
  generateTotpSecret,
  otpauthUri,
  TOTP_SECRET_BYTES,
  totpCode,
  verifyTotp,
} from "../../edge/security/totp.ts";
import { toHex, utf8 } from "../../protocol/bytes.ts";
import type { RandomSource } from "../../protocol/crypto/backend.ts";

// Runs inside workerd, where the edge runs: WebCrypto, @noble/hashes and the Workers runtime's randomness.
const random: RandomSource = (n) => crypto.getRandomValues(new Uint8Array(n));

/** A source that returns `byte` repeated: lets a test see exactly which random bytes ended up where. */
const constantRandom =
  (byte: number): RandomSource =>
  (n) =>
    new Uint8Array(n).fill(byte);

/** Any UTF-16 string, lone surrogates included (fast-check's "binary" unit never yields them). */
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 80 }),
);

/** Every single-character substitution of `text` by a character from `alphabet` (the exhaustive tamper set). */
function substitutions(text: string, alphabet: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const replacement = alphabet[(alphabet.indexOf(text.charAt(i)) + 1) % alphabet.length] as string;
    out.push(text.slice(0, i) + replacement + text.slice(i + 1));
  }
  return out;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** btoa as an independent oracle for standard base64 (it pads; ours does not). */
function btoaNoPad(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
}

// Argon2id costs ~200 ms a run in workerd. These tests run seven (one hash, six verifications), each given room
// on a busy machine.
const ARGON2_TIMEOUT = 30_000;

describe("base64 codecs (tokens-util)", () => {
  it("encodes the RFC 4648 §10 vectors without padding", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "Zg"],
      ["fo", "Zm8"],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg"],
      ["fooba", "Zm9vYmE"],
      ["foobar", "Zm9vYmFy"],
    ];
    for (const [plain, encoded] of vectors) {
      expect(base64urlEncode(utf8(plain))).toBe(encoded);
      expect(base64NoPadEncode(utf8(plain))).toBe(encoded);
      expect(base64urlDecode(encoded)).toEqual(utf8(plain));
      expect(base64NoPadDecode(encoded)).toEqual(utf8(plain));
    }
  });

  it("uses -_ for base64url and +/ for standard base64, and refuses the other alphabet", () => {
    const bytes = Uint8Array.from([0xfb, 0xff, 0xbf]);
    expect(base64urlEncode(bytes)).toBe("-_-_");
    expect(base64NoPadEncode(bytes)).toBe("+/+/");
    expect(base64urlDecode("+/+/")).toBeNull();
    expect(base64NoPadDecode("-_-_")).toBeNull();
  });

  it.each([
    ["padding", "Zg=="],
    ["a length of 1 mod 4", "Zm9vY"],
    ["non-zero leftover bits (a second spelling of 'f')", "Zh"],
    ["non-zero leftover bits in a 2-byte tail", "Zm9"],
    ["whitespace", "Zm9v Yg"],
    ["a newline", "Zm9v\n"],
    ["a non-ASCII letter", "Zm9é"],
    ["a full-width letter", "Ｚm9v"],
  ])("decoders refuse %s", (_why, text) => {
    expect(base64urlDecode(text)).toBeNull();
    expect(base64NoPadDecode(text)).toBeNull();
  });

  it("round-trips arbitrary bytes and matches btoa", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const std = base64NoPadEncode(bytes);
        expect(std).toBe(btoaNoPad(bytes));
        expect(base64urlEncode(bytes)).toBe(std.replaceAll("+", "-").replaceAll("/", "_"));
        expect(base64NoPadDecode(std)).toEqual(bytes);
        expect(base64urlDecode(base64urlEncode(bytes))).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on arbitrary text; whatever decodes re-encodes to the same text (one spelling per value)", () => {
    const b64ish = fc.string({ unit: fc.constantFrom(..."AZaz09-_+/=Q \n"), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(anyString, b64ish), (text) => {
        const url = base64urlDecode(text);
        if (url !== null) expect(base64urlEncode(url)).toBe(text);
        const std = base64NoPadDecode(text);
        if (std !== null) expect(base64NoPadEncode(std)).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("randomToken, sha256Hex, timingSafeEqualString", () => {
  it("draws the token's bytes from the source it is given", () => {
    expect(randomToken(constantRandom(0xff))).toBe(`${"_".repeat(42)}8`);
    expect(randomToken(constantRandom(0), 16)).toBe("A".repeat(22));
    const token = randomToken(random);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(base64urlDecode(token)?.length).toBe(32);
    expect(randomToken(random)).not.toBe(token);
    expect(randomToken(random, 48)).toMatch(/^[A-Za-z0-9_-]{64}$/);
  });

  it("refuses token sizes under 128 bits and sources that return the wrong length", () => {
    expect(() => randomToken(random, 15)).toThrow(RangeError);
    expect(() => randomToken(random, 0)).toThrow(RangeError);
    expect(() => randomToken(random, 32.5)).toThrow(RangeError);
    expect(() => randomToken(random, 1025)).toThrow(RangeError);
    expect(() => randomToken(() => new Uint8Array(8))).toThrow();
  });

  it("hashes the FIPS 180-2 vectors, from text or bytes", async () => {
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(await sha256Hex(utf8("abc"))).toBe(await sha256Hex("abc"));
    expect(await sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("compares strings: equal, different, different lengths, Unicode", () => {
    expect(timingSafeEqualString("token-abc", "token-abc")).toBe(true);
    expect(timingSafeEqualString("", "")).toBe(true);
    expect(timingSafeEqualString("token-abc", "token-abd")).toBe(false);
    expect(timingSafeEqualString("token-abc", "token-ab")).toBe(false);
    expect(timingSafeEqualString("token", "")).toBe(false);
    expect(timingSafeEqualString("é", "e\u0301")).toBe(false);
    fc.assert(
      fc.property(anyString, anyString, (a, b) => {
        expect(timingSafeEqualString(a, a)).toBe(true);
        expect(timingSafeEqualString(a, b)).toBe(toHex(utf8(a)) === toHex(utf8(b)));
      }),
    );
  });
});

describe("base32 (RFC 4648 §6)", () => {
  it("encodes the RFC 4648 §10 vectors without padding and decodes them in either case", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "MY"],
      ["fo", "MZXQ"],
      ["foo", "MZXW6"],
      ["foob", "MZXW6YQ"],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI"],
    ];
    for (const [plain, encoded] of vectors) {
      expect(base32Encode(utf8(plain))).toBe(encoded);
      expect(base32Decode(encoded)).toEqual(utf8(plain));
      expect(base32Decode(encoded.toLowerCase())).toEqual(utf8(plain));
    }
    expect(base32Decode("mZxW6yTbOi")).toEqual(utf8("foobar"));
  });

  it.each([
    ["padding", "MY======"],
    ["a digit outside the alphabet (0)", "MZX0"],
    ["a digit outside the alphabet (1)", "MZX1"],
    ["a digit outside the alphabet (8)", "MZX8"],
    ["a length of 1 mod 8", "MZXW6YTBO"],
    ["a length of 3 mod 8", "MZX"],
    ["a length of 6 mod 8", "MZXW6Y"],
    ["non-zero leftover bits (a second spelling of 'f')", "MZ"],
    ["a space", "MZXW 6"],
    ["a hyphen", "MZXW-6YQ"],
    ["a non-ASCII letter", "MZXÉ"],
  ])("refuses %s", (_why, text) => {
    expect(base32Decode(text)).toBeNull();
  });

  it("round-trips arbitrary bytes; whatever decodes re-encodes to the upper-cased text", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const text = base32Encode(bytes);
        expect(text).toMatch(/^[A-Z2-7]*$/);
        expect(base32Decode(text)).toEqual(bytes);
        expect(base32Decode(text.toLowerCase())).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
    const base32ish = fc.string({ unit: fc.constantFrom(..."AZaz27MQ01=8 "), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(anyString, base32ish), (text) => {
        const decoded = base32Decode(text);
        if (decoded !== null) expect(base32Encode(decoded)).toBe(text.toUpperCase());
      }),
      { numRuns: 2000 },
    );
  });
});

describe("TOTP (RFC 6238)", () => {
  // RFC 6238 Appendix B, SHA-1 rows: seed "12345678901234567890" (20 ASCII bytes), X = 30, T0 = 0, 8 digits.
  // Our codes are 6 digits: the same truncated value mod 10^6, i.e. the last six digits.
  const RFC_SEED = utf8("12345678901234567890");
  const RFC_VECTORS: [number, string][] = [
    [59, "94287082"],
    [1111111109, "07081804"],
    [1111111111, "14050471"],
    [1234567890, "89005924"],
    [2000000000, "69279037"],
    [20000000000, "65353130"],
  ];

  it.each(RFC_VECTORS)("matches Appendix B at T = %i s (%s)", (seconds, eightDigits) => {
    const step = Math.floor(seconds / 30);
    const code = eightDigits.slice(-6);
    expect(totpCode(RFC_SEED, step)).toBe(code);
    expect(verifyTotp(RFC_SEED, code, seconds * 1000, null)).toBe(step);
  });

  it("generates 20-byte secrets from the source it is given", () => {
    expect(generateTotpSecret(constantRandom(7))).toEqual(new Uint8Array(TOTP_SECRET_BYTES).fill(7));
    const a = generateTotpSecret(random);
    expect(a.length).toBe(20);
    expect(generateTotpSecret(random)).not.toEqual(a);
  });

  it("accepts the previous, current and next step, and nothing further", () => {
    const secret = RFC_SEED;
    const now = 1_111_111_111_000; // step 37037037, 1 s into it... well inside; see the edges below
    const step = Math.floor(now / 30_000);
    for (const offset of [-1, 0, 1]) {
      expect(verifyTotp(secret, totpCode(secret, step + offset), now, null)).toBe(step + offset);
    }
    for (const offset of [-3, -2, 2, 3]) {
      expect(verifyTotp(secret, totpCode(secret, step + offset), now, null)).toBeNull();
    }
  });

  it("uses the step boundaries: the last millisecond of a step and the first of the next", () => {
    const secret = RFC_SEED;
    const step = 40_000_000;
    const code = totpCode(secret, step);
    expect(verifyTotp(secret, code, (step + 1) * 30_000 + 29_999, null)).toBe(step); // now in step+1
    expect(verifyTotp(secret, code, (step + 2) * 30_000, null)).toBeNull(); // now in step+2
    expect(verifyTotp(secret, code, (step - 1) * 30_000, null)).toBe(step); // now in step-1
    expect(verifyTotp(secret, code, (step - 1) * 30_000 - 1, null)).toBeNull(); // now in step-2
  });

  it("refuses a code reused within its step, and an older code after a newer one", () => {
    const secret = generateTotpSecret(random);
    const now = 1_700_000_000_000;
    const step = Math.floor(now / 30_000);
    const current = totpCode(secret, step);
    const used = verifyTotp(secret, current, now, null);
    expect(used).toBe(step);
    expect(verifyTotp(secret, current, now, used)).toBeNull(); // replay, same instant
    expect(verifyTotp(secret, current, now + 10_000, used)).toBeNull(); // replay, later in the window
    expect(verifyTotp(secret, totpCode(secret, step - 1), now, used)).toBeNull(); // older, still in the window
    const next = verifyTotp(secret, totpCode(secret, step + 1), now + 30_000, used);
    expect(next).toBe(step + 1);
    expect(verifyTotp(secret, totpCode(secret, step + 1), now + 30_000, next)).toBeNull();
    // A step below lastUsedStep is refused even though it is inside the window.
    expect(verifyTotp(secret, totpCode(secret, step), now, step + 1)).toBeNull();
  });

  it.each([
    ["five digits", "12345"],
    ["seven digits", "1234567"],
    ["a letter", "12345a"],
    ["a leading space", " 123456"],
    ["a trailing newline", "123456\n"],
    ["a sign", "+12345"],
    ["Arabic-Indic digits", "١٢٣٤٥٦"],
    ["full-width digits", "１２３４５６"],
    ["empty", ""],
  ])("refuses a code with %s", (_why, code) => {
    expect(verifyTotp(RFC_SEED, code, 59_000, null)).toBeNull();
  });

  it("refuses a code that would match if it were padded or trimmed differently", () => {
    const code = totpCode(RFC_SEED, 1); // "287082"
    expect(verifyTotp(RFC_SEED, code, 59_000, null)).toBe(1);
    expect(verifyTotp(RFC_SEED, `0${code}`, 59_000, null)).toBeNull();
    expect(verifyTotp(RFC_SEED, code.slice(1), 59_000, null)).toBeNull();
    expect(verifyTotp(RFC_SEED, "94287082", 59_000, null)).toBeNull(); // the 8-digit form
  });

  it("returns null, never throws, for a bad secret size or clock", () => {
    const code = totpCode(RFC_SEED, 1);
    expect(verifyTotp(RFC_SEED.subarray(0, 19), code, 59_000, null)).toBeNull();
    expect(verifyTotp(new Uint8Array(32), code, 59_000, null)).toBeNull();
    for (const now of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1e300]) {
      expect(verifyTotp(RFC_SEED, code, now, null), String(now)).toBeNull();
    }
    // Step 0: the window reaches back to no negative step.
    expect(verifyTotp(RFC_SEED, totpCode(RFC_SEED, 0), 0, null)).toBe(0);
  });

  it("totpCode refuses caller bugs: a negative or fractional step, a short secret", () => {
    expect(() => totpCode(RFC_SEED, -1)).toThrow(RangeError);
    expect(() => totpCode(RFC_SEED, 1.5)).toThrow(RangeError);
    expect(() => totpCode(new Uint8Array(15), 1)).toThrow(RangeError);
  });

  it("accepts its own codes across random secrets and times, returning a step whose code it is", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.integer({ min: 30_000, max: 4_102_444_800_000 }),
        fc.integer({ min: -1, max: 1 }),
        (secret, now, offset) => {
          const step = Math.floor(now / 30_000) + offset;
          const code = totpCode(secret, step);
          expect(code).toMatch(/^[0-9]{6}$/);
          const matched = verifyTotp(secret, code, now, null);
          // Another step in the window may share the code (odds 1e-6); whichever matched, it is that step's code.
          expect(matched).not.toBeNull();
          expect(Math.abs((matched ?? Number.NaN) - Math.floor(now / 30_000))).toBeLessThanOrEqual(1);
          expect(totpCode(secret, matched ?? 0)).toBe(code);
          expect(verifyTotp(secret, code, now, matched)).toBeNull();
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary codes", () => {
    fc.assert(
      fc.property(fc.oneof(anyString, fc.stringMatching(/^[0-9]{5,7}$/)), (code) => {
        const matched = verifyTotp(RFC_SEED, code, 59_000, null);
        if (matched !== null) expect(totpCode(RFC_SEED, matched)).toBe(code);
      }),
      { numRuns: 1000 },
    );
  });

  it("builds the otpauth URI authenticator apps scan", () => {
    const secret = base32Decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    if (secret === null) throw new Error("fixture");
    expect(otpauthUri(secret, "alice@example.com", "Wavry")).toBe(
      "otpauth://totp/Wavry:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Wavry" +
        "&algorithm=SHA1&digits=6&period=30",
    );
    expect(otpauthUri(secret, "bob smith", "Wavry Dev & Co")).toBe(
      "otpauth://totp/Wavry%20Dev%20%26%20Co:bob%20smith?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" +
        "&issuer=Wavry%20Dev%20%26%20Co&algorithm=SHA1&digits=6&period=30",
    );
  });

  it("otpauthUri refuses a colon, a control character, a lone surrogate or an empty label", () => {
    const secret = new Uint8Array(20);
    expect(() => otpauthUri(secret, "a:b@example.com", "Wavry")).toThrow(RangeError);
    expect(() => otpauthUri(secret, "alice@example.com", "Wa:vry")).toThrow(RangeError);
    expect(() => otpauthUri(secret, "alice\n@example.com", "Wavry")).toThrow(RangeError);
    expect(() => otpauthUri(secret, "alice\ud800", "Wavry")).toThrow(RangeError);
    expect(() => otpauthUri(secret, "", "Wavry")).toThrow(RangeError);
    expect(() => otpauthUri(secret, "alice", "")).toThrow(RangeError);
  });
});

describe("password policy", () => {
  it("pins 12 to 128 code points", () => {
    expect(PASSWORD_MIN).toBe(12);
    expect(PASSWORD_MAX).toBe(128);
  });

  it.each([
    ["11 ASCII characters", "a".repeat(11), "too-short"],
    ["12 ASCII characters", "a".repeat(12), null],
    ["128 ASCII characters", "a".repeat(128), null],
    ["129 ASCII characters", "a".repeat(129), "too-long"],
    ["11 emoji (22 UTF-16 units)", "😀".repeat(11), "too-short"],
    ["12 emoji", "😀".repeat(12), null],
    ["128 emoji (256 UTF-16 units)", "😀".repeat(128), null],
    ["129 emoji", "😀".repeat(129), "too-long"],
    ["11 letters and an emoji", `${"a".repeat(11)}😀`, null],
    ["12 decomposed é (24 code points, 12 after NFC)", "e\u0301".repeat(12), null],
    ["6 decomposed é (12 code points, 6 after NFC)", "e\u0301".repeat(6), "too-short"],
    ["128 decomposed é (256 code points, 128 after NFC)", "e\u0301".repeat(128), null],
    ["12 Hangul syllables as conjoining jamo (36 code points)", "\u1100\u1161\u11a8".repeat(12), null],
    ["empty", "", "too-short"],
    ["a megabyte", "a".repeat(1 << 20), "too-long"],
  ])("%s: %s", (_why, password, expected) => {
    expect(checkPasswordPolicy(password)).toBe(expected);
  });

  it("agrees with counting the code points of the NFC form, on arbitrary strings", () => {
    const lengthy = fc.oneof(anyString, fc.string({ unit: "grapheme", minLength: 5, maxLength: 140 }));
    fc.assert(
      fc.property(lengthy, (password) => {
        const count = [...password.normalize("NFC")].length;
        const expected = count < PASSWORD_MIN ? "too-short" : count > PASSWORD_MAX ? "too-long" : null;
        expect(checkPasswordPolicy(password)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("password hashing (Argon2id)", () => {
  const PHC_PATTERN = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;
  const password = "correct horse battery staple é";

  it(
    "hashes to a pinned PHC string; verifies the password, refuses a wrong one and a tampered hash",
    () => {
      const phc = hashPassword(password, random);
      expect(phc).toMatch(PHC_PATTERN);
      const parts = parsePasswordHash(phc);
      expect(parts?.salt.length).toBe(16);
      expect(parts?.hash.length).toBe(32);
      expect(verifyPassword(password, phc)).toBe(true);
      expect(verifyPassword("correct horse battery staple e", phc)).toBe(false);
      // Flip one character of the hash: still a well-formed PHC string, so Argon2id runs and the compare fails.
      const last = phc.length - 2;
      const tampered = phc.slice(0, last) + (phc[last] === "A" ? "B" : "A") + phc.slice(last + 1);
      expect(parsePasswordHash(tampered)).not.toBeNull();
      expect(verifyPassword(password, tampered)).toBe(false);
      // NFC before hashing: the decomposed spelling of the same password verifies.
      expect(verifyPassword(password.normalize("NFD"), phc)).toBe(true);
    },
    ARGON2_TIMEOUT,
  );

  it(
    "verifies a hash made by the reference implementation (libargon2 20190702, argon2id_hash_encoded)",
    () => {
      // Produced with libargon2's argon2id_hash_encoded(t=2, m=19456, p=1, "Tr0ub4dor&3 horse",
      // salt "wavry-test-salt!", 32-byte hash): the PHC encoding and the Argon2id output both interoperate.
      const reference =
        "$argon2id$v=19$m=19456,t=2,p=1$d2F2cnktdGVzdC1zYWx0IQ$7QF7s2J2FGC82LFpzSkkCxP8EZMwJQOpFj4fnWNFBnk";
      expect(parsePasswordHash(reference)?.salt).toEqual(utf8("wavry-test-salt!"));
      expect(verifyPassword("Tr0ub4dor&3 horse", reference)).toBe(true);
    },
    ARGON2_TIMEOUT,
  );

  it(
    "DUMMY_PASSWORD_HASH is a valid pinned PHC string that verifies false",
    () => {
      expect(DUMMY_PASSWORD_HASH).toMatch(PHC_PATTERN);
      expect(parsePasswordHash(DUMMY_PASSWORD_HASH)).not.toBeNull();
      expect(verifyPassword("any password at all", DUMMY_PASSWORD_HASH)).toBe(false);
    },
    ARGON2_TIMEOUT,
  );

  const valid =
    "$argon2id$v=19$m=19456,t=2,p=1$d2F2cnktdGVzdC1zYWx0IQ$7QF7s2J2FGC82LFpzSkkCxP8EZMwJQOpFj4fnWNFBnk";
  const [salt, hash] = valid.split("$").slice(4);
  it.each([
    ["argon2i", valid.replace("$argon2id$", "$argon2i$")],
    ["argon2d", valid.replace("$argon2id$", "$argon2d$")],
    ["version 16", valid.replace("v=19", "v=16")],
    ["no version field", valid.replace("$v=19", "")],
    ["more memory", valid.replace("m=19456", "m=65536")],
    ["less memory", valid.replace("m=19456", "m=1024")],
    ["more time", valid.replace("t=2", "t=3")],
    ["one pass", valid.replace("t=2", "t=1")],
    ["more lanes", valid.replace("p=1", "p=2")],
    ["reordered parameters", valid.replace("m=19456,t=2,p=1", "t=2,m=19456,p=1")],
    ["a data parameter", valid.replace("p=1", "p=1,data=YWJj")],
    ["a leading-zero parameter", valid.replace("t=2", "t=02")],
    ["padded salt", `$argon2id$v=19$m=19456,t=2,p=1$${salt}==$${hash}`],
    ["padded hash", `${valid}=`],
    ["15-byte salt", `$argon2id$v=19$m=19456,t=2,p=1$${base64NoPadEncode(new Uint8Array(15))}$${hash}`],
    ["17-byte salt", `$argon2id$v=19$m=19456,t=2,p=1$${base64NoPadEncode(new Uint8Array(17))}$${hash}`],
    ["31-byte hash", `$argon2id$v=19$m=19456,t=2,p=1$${salt}$${base64NoPadEncode(new Uint8Array(31))}`],
    ["64-byte hash", `$argon2id$v=19$m=19456,t=2,p=1$${salt}$${base64NoPadEncode(new Uint8Array(64))}`],
    ["a base64url character", valid.replace("7QF7", "7QF-")],
    ["non-canonical last hash character", valid.replace(/k$/, "l")],
    ["an extra field", `${valid}$AAAA`],
    ["a trailing $", `${valid}$`],
    ["no salt", `$argon2id$v=19$m=19456,t=2,p=1$${hash}`],
    ["upper-case id", valid.replace("argon2id", "ARGON2ID")],
    ["leading whitespace", ` ${valid}`],
    ["trailing newline", `${valid}\n`],
    ["empty string", ""],
    ["bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"],
    ["a megabyte", "$".repeat(1 << 20)],
  ])("refuses a PHC string with %s (without hashing)", (_why, phc) => {
    expect(parsePasswordHash(phc)).toBeNull();
    expect(verifyPassword("Tr0ub4dor&3 horse", phc)).toBe(false);
  });

  it("refuses a password longer than any the policy admits, without hashing", () => {
    expect(verifyPassword("a".repeat(1025), valid)).toBe(false);
  });

  it("never throws on arbitrary PHC strings or single-character edits of a valid one", () => {
    const edited = fc
      .tuple(fc.nat(valid.length - 1), fc.constantFrom(..."$=,+/Aa09vmtp-_ "))
      .map(([i, ch]) => valid.slice(0, i) + ch + valid.slice(i + 1));
    fc.assert(
      fc.property(fc.oneof(anyString, edited), (phc) => {
        const parts = parsePasswordHash(phc);
        if (parts !== null) {
          expect(parts.salt.length).toBe(16);
          expect(parts.hash.length).toBe(32);
          expect(phc.startsWith("$argon2id$v=19$m=19456,t=2,p=1$")).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("secret box (AES-256-GCM key ring)", () => {
  const keyText = (byte: number, length = 32) =>
    base64urlEncode(Uint8Array.from({ length }, (_, i) => (byte + i) & 0xff));
  const K1 = keyText(1);
  const K2 = keyText(101);
  const aad = utf8("users.totp_secret:user-42");

  function ring(text: string): KeyRing {
    const parsed = parseKeyRing(text);
    if ("error" in parsed) throw new Error(parsed.error);
    return parsed;
  }

  it("parses a ring: the first entry is current, ids in order, key material not exposed", () => {
    const parsed = ring(`k2:${K2}, k1:${K1}`);
    expect(parsed.currentKeyId).toBe("k2");
    expect(parsed.keyIds).toEqual(["k2", "k1"]);
    const shown = `${JSON.stringify(parsed)} ${Object.values(parsed).join(" ")}`;
    expect(shown).not.toContain(K1);
    expect(shown).not.toContain(K2);
  });

  it.each([
    ["an empty ring", "", /empty/],
    ["a blank ring", "  ", /empty/],
    ["an entry without a colon", `k1${K1}`, /entry 1 is not kid:key/],
    ["an empty entry", `k1:${K1},`, /entry 2 is not kid:key/],
    ["an empty key id", `:${K1}`, /entry 1: key id/],
    ["a key id with a dot", `k.1:${K1}`, /entry 1: key id/],
    ["a key id with a space", `k 1:${K1}`, /entry 1: key id/],
    ["a 33-character key id", `${"k".repeat(33)}:${K1}`, /entry 1: key id/],
    ["a repeated key id", `k1:${K1},k1:${K2}`, /entry 2: key id "k1" appears twice/],
    ["a padded key", `k1:${K1}=`, /entry 1 \(k1\): key is not base64url/],
    [
      "a standard-base64 key",
      `k1:${base64NoPadEncode(Uint8Array.from({ length: 32 }, () => 0xfb))}`,
      /base64url/,
    ],
    ["a 16-byte key", `k1:${keyText(1, 16)}`, /32 bytes, not 16/],
    ["a 33-byte key", `k1:${keyText(1, 33)}`, /32 bytes, not 33/],
    ["an all-zero key", `k1:${base64urlEncode(new Uint8Array(32))}`, /weak/],
    ["an all-0x41 key", `k1:${base64urlEncode(new Uint8Array(32).fill(0x41))}`, /weak/],
    [
      "a weak second key",
      `k1:${K1},k2:${base64urlEncode(new Uint8Array(32).fill(0xff))}`,
      /entry 2 \(k2\).*weak/,
    ],
    ["one key under two ids", `k1:${K1},k2:${K1}`, /entry 2 \(k2\): same key as "k1"/],
    ["seventeen keys", Array.from({ length: 17 }, (_, i) => `k${i}:${keyText(i)}`).join(","), /more than 16/],
    ["a huge value", "k".repeat(5000), /longer than/],
  ])("refuses %s, naming the problem without echoing the key", (_why, text, message) => {
    const parsed = parseKeyRing(text);
    expect("error" in parsed).toBe(true);
    const error = "error" in parsed ? parsed.error : "";
    expect(error).toMatch(message);
    for (const key of [K1, K2, keyText(1, 16), keyText(1, 33)]) expect(error).not.toContain(key);
    expect(error).not.toContain(base64urlEncode(new Uint8Array(32)));
  });

  it("seals as v1.<kid>.<nonce>.<ciphertext> under the current key and opens it again", async () => {
    const r = ring(`k2:${K2},k1:${K1}`);
    const plaintext = utf8("JBSWY3DPEHPK3PXP");
    const sealed = await sealSecret(r, plaintext, aad, random);
    expect(sealed).toMatch(/^v1\.k2\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/); // 16 + 16-byte tag = 32 bytes
    expect(sealedKeyId(sealed)).toBe("k2");
    expect(await openSecret(r, sealed, aad)).toEqual(plaintext);
    expect(await openSecret(r, await sealSecret(r, new Uint8Array(0), aad, random), aad)).toEqual(
      new Uint8Array(0),
    );
  });

  it("takes the nonce from the random source it is given, fresh for every seal", async () => {
    const r = ring(`k1:${K1}`);
    const sealed = await sealSecret(r, utf8("x"), aad, constantRandom(0));
    expect(sealed.split(".")[2]).toBe("A".repeat(16));
    const a = await sealSecret(r, utf8("x"), aad, random);
    const b = await sealSecret(r, utf8("x"), aad, random);
    expect(a).not.toBe(b);
  });

  it("opens values sealed under an older key after rotation, and re-seals under the new one", async () => {
    const before = ring(`k1:${K1}`);
    const after = ring(`k2:${K2},k1:${K1}`);
    const sealed = await sealSecret(before, utf8("seed"), aad, random);
    expect(sealedKeyId(sealed)).toBe("k1");
    const opened = await openSecret(after, sealed, aad);
    expect(opened).toEqual(utf8("seed"));
    const resealed = await sealSecret(after, opened ?? new Uint8Array(0), aad, random);
    expect(sealedKeyId(resealed)).toBe(after.currentKeyId);
    expect(await openSecret(before, resealed, aad)).toBeNull(); // the old ring does not know k2
  });

  it("returns null for an unknown kid, the same kid with another key, or a kid swapped in the header", async () => {
    const r = ring(`k1:${K1},k2:${K2}`);
    const sealed = await sealSecret(r, utf8("seed"), aad, random);
    expect(await openSecret(ring(`k3:${K1}`), sealed, aad)).toBeNull(); // same key, unknown kid
    expect(await openSecret(ring(`k1:${K2}`), sealed, aad)).toBeNull(); // known kid, other key
    expect(await openSecret(r, sealed.replace(/^v1\.k1\./, "v1.k2."), aad)).toBeNull();
  });

  it("returns null for the wrong AAD (a value moved to another row)", async () => {
    const r = ring(`k1:${K1}`);
    const sealed = await sealSecret(r, utf8("seed"), aad, random);
    expect(await openSecret(r, sealed, utf8("users.totp_secret:user-43"))).toBeNull();
    expect(await openSecret(r, sealed, new Uint8Array(0))).toBeNull();
    const unbound = await sealSecret(r, utf8("seed"), new Uint8Array(0), random);
    expect(await openSecret(r, unbound, new Uint8Array(0))).toEqual(utf8("seed"));
    expect(await openSecret(r, unbound, aad)).toBeNull();
  });

  it("returns null for every single-character change of a sealed value", async () => {
    const r = ring(`k1:${K1},k2:${K2}`);
    const sealed = await sealSecret(r, utf8("a TOTP seed of twenty"), aad, random);
    const tampered = substitutions(sealed, `${B64URL}.`);
    expect(tampered.length).toBe(sealed.length);
    for (const candidate of tampered) {
      expect(await openSecret(r, candidate, aad), candidate).toBeNull();
    }
    expect(await openSecret(r, sealed, aad)).toEqual(utf8("a TOTP seed of twenty"));
  });

  it.each([
    ["empty", ""],
    ["another version", "v2.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["too few parts", "v1.k1.AAAAAAAAAAAAAAAA"],
    ["too many parts", "v1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.AA"],
    ["a bad kid", "v1.k 1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["an 11-byte nonce", "v1.k1.AAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["a 15-byte ciphertext (shorter than a tag)", "v1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAA"],
    ["padding", "v1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA=="],
    ["a huge value", `v1.k1.AAAAAAAAAAAAAAAA.${"A".repeat(200_000)}`],
  ])("returns null for a malformed sealed value: %s", async (_why, sealed) => {
    expect(await openSecret(ring(`k1:${K1}`), sealed, aad)).toBeNull();
    expect(sealedKeyId(sealed)).toBeNull();
  });

  it("refuses to seal more than the plaintext limit", async () => {
    const r = ring(`k1:${K1}`);
    await expect(sealSecret(r, new Uint8Array(SECRET_BOX_MAX_PLAINTEXT + 1), aad, random)).rejects.toThrow(
      RangeError,
    );
    const largest = await sealSecret(r, new Uint8Array(SECRET_BOX_MAX_PLAINTEXT), aad, random);
    expect((await openSecret(r, largest, aad))?.length).toBe(SECRET_BOX_MAX_PLAINTEXT);
  });

  it("round-trips arbitrary plaintexts and AADs", async () => {
    const r = ring(`k1:${K1}`);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 64 }),
        async (pt, ad) => {
          const sealed = await sealSecret(r, pt, ad, random);
          expect(sealedKeyId(sealed)).toBe("k1");
          expect(await openSecret(r, sealed, ad)).toEqual(pt);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never throws on arbitrary key-ring text or sealed values", async () => {
    const r = ring(`k1:${K1}`);
    const ringish = fc
      .array(fc.tuple(fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,33}$/), anyString), anyString), {
        maxLength: 4,
      })
      .map((entries) => entries.map(([kid, key]) => `${kid}:${key}`).join(","));
    fc.assert(
      fc.property(fc.oneof(anyString, ringish), (text) => {
        const parsed = parseKeyRing(text);
        if (!("error" in parsed)) expect(parsed.keyIds).toContain(parsed.currentKeyId);
      }),
      { numRuns: 1000 },
    );
    const sealedish = fc
      .tuple(fc.constantFrom("v1", "v2", ""), fc.constantFrom("k1", "k2", "", "k.1"), anyString, anyString)
      .map((parts) => parts.join("."));
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyString, sealedish), async (text) => {
        expect(await openSecret(r, text, aad)).toBeNull();
        const kid = sealedKeyId(text);
        if (kid !== null) expect(kid).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
      }),
      { numRuns: 1000 },
    );
  });
});
