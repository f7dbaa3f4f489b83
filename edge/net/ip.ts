/**
 * Strict IP address text parsing and canonical formatting. Addresses are bytes: 4 for IPv4, 16 for IPv6.
 * Only the forms the RFCs define are accepted: no octal or hex IPv4, no shortened quads, no zone ids, no brackets,
 * no ports. Pure; parsers return null on bad input and never throw.
 */

/** Longest IPv6 text: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`. */
const MAX_IP_TEXT = 45;

/**
 * IPv4 in dotted-quad form (RFC 791 addresses; the text form of RFC 1123 §2.1): four decimal octets 0-255, ASCII
 * digits only, no leading zeros (a leading zero means octal to inet_aton, so "010.0.0.1" is ambiguous and refused).
 */
function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    out[i] = value;
  }
  return out;
}

/** Parses 1-4 hex digits (RFC 4291 §2.2: leading zeros within a group may be omitted, not added beyond four). */
function parseGroup(text: string): number | null {
  return /^[0-9A-Fa-f]{1,4}$/.test(text) ? Number.parseInt(text, 16) : null;
}

/**
 * Parses colon-separated groups, the last of which may be an embedded dotted quad (RFC 4291 §2.2 form 3).
 * Returns the 16-bit values in order, or null.
 */
function parseGroups(text: string, allowIPv4Tail: boolean): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (allowIPv4Tail && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (v4 === null) return null;
      groups.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
    } else {
      const value = parseGroup(part);
      if (value === null) return null;
      groups.push(value);
    }
  }
  return groups;
}

/**
 * IPv6 text forms of RFC 4291 §2.2: eight groups of 1-4 hex digits, at most one `::` standing for one or more
 * zero groups, optionally ending in an embedded dotted quad. Zone ids (RFC 6874 `%eth0`) are refused: they mean
 * nothing off the host that wrote them.
 */
function parseIPv6(text: string): Uint8Array | null {
  const gap = text.indexOf("::");
  let groups: number[];
  if (gap < 0) {
    const all = parseGroups(text, true);
    if (all === null || all.length !== 8) return null;
    groups = all;
  } else {
    if (text.indexOf("::", gap + 1) >= 0) return null;
    const head = parseGroups(text.slice(0, gap), false);
    const tail = parseGroups(text.slice(gap + 2), true);
    // At most seven explicit groups: "::" stands for at least one zero group.
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (const [i, group] of groups.entries()) {
    out[2 * i] = group >>> 8;
    out[2 * i + 1] = group & 0xff;
  }
  return out;
}

/**
 * Parses an IPv4 (dotted quad) or IPv6 (RFC 4291 §2.2) address to 4 or 16 bytes; null for anything else, including
 * surrounding whitespace, brackets, ports and zone ids. An IPv4-mapped address such as `::ffff:192.0.2.1` stays 16
 * bytes here; {@link unmapIPv4} turns it into the IPv4 address.
 */
export function parseIp(text: string): Uint8Array | null {
  if (text.length === 0 || text.length > MAX_IP_TEXT) return null;
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/** True for an IPv4-mapped IPv6 address, `::ffff:0:0/96` (RFC 4291 §2.5.5.2). */
export function isIPv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2), or the bytes unchanged. Matching and
 * rate-limit keys use this form, so one client is one address whether it reached us over IPv4 or a dual-stack
 * socket.
 */
export function unmapIPv4(bytes: Uint8Array): Uint8Array {
  return isIPv4Mapped(bytes) ? bytes.slice(12, 16) : bytes;
}

function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * RFC 5952 §4: lower-case hex without leading zeros; the longest run of two or more zero groups (the first on a
 * tie) becomes `::`; a single zero group is written `0`. §5: IPv4-mapped addresses use mixed notation,
 * `::ffff:192.0.2.1`.
 */
function formatIPv6(bytes: Uint8Array): string {
  if (isIPv4Mapped(bytes)) return `::ffff:${formatIPv4(bytes.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[2 * i] as number) << 8) | (bytes[2 * i + 1] as number));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * Canonical text of a 4- or 16-byte address: dotted quad for IPv4, RFC 5952 for IPv6. Throws a TypeError for any
 * other length (a caller bug: the bytes come from {@link parseIp}).
 */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatIPv4(bytes);
  if (bytes.length === 16) return formatIPv6(bytes);
  throw new TypeError("an IP address is 4 or 16 bytes");
}
