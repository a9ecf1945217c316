import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CausalLM } from '../src/models/causal_lm.js';
import { prefill } from '../src/models/batch.js';
import { GreedyDecodePipeline } from '../src/models/decode_pipeline.js';
import { DecodeRunner } from '../src/models/decode_runner.js';
import type { KvSequence, PagedKvCache } from '../src/models/kv_cache.js';
import { loadCausalLM } from '../src/models/load.js';
import { argmax } from '../src/runtime/ops/sampling.js';
import { tidy } from '../src/runtime/scope.js';
import { Tensor } from '../src/runtime/tensor.js';
import { Rng } from './helpers/random.js';

// The greedy pipeline (host one step behind the device, two runners feeding each other's ids)
// against the plain step-by-step loop on the embedded aerie-tiny, on the CPU: same tokens, rows that
// stop on a token, by length or never start, and the one wasted step counted. The CUDA side (streams,
// graphs) runs in models_cuda.gpu.test.ts through generate().

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TINY = join(root, 'models/aerie-tiny');

function ids(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}

interface Started {
  cache: PagedKvCache;
  seqs: KvSequence[];
  first: number[];
}

describe('GreedyDecodePipeline', () => {
  let m: CausalLM;
  beforeAll(() => {
    m = loadCausalLM(TINY);
  });
  afterAll(() => m?.dispose());

  const WIDTH = 4;
  const BLOCK = 8;
  /** Prefills the prompts into a fresh cache; first = each prompt's greedy next token. */
  const start = (prompts: number[][]): Started => {
    const cache = m.createKvCache({ numBlocks: prompts.length * WIDTH, blockSize: BLOCK });
    const seqs = prompts.map(() => cache.newSequence());
    const out = prefill(m, prompts.map((p, i) => ({ ids: p, seq: seqs[i], logits: 'last' as const })), { cache });
    const first = tidy(() => argmax(out.logits!).toNumbers());
    out.logits!.dispose();
    return { cache, seqs, first };
  };

  /** The plain loop: step, argmax, read back, one step at a time; `stopAt[r]`: the token count at which row r stops (as EOS would). */
  const reference = (prompts: number[][], budget: number[], stopAt: number[]): { tokens: number[][]; steps: number } => {
    const { cache, seqs, first } = start(prompts);
    const runner = new DecodeRunner(m, cache, prompts.length, WIDTH);
    try {
      const tokens: number[][] = prompts.map(() => []);
      let next = first;
      let alive = budget.map((n) => n > 0);
      let steps = 0;
      while (alive.some(Boolean)) {
        const logits = runner.step(seqs.map((s, r) => (alive[r] ? s : null)), next.map((t, r) => (alive[r] ? t : 0)));
        next = tidy(() => argmax(logits).toNumbers());
        steps++;
        alive = alive.map((on, r) => {
          if (!on) return false;
          tokens[r].push(next[r]);
          return tokens[r].length < budget[r] && tokens[r].length !== stopAt[r];
        });
      }
      return { tokens, steps };
    } finally {
      runner.dispose();
      cache.dispose();
    }
  };

  const piped = (prompts: number[][], budget: number[], stopAt: number[]): { tokens: number[][]; launches: number; lengths: number[] } => {
    const { cache, seqs, first } = start(prompts);
    const pipeline = new GreedyDecodePipeline(m, cache, prompts.length, WIDTH);
    try {
      const tokens: number[][] = prompts.map(() => []);
      const launches = pipeline.run(seqs, first, budget, (r, tok) => {
        tokens[r].push(tok);
        return tokens[r].length < budget[r] && tokens[r].length !== stopAt[r];
      });
      return { tokens, launches, lengths: seqs.map((s) => s.length) };
    } finally {
      pipeline.dispose();
      cache.dispose();
    }
  };

  it('gives the step-by-step loop’s tokens; a row stopping on a token the host had not read costs one wasted step', () => {
    const rng = new Rng(31);
    const prompts = [ids(rng, 5, m.vocabSize), ids(rng, 9, m.vocabSize), ids(rng, 3, m.vocabSize), ids(rng, 7, m.vocabSize)];
    // Row 0 stops on its 3rd token, row 1 by length after 6, row 2 never starts, row 3 by length after 4.
    const budget = [10, 6, 0, 4];
    const stopAt = [3, -1, -1, -1];
    const ref = reference(prompts, budget, stopAt);
    expect(ref.tokens.map((t) => t.length)).toEqual([3, 6, 0, 4]);
    expect(ref.steps).toBe(6);
    const got = piped(prompts, budget, stopAt);
    expect(got.tokens).toEqual(ref.tokens);
    // The last row to stop (row 1) stops by length: no step beyond the 6 needed.
    expect(got.launches).toBe(6);
    // Row 0's 4th step was queued before its 3rd token was read: its cache took one more token.
    expect(got.lengths).toEqual([5 + 4, 9 + 6, 3, 7 + 4]);

    // When the last row stops on a token, the step queued after it is wasted.
    const alone = piped([prompts[0]], [10], [3]);
    expect(alone.tokens).toEqual([ref.tokens[0]]);
    expect(alone.launches).toBe(4);
    // By length alone, never.
    const byLength = piped([prompts[0]], [5], [-1]);
    expect(byLength.tokens[0]).toEqual(reference([prompts[0]], [5], [-1]).tokens[0]);
    expect(byLength.launches).toBe(5);
    expect(piped([prompts[0]], [0], [-1]).launches).toBe(0);
  });

  it('names bad budgets, and passes on an error thrown by accept', () => {
    const rng = new Rng(33);
    const { cache, seqs, first } = start([ids(rng, 4, m.vocabSize)]);
    const pipeline = new GreedyDecodePipeline(m, cache, 1, WIDTH);
    try {
      expect(() => pipeline.run(seqs, first, [1.5], () => true)).toThrow(/budget of row 0 must be a non-negative integer, got 1.5/);
      expect(() => pipeline.run(seqs, first, [2, 2], () => true)).toThrow(/expected 1 sequences, first tokens and budgets/);
      let seen = 0;
      expect(() =>
        pipeline.run(seqs, first, [5], () => {
          if (++seen === 2) throw new Error('client went away');
          return true;
        }),
      ).toThrow(/client went away/);
      expect(seen).toBe(2);
    } finally {
      pipeline.dispose();
      cache.dispose();
    }
  });

  it('a runner step takes its ids from the device, and argmaxInto writes the next ones there', () => {
    const rng = new Rng(32);
    const prompt = ids(rng, 6, m.vocabSize);
    const a = start([prompt]);
    const b = start([prompt]);
    const ra = new DecodeRunner(m, a.cache, 1, WIDTH);
    const rb = new DecodeRunner(m, b.cache, 1, WIDTH);
    const target = Tensor.zeros([1], 'int32', m.device);
    try {
      expect(() => rb.argmaxInto(Tensor.zeros([2], 'int32', m.device))).toThrow(/target must be int32 \[1\]/);
      rb.argmaxInto(target);
      ra.step(a.seqs, a.first);
      rb.ids.storage.write(Int32Array.from(b.first));
      rb.step(b.seqs, 'device');
      expect(Array.from(rb.logits.toArray() as Float32Array)).toEqual(Array.from(ra.logits.toArray() as Float32Array));
      expect(target.toNumbers()).toEqual(tidy(() => argmax(ra.logits).toNumbers()));
      expect(() => rb.argmaxInto(target)).toThrow(/only once, before the first step/);
      ra.stage(a.seqs, a.first);
      expect(() => ra.stage(a.seqs, a.first)).toThrow(/was not launched/);
    } finally {
      target.dispose();
      ra.dispose();
      rb.dispose();
      a.cache.dispose();
      b.cache.dispose();
    }
  });

  it('argmax writes into a given tensor, and names a wrong one', () => {
    tidy(() => {
      const logits = Tensor.fromArray([0, 3, 1, 5, 5, 2], [2, 3], { dtype: 'float32' });
      const out = Tensor.zeros([2], 'int32');
      expect(argmax(logits, { out })).toBe(out);
      expect(out.toNumbers()).toEqual([1, 0]);
      expect(() => argmax(logits, { out: Tensor.zeros([3], 'int32') })).toThrow(/out is .*expected shape \[2\]/);
      expect(() => argmax(logits, { out: Tensor.zeros([2], 'float32') })).toThrow(/out is .*expected dtype int32/);
    });
  });
});
