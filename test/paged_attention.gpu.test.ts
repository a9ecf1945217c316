import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { firstByteDifference } from './helpers/compare.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { CudaGraph, memoryStats, synchronize } from '../src/runtime/cuda.js';
import { cacheWrite, pagedAttention, pagedAttentionSplits } from '../src/runtime/ops/paged_attention.js';
import { type CaseSpec, type PagedCase, buildCase, decodeRef, excessError, nanCache } from './helpers/ref_paged_attention.js';
import { Rng } from './helpers/random.js';

const dev = 'cuda:0' as const;

interface GpuCase {
  kCache: Tensor;
  vCache: Tensor;
  blockTable: Tensor;
  seqLens: Tensor;
  q: Tensor;
}

/** The case's tensors on the GPU, the caches filled by a CUDA cacheWrite into NaN caches. */
function toGpu(c: PagedCase): GpuCase {
  const dtype = c.spec.dtype ?? 'float32';
  const kCache = nanCache([...c.kCache.shape], dtype, dev);
  const vCache = nanCache([...c.vCache.shape], dtype, dev);
  cacheWrite(kCache, vCache, c.writeK.to(dev), c.writeV.to(dev), c.slots.to(dev));
  return { kCache, vCache, blockTable: c.blockTable.to(dev), seqLens: c.seqLens.to(dev), q: c.q.to(dev) };
}

// CUDA vs the CPU twin, both fp32 math on the same inputs. Scores differ by the dot products'
// summation order and exp2f vs expf (a few ulp, ~1e-6 relative), the split combine reorders the
// sums: outputs (averages of N(0,1) values) differ by ~1e-6, so 2e-5 absolute. bf16/f16 outputs are
// rounded once from fp32 values that differ by that much, so they may differ by one output ulp:
// 2^-8 / 2^-11 relative on top.
const REL = { float32: 0, bfloat16: 2 ** -8, float16: 2 ** -11 } as const;
const ABS = 2e-5;

const LONG = [1, 300, 2999, 0, 17, 1025];

const CASES: [string, CaseSpec, number][] = [
  ['f32 hd 128, GQA 16/4, lens up to 2999', { lens: LONG, queries: 1, heads: 16, kvHeads: 4, headDim: 128, blockSize: 16, dtype: 'float32' }, 0],
  ['bf16 hd 128, GQA 16/4, lens up to 2999', { lens: LONG, queries: 1, heads: 16, kvHeads: 4, headDim: 128, blockSize: 16, dtype: 'bfloat16' }, 0],
  ['f32 hd 64, GQA 8/2', { lens: LONG, queries: 1, heads: 8, kvHeads: 2, headDim: 64, blockSize: 16, dtype: 'float32' }, 0],
  ['bf16 hd 64, MHA 4/4, block size 32', { lens: LONG, queries: 1, heads: 4, kvHeads: 4, headDim: 64, blockSize: 32, dtype: 'bfloat16' }, 0],
  ['f32 hd 96 (24 vectors: 32 lanes, 8 idle)', { lens: [5, 1500, 333], queries: 1, heads: 8, kvHeads: 2, headDim: 96, blockSize: 16, dtype: 'float32' }, 0],
  ['bf16 hd 96 (12 vectors: 16 lanes, 4 idle)', { lens: [5, 1500, 333], queries: 1, heads: 8, kvHeads: 2, headDim: 96, blockSize: 16, dtype: 'bfloat16' }, 0],
  ['f16 hd 128', { lens: [700, 2], queries: 1, heads: 4, kvHeads: 1, headDim: 128, blockSize: 16, dtype: 'float16' }, 0],
  ['f32 hd 256 (2 vectors per lane)', { lens: [100, 513, 1], queries: 1, heads: 4, kvHeads: 2, headDim: 256, blockSize: 16, dtype: 'float32' }, 0],
  ['bf16 hd 256', { lens: [100, 513, 1], queries: 1, heads: 4, kvHeads: 2, headDim: 256, blockSize: 16, dtype: 'bfloat16' }, 0],
  ['f32 hd 512 (4 vectors per lane)', { lens: [300, 7], queries: 1, heads: 2, kvHeads: 1, headDim: 512, blockSize: 8, dtype: 'float32' }, 0],
  ['bf16 verify 4 queries, GQA 8/1 (32 rows per block), window 256', { lens: [4, 2000, 700, 3], queries: 4, heads: 8, kvHeads: 1, headDim: 128, blockSize: 16, window: 256, dtype: 'bfloat16' }, 0],
  ['f32 verify 5 queries, window 3, block size 5', { lens: [5, 64, 1111, 2], queries: 5, heads: 6, kvHeads: 2, headDim: 32, blockSize: 5, window: 3, dtype: 'float32' }, 0],
  ['f32 peaked softmax (scale 0.5), verify 2', { lens: [2, 999, 2500], queries: 2, heads: 8, kvHeads: 2, headDim: 64, blockSize: 16, dtype: 'float32' }, 0.5],
];

