/**
 * The variants bench/decode_parts.ts times: which parts of the fused decode layer a captured step
 * keeps. `all`, `all-a-b` (all but those), `a+b` (only those); `attn@N` sets attention's split count.
 */
export const PARTS = ['qkv', 'attn', 'o', 'gateup', 'down', 'head', 'argmax'] as const;
export type Part = (typeof PARTS)[number];

export interface Variant {
  name: string;
  parts: Set<Part>;
  /** Attention's split count (pagedAttention numSplits); its default when absent. */
  splits?: number;
}

export function parseVariant(spec: string): Variant {
  const bad = (why: string) => new Error(`decode_parts: variant '${spec}': ${why} (write all, all-a-b or a+b with parts ${PARTS.join(', ')}; attn@N for N splits)`);
  let splits: number | undefined;
  const clean = spec.trim().replace(/attn@(\d+)/, (_, n: string) => ((splits = Number(n)), 'attn'));
  if (splits !== undefined && !(splits >= 1 && splits <= 1024)) throw bad(`attn@${splits} is outside 1..1024`);
  const names = (s: string, sep: RegExp) =>
    s.split(sep).filter(Boolean).map((p) => {
      if (!(PARTS as readonly string[]).includes(p)) throw bad(`unknown part '${p}'`);
      return p as Part;
    });
  let parts: Set<Part>;
  if (clean === 'all' || clean.startsWith('all-') || clean.startsWith('all+')) {
    if (clean.includes('+')) throw bad("'all-' takes parts away with '-', not '+'");
    const drop = new Set(names(clean.slice(3), /-/));
    parts = new Set(PARTS.filter((p) => !drop.has(p)));
  } else {
    if (clean.includes('-')) throw bad("only 'all-...' takes parts away");
    parts = new Set(names(clean, /\+/));
  }
  if (parts.size === 0) throw bad('no parts left');
  return { name: spec.trim(), parts, splits };
}
