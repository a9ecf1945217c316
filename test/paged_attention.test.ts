import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { cacheWrite, pagedAttention } from '../src/runtime/ops/paged_attention.js';
import { type CaseSpec, buildCase, decodeRef, excessError, prefillRef } from './helpers/ref_paged_attention.js';
import { Rng } from './helpers/random.js';

const CASES: [string, CaseSpec][] = [
  ['decode, GQA 8/2, ragged lengths incl. 1, 0 and non-multiples of the block size', { lens: [1, 17, 64, 45, 0, 16], queries: 1, heads: 8, kvHeads: 2, headDim: 32, blockSize: 16 }],
  ['verify 3 queries, GQA 4/1, a sequence shorter than the query count', { lens: [3, 20, 50, 2], queries: 3, heads: 4, kvHeads: 1, headDim: 16, blockSize: 8 }],
  ['sliding window 5, decode', { lens: [1, 4, 5, 6, 33], queries: 1, heads: 4, kvHeads: 2, headDim: 16, blockSize: 4, window: 5 }],
  ['sliding window 6, verify 4 queries', { lens: [4, 9, 40], queries: 4, heads: 6, kvHeads: 3, headDim: 8, blockSize: 16, window: 6 }],
  ['block size 7, MHA, head dim 24', { lens: [7, 8, 30, 13], queries: 2, heads: 3, kvHeads: 3, headDim: 24, blockSize: 7 }],
];

