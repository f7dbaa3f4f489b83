import { BlockList, isIPv4, isIPv6 } from "node:net";

/**
 * Address ranges the edge tells relays to refuse (DESIGN.md: block address ranges, also pushed to relays). Matching
 * is node:net's BlockList, which also matches an IPv4-mapped IPv6 source against IPv4 ranges; parsing is strict
 * here, as in edge/net/cidr.ts (not imported: relay-node does not depend on edge/). `generation` changes on every
 * update, so per-IP verdicts cached elsewhere know when to look again.
 */
export class AddressBlocks {
  private list = new BlockList();
  private count = 0;
  generation = 0;

  /** Replaces the ranges; returns the entries refused as malformed (they are skipped, the rest apply). */
  apply(cidrs: readonly string[]): { readonly applied: number; readonly refused: number } {
    const list = new BlockList();
    let applied = 0;
    for (const text of cidrs) {
      const range = parseCidr(text);
      if (range === null) continue;
      list.addSubnet(range.network, range.prefix, range.family);
      applied++;
    }
    this.list = list;
    this.count = applied;
    this.generation++;
    return { applied, refused: cidrs.length - applied };
  }

  /** True when `address` (as a socket reports it) lies in a blocked range. */
  has(address: string, family: string): boolean {
    if (this.count === 0) return false;
    return this.list.check(address, family === "IPv6" ? "ipv6" : "ipv4");
  }

  get size(): number {
    return this.count;
  }
}

/** `address/prefix` with a strict IP literal and a decimal prefix without leading zeros; null otherwise. */
export function parseCidr(
  text: string,
): { readonly network: string; readonly prefix: number; readonly family: "ipv4" | "ipv6" } | null {
  const match = /^([0-9A-Fa-f:.]{2,45})\/(0|[1-9][0-9]{0,2})$/.exec(text);
  if (match === null) return null;
  const network = match[1] ?? "";
  const prefix = Number(match[2]);
  // isIPv4 refuses leading zeros ("010.0.0.1" is octal to inet_aton) and short forms.
  if (isIPv4(network)) return prefix <= 32 ? { network, prefix, family: "ipv4" } : null;
  if (isIPv6(network)) return prefix <= 128 ? { network, prefix, family: "ipv6" } : null;
  return null;
}
