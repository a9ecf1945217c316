/**
 * Command lines of the benchmarks: a commander program per bench with the options they share
 * (--iters, --warmup, --no-torch, --out), value checks that name the flag, and --help.
 */
import { Command, InvalidArgumentError } from 'commander';

/** What every bench reads; a bench's own options come on top. */
export interface CommonArgs {
  torch: boolean;
  out?: string;
}

/** Parses an integer flag value >= min; the error names the flag and what it wants. */
export function intAtLeast(flag: string, min: number, why = ''): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}${why}, got ${v}`);
    return n;
  };
}

/**
 * A program with --no-torch and --out, plus --iters (at least 20: the median of at least 20 runs)
 * and --warmup when their defaults are given.
 */
export function benchCommand(name: string, summary: string, timing?: { iters: number; warmup: number }): Command {
  const c = new Command(name)
    .description(summary)
    .option('--no-torch', 'skip the PyTorch reference run (bench/torch_*.py)')
    .option('--out <path>', 'also write the results to PATH as JSON');
  if (timing) {
    c.option('--iters <n>', 'timed runs; their median is reported', intAtLeast('--iters', 20, ' (the median of at least 20 runs)'), timing.iters);
    c.option('--warmup <n>', 'untimed runs before them', intAtLeast('--warmup', 0), timing.warmup);
  }
  return c;
}

/** Parses argv (node, script, ...flags) with `c`; commander prints usage errors and exits. */
export function parseBench<T extends CommonArgs>(c: Command, argv: readonly string[] = process.argv): T {
  c.parse(argv as string[]);
  return c.opts<T>();
}