describe.skipIf(!hasGpu)('pagedAttention (CUDA vs CPU twin)', () => {
  const rng = new Rng(31337);

  for (const [name, spec, scaleOverride] of CASES) {
    it(name, () => {
      const c = buildCase(rng, spec);
      const g = toGpu(c);
      // cacheWrite on the GPU wrote exactly what the CPU twin wrote (padding rows skipped, NaN kept)
      expect(firstByteDifference(g.kCache.storage.read(), c.kCache.storage.read())).toBe(-1);
      expect(firstByteDifference(g.vCache.storage.read(), c.vCache.storage.read())).toBe(-1);
      const scale = scaleOverride || 1 / Math.sqrt(spec.headDim);
      const opts = { scale, window: spec.window };
      const cpu = pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens, opts).toArray() as Float32Array;
      const rel = REL[spec.dtype ?? 'float32'];
      const capacity = c.blockTable.shape[1] * spec.blockSize;
      const auto = pagedAttentionSplits(capacity, spec.lens.length, spec.kvHeads);
      // one split (no combine), the default, an odd count, and more splits than short sequences have tokens
      for (const numSplits of [1, auto, 7, 64]) {
        const gpu = pagedAttention(g.q, g.kCache, g.vCache, g.blockTable, g.seqLens, { ...opts, numSplits }).toArray() as Float32Array;
        const err = excessError(gpu, cpu, rel);
        expect(err, `numSplits ${numSplits}`).toBeLessThan(ABS);
      }
    });
  }

  it('the CPU twin it is compared with matches the float64 reference on a long sequence', () => {
    const c = buildCase(rng, { lens: [2999, 1], queries: 2, heads: 4, kvHeads: 1, headDim: 64, blockSize: 16 });
    const cpu = pagedAttention(c.q, c.kCache, c.vCache, c.blockTable, c.seqLens).toArray() as Float32Array;
    expect(excessError(cpu, decodeRef(c, 1 / 8), 0)).toBeLessThan(ABS);
  });

  it('cacheWrite on CUDA skips slots outside the cache (cannot report without a sync)', () => {
    const kCache = Tensor.zeros([2, 4, 1, 8], 'bfloat16', dev);
    const vCache = Tensor.zeros([2, 4, 1, 8], 'bfloat16', dev);
    const k = Tensor.fromArray(rng.normal(4 * 8), [4, 1, 8], { dtype: 'bfloat16' });
    cacheWrite(kCache, vCache, k.to(dev), k.to(dev), Tensor.fromArray(Int32Array.from([0, 8, 5, -7]), [4], { device: dev }));
    const kc = kCache.toArray() as Float32Array;
    const kv = k.toArray() as Float32Array;
    expect(Array.from(kc.subarray(0, 8))).toEqual(Array.from(kv.subarray(0, 8)));
    expect(Array.from(kc.subarray(40, 48))).toEqual(Array.from(kv.subarray(16, 24)));
    const untouched = Array.from(kc).filter((_, i) => !(i < 8 || (i >= 40 && i < 48)));
    expect(untouched.every((x) => x === 0)).toBe(true);
  });

  it('a captured decode step (cacheWrite + pagedAttention) replays to the direct result, also after seqLens and q change', () => {
    const spec: CaseSpec = { lens: [47, 1000, 1, 512], queries: 1, heads: 8, kvHeads: 2, headDim: 128, blockSize: 16, dtype: 'bfloat16', spareColumns: 8 };
    const c = buildCase(rng, spec);
    const g = toGpu(c);
    const B = spec.lens.length;
    const maxBlocks = c.blockTable.shape[1];
    const table = c.blockTable.toArray() as Int32Array;
    // the decode step writes one new token per sequence at its current length, then attends
    const newK = Tensor.fromArray(rng.normal(B * 2 * 128), [B, 2, 128], { dtype: 'bfloat16', device: dev });
    const newV = Tensor.fromArray(rng.normal(B * 2 * 128), [B, 2, 128], { dtype: 'bfloat16', device: dev });
    const slots = Tensor.zeros([B], 'int32', dev);
    const out = Tensor.zeros(g.q.shape, 'bfloat16', dev);
    let lens = [...spec.lens];
    // blocks no sequence uses yet, handed out as sequences cross into a new block (512 -> 513 on the
    // first step, 47 -> 48 -> 49 on the second)
    const used = new Set(Array.from(table).filter((x) => x >= 0));
    const free = Array.from({ length: c.kCache.shape[0] }, (_, i) => i).filter((i) => !used.has(i));
    const advance = () => {
      const s: number[] = [];
      lens = lens.map((l, b) => {
        if (l % 16 === 0 && table[b * maxBlocks + l / 16] < 0) table[b * maxBlocks + l / 16] = free.shift()!;
        s.push(table[b * maxBlocks + Math.floor(l / 16)] * 16 + (l % 16));
        return l + 1;
      });
      slots.storage.write(Int32Array.from(s));
      g.blockTable.storage.write(table);
      g.seqLens.storage.write(Int32Array.from(lens));
    };
    const step = () => tidy(() => {
      cacheWrite(g.kCache, g.vCache, newK, newV, slots);
      pagedAttention(g.q, g.kCache, g.vCache, g.blockTable, g.seqLens, { out });
    });
    // direct reference runs on copies of the caches, so the graph sees the same state
    const k0 = g.kCache.clone();
    const v0 = g.vCache.clone();
    advance();
    step(); // also warms the allocator cache for the capture
    synchronize(dev);
    const direct1 = Array.from(out.toArray() as Float32Array);
    g.kCache.copy_(k0);
    g.vCache.copy_(v0);
    out.storage.fill(0);
    const graph = CudaGraph.capture(dev, step);
    graph.replay();
    synchronize(dev);
    expect(Array.from(out.toArray() as Float32Array)).toEqual(direct1);
    // next token: new lengths (some cross a block boundary), new q; the same graph
    advance();
    g.q.copy_(Tensor.fromArray(rng.normal(g.q.numel), [...g.q.shape], { dtype: 'bfloat16' }));
    graph.replay();
    synchronize(dev);
    const replayed = Array.from(out.toArray() as Float32Array);
    const direct2 = pagedAttention(g.q, g.kCache, g.vCache, g.blockTable, g.seqLens).toArray() as Float32Array;
    expect(replayed).toEqual(Array.from(direct2));
    graph.destroy();
  });

  it('100 cacheWrite + pagedAttention steps in tidy leave bytesInUse flat', () => {
    const c = buildCase(rng, { lens: [300, 20], queries: 1, heads: 8, kvHeads: 2, headDim: 64, blockSize: 16, dtype: 'bfloat16' });
    const g = toGpu(c);
    const k = c.writeK.rows(0, 2).to(dev);
    const slots = Tensor.fromArray(Int32Array.from([3, -1]), [2], { device: dev });
    const step = () => tidy(() => {
      cacheWrite(g.kCache, g.vCache, k, k, slots);
      pagedAttention(g.q, g.kCache, g.vCache, g.blockTable, g.seqLens, { numSplits: 4 }); // result dropped
      pagedAttention(g.q, g.kCache, g.vCache, g.blockTable, g.seqLens, { numSplits: 1 });
    });
    step();
    synchronize(dev);
    const before = memoryStats(dev).bytesInUse;
    for (let i = 0; i < 100; i++) {
      step();
      expect(memoryStats(dev).bytesInUse).toBe(before);
    }
    synchronize(dev);
    expect(memoryStats(dev).bytesInUse).toBe(before);
  });

  it('refuses tensors on different devices and unaligned head dims', () => {
    const c = buildCase(rng, { lens: [3], queries: 1, heads: 2, kvHeads: 1, headDim: 8, blockSize: 4 });
    const g = toGpu(c);
    expect(() => pagedAttention(g.q, g.kCache, g.vCache, c.blockTable, g.seqLens)).toThrow(/pagedAttention: tensors on different devices: q on cuda:0, blockTable on cpu/);
    // bf16 vectors are 8 elements: head dim 12 cannot use 16-byte loads
    const odd = buildCase(rng, { lens: [3], queries: 1, heads: 2, kvHeads: 1, headDim: 12, blockSize: 4, dtype: 'bfloat16' });
    const og = toGpu(odd);
    expect(() => pagedAttention(og.q, og.kCache, og.vCache, og.blockTable, og.seqLens)).toThrow(/head_dim 12 must be a multiple of 8/);
  });
});