describe('pagedAttention (CPU)', () => {
  const rng = new Rng(2024);

  for (const [name, spec] of CASES) {
    it(`matches the float64 references: ${name}`, () => {
      const c = buildCase(rng, spec);
      const scale = 1 / Math.sqrt(spec.headDim);
      const out = pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens, { window: spec.window });
      expect(out.shape).toEqual(c.q.shape);
      const got = out.toArray() as Float32Array;
      // fp32 online softmax over <= 64 keys of N(0,1) data vs float64: ~1e-6; 1e-5 leaves margin
      expect(excessError(got, decodeRef(c, scale), 0)).toBeLessThan(1e-5);
      // and the same rows of prefill-style causal attention over each contiguous sequence
      const { lens, queries: Q, heads, kvHeads, headDim: hd } = spec;
      for (let b = 0; b < lens.length; b++) {
        const pre = prefillRef(c.qAll[b], c.keys[b], c.values[b], lens[b], heads, kvHeads, hd, scale, spec.window ?? 0);
        for (let t = 0; t < Q; t++) {
          const p = lens[b] - Q + t;
          const row = got.subarray((b * Q + t) * heads * hd, (b * Q + t + 1) * heads * hd);
          if (p < 0) {
            expect(Array.from(row).every((x) => x === 0)).toBe(true); // no keys: zeros
            continue;
          }
          expect(excessError(row, pre.subarray(p * heads * hd, (p + 1) * heads * hd), 0)).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('decode rows of a 3-dim q equal the 4-dim call with one query', () => {
    const c = buildCase(rng, { lens: [5, 19], queries: 1, heads: 4, kvHeads: 2, headDim: 16, blockSize: 4 });
    const a = pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens, { scale: 0.3 });
    const b = pagedAttention(c.q.reshape([2, 4, 16]), c.kCache, c.vCache, c.blockTable, c.seqLens, { scale: 0.3 });
    expect(b.shape).toEqual([2, 4, 16]);
    expect(Array.from(b.toArray() as Float32Array)).toEqual(Array.from(a.toArray() as Float32Array));
    expect(excessError(a.toArray() as Float32Array, decodeRef(c, 0.3), 0)).toBeLessThan(1e-5);
  });

  for (const dtype of ['bfloat16', 'float16'] as const) {
    it(`${dtype} storage: fp32 math, one output rounding`, () => {
      const c = buildCase(rng, { lens: [33, 1, 70], queries: 2, heads: 4, kvHeads: 2, headDim: 32, blockSize: 16, dtype });
      const got = pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens).toArray() as Float32Array;
      // inputs are exactly representable (rounded before the reference sees them); the output
      // rounding is at most 2^-9 (bf16) / 2^-12 (f16) relative; fp32 math adds ~1e-6
      expect(excessError(got, decodeRef(c, 1 / Math.sqrt(32)), dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11)).toBeLessThan(1e-5);
    });
  }

  it('cacheWrite stores rows at their slots and skips -1', () => {
    const kCache = Tensor.zeros([3, 2, 1, 4]);
    const vCache = Tensor.zeros([3, 2, 1, 4]);
    const k = Tensor.fromArray(Array.from({ length: 12 }, (_, i) => i + 1), [3, 1, 4]);
    const v = Tensor.fromArray(Array.from({ length: 12 }, (_, i) => -(i + 1)), [3, 1, 4]);
    cacheWrite(kCache, vCache, k, v, Tensor.fromArray(Int32Array.from([5, -1, 0]), [3]));
    const kc = Array.from(kCache.toArray() as Float32Array);
    const vc = Array.from(vCache.toArray() as Float32Array);
    expect(kc.slice(20, 24)).toEqual([1, 2, 3, 4]); // slot 5 = block 2, offset 1
    expect(kc.slice(0, 4)).toEqual([9, 10, 11, 12]); // slot 0
    expect(vc.slice(20, 24)).toEqual([-1, -2, -3, -4]);
    expect(kc.slice(4, 20).every((x) => x === 0)).toBe(true); // token 1 (slot -1) went nowhere
  });

  it('bad slots, sequence lengths and block ids are errors naming the position', () => {
    const c = buildCase(rng, { lens: [5, 9], queries: 1, heads: 2, kvHeads: 1, headDim: 8, blockSize: 4 });
    const [numBlocks] = c.kCache.shape;
    const cap = numBlocks * 4;
    const k = Tensor.fromArray(rng.normal(16), [2, 1, 8]);
    expect(() => cacheWrite(c.kCache, c.vCache, k, k, Tensor.fromArray(Int32Array.from([0, cap]), [2]))).toThrow(
      new RegExp(`cacheWrite: slot ${cap} at position 1 is outside the cache \\[0, ${cap}\\)`),
    );
    expect(() => cacheWrite(c.kCache, c.vCache, k, k, Tensor.fromArray(Int32Array.from([-2, 0]), [2]))).toThrow(/slot -2 at position 0/);
    const maxBlocks = c.blockTable.shape[1];
    const tooLong = Tensor.fromArray(Int32Array.from([5, maxBlocks * 4 + 1]), [2]);
    expect(() => pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, tooLong)).toThrow(/pagedAttention: seq_lens\[1\] = \d+ is outside \[0, \d+\]/);
    const table = Int32Array.from(c.blockTable.toArray() as Int32Array);
    table[maxBlocks + 2] = numBlocks; // sequence 1 uses 3 blocks (9 tokens)
    expect(() => pagedAttention(c.q, c.kCache, c.vCache, Tensor.fromArray(table, [2, maxBlocks]), c.seqLens)).toThrow(
      new RegExp(`pagedAttention: block_table\\[1, 2\\] = ${numBlocks} is outside \\[0, ${numBlocks}\\)`),
    );
  });

  it('names the op, shapes and dtypes when misused', () => {
    const c = buildCase(rng, { lens: [3], queries: 1, heads: 4, kvHeads: 2, headDim: 8, blockSize: 4 });
    const pa = (over: Partial<Record<'q' | 'kCache' | 'vCache' | 'blockTable' | 'seqLens', Tensor>>, opts = {}) =>
      pagedAttention(over.q ?? c.q, over.kCache ?? c.kCache, over.vCache ?? c.vCache, over.blockTable ?? c.blockTable, over.seqLens ?? c.seqLens, opts);
    expect(() => pa({ q: Tensor.fromArray(rng.normal(24), [1, 1, 3, 8]) })).toThrow(/pagedAttention: q has 3 heads, not a multiple of the caches' 2 kv heads/);
    expect(() => pa({ q: Tensor.fromArray(rng.normal(32), [1, 1, 4, 8], { dtype: 'bfloat16' }) })).toThrow(/pagedAttention: dtypes differ: q is bfloat16, kCache is float32/);
    expect(() => pa({ q: Tensor.fromArray(rng.normal(64), [1, 1, 4, 16]) })).toThrow(/pagedAttention: kCache is float32\[\d+, 4, 2, 8\] on cpu; expected shape \[-1, -1, -1, 16\]/);
    expect(() => pa({ blockTable: Tensor.fromArray([0, 1], [1, 2]) })).toThrow(/pagedAttention: blockTable is float32\[1, 2\] on cpu; expected dtype int32/);
    expect(() => pa({ seqLens: Tensor.fromArray(Int32Array.from([3, 3]), [2]) })).toThrow(/pagedAttention: seqLens is int32\[2\] on cpu; expected shape \[1\]/);
    expect(() => pa({ vCache: Tensor.zeros([1, 4, 2, 8]) })).toThrow(/pagedAttention: vCache is float32\[1, 4, 2, 8\] on cpu; expected shape/);
    expect(() => pa({}, { window: -1 })).toThrow(/window must be a non-negative integer/);
    expect(() => pa({}, { out: Tensor.zeros([1, 4, 8]) })).toThrow(/pagedAttention: out is float32\[1, 4, 8\] on cpu; expected float32\[1, 1, 4, 8\]/);
    const k = Tensor.fromArray(rng.normal(16), [1, 2, 8]);
    expect(() => cacheWrite(c.kCache, c.vCache, k, k, Tensor.fromArray(Int32Array.from([0, 1]), [2]))).toThrow(/cacheWrite: slotMapping is int32\[2\] on cpu; expected shape \[1\]/);
    expect(() => cacheWrite(c.kCache, c.vCache, Tensor.fromArray(rng.normal(16), [1, 2, 8], { dtype: 'bfloat16' }), k, Tensor.fromArray(Int32Array.from([0]), [1]))).toThrow(/cacheWrite: dtypes differ/);
  });

  it('writes into a given out tensor', () => {
    const c = buildCase(rng, { lens: [6, 2], queries: 1, heads: 2, kvHeads: 1, headDim: 8, blockSize: 4 });
    const out = Tensor.zeros(c.q.shape);
    expect(pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens, { out })).toBe(out);
    expect(excessError(out.toArray() as Float32Array, decodeRef(c, 1 / Math.sqrt(8)), 0)).toBeLessThan(1e-5);
  });
});
