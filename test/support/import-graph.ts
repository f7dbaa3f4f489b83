import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

/**
 * A small import-graph checker for the trust boundaries in DESIGN.md. It reads TypeScript sources as text,
 * follows relative imports transitively, and reports every path from a guarded folder to a forbidden module.
 */
export type SourceTree = ReadonlyMap<string, string>;

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;

/** Module specifiers imported by one source file. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2] ?? match[3];
    if (spec !== undefined) out.push(spec);
  }
  return out;
}

/** Resolves a specifier from `file` to a tree key (relative path) or leaves a bare package name as is. */
function resolve(file: string, spec: string, tree: SourceTree): string {
  if (!spec.startsWith(".")) return spec;
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
  for (const candidate of [joined, `${joined}.ts`, `${joined}/index.ts`])
    if (tree.has(candidate)) return candidate;
  return joined;
}

export interface Rule {
  readonly name: string;
  /** Files the rule guards (prefix of the relative path). */
  readonly from: string;
  /** Returns true for a module (tree path or package name) that must not be reachable. */
  readonly forbids: (module: string) => boolean;
}

/** Every violation as "rule: a -> b -> c". */
export function findViolations(tree: SourceTree, rules: readonly Rule[]): string[] {
  const violations: string[] = [];
  for (const rule of rules) {
    for (const start of tree.keys()) {
      if (!start.startsWith(rule.from)) continue;
      const seen = new Set<string>([start]);
      const queue: string[][] = [[start]];
      while (queue.length > 0) {
        const trail = queue.shift() as string[];
        const current = trail[trail.length - 1] as string;
        for (const spec of importsOf(tree.get(current) ?? "")) {
          const target = resolve(current, spec, tree);
          if (rule.forbids(target)) {
            violations.push(`${rule.name}: ${[...trail, target].join(" -> ")}`);
            continue;
          }
          if (tree.has(target) && !seen.has(target)) {
            seen.add(target);
            queue.push([...trail, target]);
          }
        }
      }
    }
  }
  return violations;
}

/** Reads every .ts file under the given folders of `root`, keyed by POSIX relative path. */
export function readTree(root: string, folders: readonly string[]): Map<string, string> {
  const tree = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith(".ts"))
        tree.set(path.relative(root, full).split(path.sep).join("/"), readFileSync(full, "utf8"));
    }
  };
  for (const folder of folders) walk(path.join(root, folder));
  return tree;
}
