/**
 * CIDR prefixes (RFC 4632 §3.1 for IPv4, RFC 4291 §2.3 for IPv6): parsing, canonical text and containment.
 * Pure; the parser returns null on bad input and never throws.
 */
import { formatIp, isIPv4Mapped, parseIp, unmapIPv4 } from "./ip.ts";

/** A parsed prefix. `network` has every bit after `prefix` cleared; its length is 4 or 16 to match `family`. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly network: Uint8Array;
  readonly prefix: number;
}

/** Longest CIDR text: an IPv6 address (45), "/" and three digits. */
const MAX_CIDR_TEXT = 49;
/** Bits of `::ffff:0:0/96` in front of the IPv4 address of a mapped address. */
const MAPPED_PREFIX_BITS = 96;

/** Clears every bit after the first `prefix` bits (returns a copy). */
function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.min(8, Math.max(0, prefix - 8 * i));
    out[i] = (out[i] as number) & ((0xff00 >>> keep) & 0xff);
  }
  return out;
}

/**
 * Parses `address/prefix`: a strict address ({@link parseIp}) and a decimal prefix length without leading zeros,
 * at most 32 for IPv4 and 128 for IPv6. Host bits after the prefix are accepted and cleared, so `10.1.2.3/8` is
 * `10.0.0.0/8`. A prefix inside `::ffff:0:0/96` (IPv4-mapped, RFC 4291 §2.5.5.2) of length 96 or more becomes the
 * IPv4 prefix it stands for (`::ffff:10.0.0.0/104` is `10.0.0.0/8`), matching how addresses are compared.
 * Null for anything else; never throws.
 */
export function parseCidr(text: string): Cidr | null {
  if (text.length > MAX_CIDR_TEXT) return null;
  const slash = text.indexOf("/");
  if (slash < 0) return null;
  const address = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === null || !/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  let prefix = Number(prefixText);
  if (prefix > address.length * 8) return null;
  let network = address;
  if (isIPv4Mapped(address) && prefix >= MAPPED_PREFIX_BITS) {
    network = unmapIPv4(address);
    prefix -= MAPPED_PREFIX_BITS;
  }
  return { family: network.length === 4 ? 4 : 6, network: mask(network, prefix), prefix };
}

/** Canonical text of a prefix: the masked network in canonical form ({@link formatIp}), "/" and the length. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp(mask(cidr.network, cidr.prefix))}/${cidr.prefix}`;
}

/**
 * True when the address (4 or 16 bytes) lies inside the prefix. An IPv4-mapped IPv6 address is compared as the
 * IPv4 address it carries, so `::ffff:10.1.2.3` is inside `10.0.0.0/8`. IPv4 addresses are never inside an IPv6
 * prefix (not even `::/0`) and IPv6 addresses never inside an IPv4 one. False, not an exception, for an address or
 * prefix of the wrong shape.
 */
export function cidrContains(cidr: Cidr, ip: Uint8Array): boolean {
  const address = unmapIPv4(ip);
  const bits = cidr.network.length * 8;
  if (address.length !== cidr.network.length || (bits !== 32 && bits !== 128)) return false;
  if (!Number.isInteger(cidr.prefix) || cidr.prefix < 0 || cidr.prefix > bits) return false;
  const full = cidr.prefix >>> 3;
  for (let i = 0; i < full; i++) if (address[i] !== cidr.network[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const m = (0xff00 >>> rest) & 0xff;
  return (((address[full] as number) ^ (cidr.network[full] as number)) & m) === 0;
}
