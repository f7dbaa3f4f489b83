/**
 * Where a peer datagram went or came from: straight to a UDP address, or wrapped in FORWARD through the session's
 * relay. The relay path carries no address because the relay never takes a destination from a packet.
 */
export type PeerPath =
  | { readonly kind: "direct"; readonly address: string; readonly port: number }
  | { readonly kind: "relay" };

/** The one relay path value (compared by identity). */
export const RELAY_PATH: PeerPath = Object.freeze({ kind: "relay" });

/** A direct path. */
export function directPath(address: string, port: number): PeerPath {
  return { kind: "direct", address, port };
}

/** True when `path` is the relay path, or the direct path to `address`:`port` (`address` null = relay). */
export function pathIs(path: PeerPath | null, address: string | null, port: number): boolean {
  if (path === null) return false;
  if (address === null) return path.kind === "relay";
  return path.kind === "direct" && path.address === address && path.port === port;
}

/** A path as text for logs and status lines (addresses are not secret here; payloads and keys never appear). */
export function describePath(path: PeerPath): string {
  return path.kind === "relay" ? "relay" : `direct ${path.address}:${path.port}`;
}
