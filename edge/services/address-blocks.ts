import { cidrContains, parseCidr } from "../net/cidr.ts";
import { parseIp } from "../net/ip.ts";

type Cidr = NonNullable<ReturnType<typeof parseCidr>>;

/**
 * Admin-set address blocks (CIDR), checked on every request. Blocks are read from D1 and cached in the isolate for
 * at most {@link BLOCK_CACHE_MS}; a change made through this isolate clears the cache at once, others see it within
 * that bound.
 */
export const BLOCK_CACHE_MS = 2_000;
/** Bound on active blocks, so the per-request scan stays small. */
export const MAX_BLOCKS = 5_000;

let cache: { loadedAt: number; blocks: Cidr[] } | null = null;

export function clearBlockCache(): void {
  cache = null;
}

async function activeBlocks(db: D1Database, now: number): Promise<Cidr[]> {
  if (cache !== null && now - cache.loadedAt < BLOCK_CACHE_MS) return cache.blocks;
  const { results } = await db
    .prepare("SELECT cidr FROM address_blocks WHERE expires_at IS NULL OR expires_at > ? LIMIT ?")
    .bind(now, MAX_BLOCKS)
    .all<{ cidr: string }>();
  const blocks: Cidr[] = [];
  for (const row of results) {
    const parsed = parseCidr(row.cidr);
    if (parsed !== null) blocks.push(parsed);
  }
  cache = { loadedAt: now, blocks };
  return blocks;
}

/** True when `address` (canonical text) falls inside an active block. */
export async function isBlocked(db: D1Database, address: string, now: number): Promise<boolean> {
  const bytes = parseIp(address);
  if (bytes === null) return false;
  const blocks = await activeBlocks(db, now);
  return blocks.some((block) => cidrContains(block, bytes));
}
