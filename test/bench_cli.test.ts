import { describe, expect, it } from 'vitest';
import { benchCommand, intAtLeast, parseBench, type CommonArgs } from '../bench/cli.js';

interface Args extends CommonArgs {
  iters: number;
  warmup: number;
  rows: number;
}

/** A bench program like bench/membw.ts's, throwing instead of exiting and printing nothing. */
function program() {
  return benchCommand('membw', 'test program', { iters: 30, warmup: 5 })
    .option('--rows <n>', 'rows', intAtLeast('--rows', 1), 32768)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
}

const parse = (...flags: string[]) => parseBench<Args>(program(), ['node', 'membw.js', ...flags]);

describe('bench command lines (bench/cli.ts)', () => {
  it('gives the defaults with no flags', () => {
    expect(parse()).toEqual({ torch: true, iters: 30, warmup: 5, rows: 32768 });
  });

  it('reads every shared flag and the bench its own', () => {
    expect(parse('--iters', '25', '--warmup', '0', '--no-torch', '--out', '/tmp/r.json', '--rows', '7')).toEqual({
      torch: false,
      out: '/tmp/r.json',
      iters: 25,
      warmup: 0,
      rows: 7,
    });
  });

  it('refuses bad values, naming the flag and what it wants', () => {
    expect(() => parse('--iters', '5')).toThrow(/--iters must be an integer >= 20 \(the median of at least 20 runs\), got 5/);
    expect(() => parse('--rows', '0')).toThrow(/--rows must be an integer >= 1, got 0/);
    expect(() => parse('--rows', '2.5')).toThrow(/--rows must be an integer >= 1, got 2.5/);
    expect(() => parse('--warmup', 'x')).toThrow(/--warmup must be an integer >= 0, got x/);
    expect(() => parse('--bogus')).toThrow(/unknown option '--bogus'/);
    expect(() => parse('--out')).toThrow(/argument missing/);
  });

  it('explains itself in --help', () => {
    const help = program().helpInformation();
    for (const flag of ['--no-torch', '--out <path>', '--iters <n>', '--warmup <n>', '--rows <n>']) expect(help).toContain(flag);
    expect(help).toContain('test program');
  });
});
