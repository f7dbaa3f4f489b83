import { isIPv4, isIPv6 } from "node:net";
import type { ObservedAddress } from "../protocol/wire/relay-frames.ts";

/**
 * Socket address text as the relay's configuration and the kernel give it: parsing `host:port` settings, and
 * turning a datagram's source into the bytes a LEASE_ACK reports (PROTOCOL.md: 0x13 LEASE_ACK).
 */

/** A listen address: an IP literal and a port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `a.b.c.d:port` or `[v6]:port` (IP literals only: a listen address that needs DNS is ambiguous about which
 * interface it binds). Port 0 is accepted (tests bind an ephemeral port). Null for anything else.
 */
export function parseHostPort(text: string): HostPort | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port > 65_535) return null;
  const v6 = match[1];
  if (v6 !== undefined) return isIPv6(v6) ? { host: v6, port } : null;
  const v4 = match[2] ?? "";
  return isIPv4(v4) ? { host: v4, port } : null;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback: where the health port belongs by default. */
export function isLoopback(host: string): boolean {
  return host.startsWith("127.") || host === "::1" || host.toLowerCase().startsWith("::ffff:127.");
}

function ipv4Bytes(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const value = Number(parts[i]);
    if (!Number.isInteger(value) || value < 0 || value > 255) return false;
    out[at + i] = value;
  }
  return true;
}

/** Kernel-formatted IPv6 text (no brackets; a zone id is dropped) to 16 bytes, or null. */
function ipv6Bytes(text: string): Uint8Array | null {
  const zone = text.indexOf("%");
  const bare = zone >= 0 ? text.slice(0, zone) : text;
  const out = new Uint8Array(16);
  let tail = bare;
  let tailBytes = 0;
  const lastColon = bare.lastIndexOf(":");
  if (bare.includes(".")) {
    // Embedded dotted quad (RFC 4291 §2.2 form 3), as in ::ffff:192.0.2.1.
    if (!ipv4Bytes(bare.slice(lastColon + 1), out, 12)) return null;
    // Keep a "::" that ends right before the quad; otherwise drop the one colon that separates it.
    tail = bare.slice(0, lastColon + 1);
    if (!tail.endsWith("::")) tail = tail.slice(0, -1);
    tailBytes = 4;
  }
  const halves = tail.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string | undefined): number[] | null => {
    if (part === undefined || part === "") return [];
    const values: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      values.push(Number.parseInt(g, 16));
    }
    return values;
  };
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || rest === null) return null;
  const room = (16 - tailBytes) / 2;
  // Without "::" every group is written; with it, "::" stands for at least one zero group.
  if (halves.length === 1 ? head.length !== room : head.length + rest.length > room - 1) return null;
  head.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  const restAt = room - rest.length;
  rest.forEach((g, i) => {
    out[2 * (restAt + i)] = g >> 8;
    out[2 * (restAt + i) + 1] = g & 0xff;
  });
  return out;
}

/**
 * The address a datagram came from, as LEASE_ACK reports it. An IPv4-mapped IPv6 source (a dual-stack socket) is
 * reported as the IPv4 address it carries: that is the address the peer's NAT uses. Null for text the kernel would
 * never produce.
 */
export function observedAddress(address: string, port: number): ObservedAddress | null {
  if (isIPv4(address)) {
    const bytes = new Uint8Array(4);
    return ipv4Bytes(address, bytes, 0) ? { family: 4, address: bytes, port } : null;
  }
  const bytes = ipv6Bytes(address);
  if (bytes === null) return null;
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? { family: 4, address: bytes.slice(12), port } : { family: 6, address: bytes, port };
}
