import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';
import { firstByteDifference } from './helpers/compare.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { CudaGraph, synchronize } from '../src/runtime/cuda.js';
import { qkvRotary, qkvRotaryCache } from '../src/runtime/ops/qkv_rotary.js';
import { rmsnorm } from '../src/runtime/ops/norm.js';
import { rotary } from '../src/runtime/ops/rotary.js';
import { cacheWrite } from '../src/runtime/ops/paged_attention.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';

// The CUDA kernel computes the same steps as the CPU twin (split + rotary_math.h), so q, k and v are
// equal bit for bit, on the vectorised path (head dims whose halves are multiples of 16 bytes) and
// the scalar one.
/** a and b hold the same values bit for bit (as the float32 / int32 arrays toArray gives). */
function bitsEqual(a: Tensor, b: Tensor): boolean {
  return firstByteDifference(a.toArray(), b.toArray()) === -1;
}

const configs = [
  { name: 'llama3 hd 128', headDim: 128, cfg: { theta: 500000, headDim: 128, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } } },
  { name: 'yarn hd 96', headDim: 96, cfg: { theta: 1e6, headDim: 96, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 } } },
  { name: 'partial rotary 0.25 of hd 128', headDim: 128, cfg: { theta: 1e7, headDim: 128, partialRotaryFactor: 0.25 } },
  { name: 'default hd 36 (scalar path)', headDim: 36, cfg: { theta: 10000, headDim: 36 } },
];

function run(device: 'cpu' | 'cuda:0', T: number, nH: number, nKV: number, headDim: number, dtype: 'float32' | 'bfloat16' | 'float16', cfg: object) {
  const rng = new Rng(9);
  const { invFreq, attentionScaling } = ropeInvFreq(cfg as Parameters<typeof ropeInvFreq>[0]);
  const qkv = Tensor.fromArray(rng.normal(T * (nH + 2 * nKV) * headDim), [T, (nH + 2 * nKV) * headDim], { dtype, device });
  const pos = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => (i * 37) % 5000), [T], { dtype: 'int32', device });
  const inv = Tensor.fromArray(invFreq, [invFreq.length], { dtype: 'float32', device });
  return qkvRotary(qkv, pos, inv, { heads: nH, kvHeads: nKV, headDim, attentionScaling });
}

describe.skipIf(!hasGpu)('qkvRotary (CUDA vs CPU twin, bit for bit)', () => {
  for (const { name, headDim, cfg } of configs) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      it(`${name}, ${dtype}`, () => {
        tidy(() => {
          const a = run('cpu', 333, 8, 2, headDim, dtype, cfg);
          const b = run('cuda:0', 333, 8, 2, headDim, dtype, cfg);
          expect(bitsEqual(b.q, a.q)).toBe(true);
          expect(bitsEqual(b.k, a.k)).toBe(true);
          expect(bitsEqual(b.v, a.v)).toBe(true);
        });
      });
    }
  }
});

// ---- qkvRotaryCache -------------------------------------------------------------------------------

const dev = 'cuda:0' as const;
type FloatDType = 'float32' | 'bfloat16' | 'float16';

interface CacheCase {
  name: string;
  T: number;
  nH: number;
  nKV: number;
  hd: number;
  dtype: FloatDType;
  norm: 'none' | 'same' | 'f32';
  cfg: object;
  /** Slots per token (-1 pads); the cache has `blocks` blocks of 16. */
  slots: number[];
  blocks: number;
  /** Elements by which qkv starts past a 16-byte boundary (0: aligned; else the scalar path). */
  misalign?: number;
}

const LLAMA3_128 = { theta: 500000, headDim: 128, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };

interface CacheInputs {
  qkv: Tensor;
  positions: Tensor;
  invFreq: Tensor;
  slots: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  kCache: Tensor;
  vCache: Tensor;
  attentionScaling: number;
}

/** The case's inputs on the CPU; caches full of random values so that untouched rows show. */
function cacheInputs(c: CacheCase, seed: number): CacheInputs {
  const rng = new Rng(seed);
  const p = ropeInvFreq(c.cfg as Parameters<typeof ropeInvFreq>[0]);
  const width = (c.nH + 2 * c.nKV) * c.hd;
  const wType = c.norm === 'f32' ? 'float32' : c.dtype;
  const cacheShape = [c.blocks, 16, c.nKV, c.hd];
  const cacheN = c.blocks * 16 * c.nKV * c.hd;
  return {
    attentionScaling: p.attentionScaling,
    qkv: Tensor.fromArray(rng.normal(c.T * width, 2), [c.T, width], { dtype: c.dtype }),
    positions: Tensor.fromArray(rng.int(c.T, 0, 100000), [c.T], { dtype: 'int32' }),
    invFreq: Tensor.fromArray(p.invFreq, [p.invFreq.length], { dtype: 'float32' }),
    slots: Tensor.fromArray(Int32Array.from(c.slots), [c.T], { dtype: 'int32' }),
    qNorm: c.norm === 'none' ? undefined : Tensor.fromArray(rng.normal(c.hd, 0.3).map((v) => 1 + v), [c.hd], { dtype: wType }),
    kNorm: c.norm === 'none' ? undefined : Tensor.fromArray(rng.normal(c.hd, 0.3).map((v) => 1 + v), [c.hd], { dtype: wType }),
    kCache: Tensor.fromArray(rng.normal(cacheN), cacheShape, { dtype: c.dtype }),
    vCache: Tensor.fromArray(rng.normal(cacheN), cacheShape, { dtype: c.dtype }),
  };
}

/** A copy of t on dev, starting `misalign` elements into a fresh allocation (0: aligned). */
function toDevice(t: Tensor, misalign = 0): Tensor {
  if (misalign === 0) return t.to(dev);
  const es = t.byteLength / Math.max(1, t.numel);
  const big = Tensor.empty([t.numel + misalign], t.dtype, dev);
  const view = new Tensor(big.storage.view(misalign * es, t.byteLength), t.shape, t.dtype);
  big.dispose();
  return view.copy_(t);
}

function onDevice(x: CacheInputs, misalign = 0): CacheInputs {
  return {
    ...x,
    qkv: toDevice(x.qkv, misalign),
    positions: x.positions.to(dev),
    invFreq: x.invFreq.to(dev),
    slots: x.slots.to(dev),
    qNorm: x.qNorm?.to(dev),
    kNorm: x.kNorm?.to(dev),
    kCache: x.kCache.to(dev),
    vCache: x.vCache.to(dev),
  };
}

function runCache(x: CacheInputs, c: { nH: number; nKV: number; hd: number }, out?: Tensor): Tensor {
  return qkvRotaryCache(x.qkv, x.positions, x.invFreq, {
    heads: c.nH, kvHeads: c.nKV, headDim: c.hd, attentionScaling: x.attentionScaling, qNorm: x.qNorm, kNorm: x.kNorm, eps: 1e-6,
    kCache: x.kCache, vCache: x.vCache, slotMapping: x.slots, out,
  });
}

// With a norm, CUDA's rstd adds the squares in fp32 in its own order (a lane's elements in a chain,
// then a shuffle tree) and the CPU twin's in fp64, so the two rstd differ by up to ~20 fp32 ulp in
// the worst case for these sizes (chains of <= 37 additions, plus sqrt and division), ~1e-7 typically.
// A normed value n = h * rstd * w then differs by that relative amount before its rounding:
//   bf16: far below a bf16 ulp, so n rounds to the same value or one ulp (<= 2^-7 |n|) apart, about
//         2 * 1e-7 / 2^-8 ~ 1e-4 of the values; an output moves by at most its two inputs' ulps times
//         |cos|, |sin| <= s, plus one ulp of its own rounding: |d| <= 2^-7 (|n1| + |n2|) s + 2^-7 |o|.
//   f32:  every n may differ, by <= ~1.2e-6 |n| plus an ulp or two; |d| <= ~1.5e-6 (|n1| + |n2|) s.
// The rotation keeps o1^2 + o2^2 = s^2 (n1^2 + n2^2), so (|n1| + |n2|) s <= 2 max(|o1|, |o2|): the
// bound per pair is 3 * 2^-7 max(|o1|, |o2|) for bf16 (2^-5 used) and 3e-6 for f32 (5e-6 used); a
// pass-through element half of that times |o|. At most 1% of bf16 elements may differ at all (~100x
// the expected rate). Without a norm, every step is rotary_math.h's on both sides: equal bits.
const PAIR_TOL = { float32: 5e-6, bfloat16: 2 ** -5, float16: 2 ** -8 } as const;

/** Heads of head_dim hd in `got` vs `want` (CPU) within the bound above; returns the differing count. */
function normCompare(got: Float32Array, want: Float32Array, hd: number, rotDim: number, dtype: FloatDType, what: string): number {
  const half = rotDim / 2;
  const tol = PAIR_TOL[dtype];
  let differ = 0;
  for (let base = 0; base < want.length; base += hd) {
    for (let i = 0; i < hd; i++) {
      const k = base + i;
      const partner = i < half ? k + half : i < rotDim ? k - half : k;
      const bound = i < rotDim ? tol * Math.max(Math.abs(want[k]), Math.abs(want[partner])) : (tol / 2) * Math.abs(want[k]);
      const d = Math.abs(got[k] - want[k]);
      if (got[k] !== want[k]) differ++;
      if (!(d <= bound)) expect.fail(`${what}[${k}]: CUDA ${got[k]} vs CPU ${want[k]} (|d| ${d} > ${bound})`);
    }
  }
  if (dtype === 'bfloat16') expect(differ, `${what}: ${differ} of ${want.length} elements differ`).toBeLessThanOrEqual(Math.ceil(0.01 * want.length));
  return differ;
}

const CACHE_CASES: CacheCase[] = [];
for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
  const norms = dtype === 'float16' ? (['none'] as const) : dtype === 'bfloat16' ? (['none', 'same', 'f32'] as const) : (['none', 'same'] as const);
  for (const norm of norms) {
    CACHE_CASES.push(
      { name: 'Llama-8B decode: T 1, 32/8 heads of 128', T: 1, nH: 32, nKV: 8, hd: 128, dtype, norm, cfg: LLAMA3_128, slots: [777], blocks: 64 },
      { name: 'batch 5 with a padded entry, 32/8 of 128', T: 5, nH: 32, nKV: 8, hd: 128, dtype, norm, cfg: LLAMA3_128, slots: [3, 1000, -1, 16, 511], blocks: 64 },
      { name: 'T 3, 6/2 heads of 36 (scalar path)', T: 3, nH: 6, nKV: 2, hd: 36, dtype, norm, cfg: { theta: 10000, headDim: 36 }, slots: [40, -1, 5], blocks: 4 },
      { name: 'T 2, MHA 5/5 heads of 96, yarn', T: 2, nH: 5, nKV: 5, hd: 96, dtype, norm, cfg: { theta: 1e6, headDim: 96, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 } }, slots: [63, 0], blocks: 4 },
      { name: 'T 4, 8/1 heads of 128, partial rotary 0.25', T: 4, nH: 8, nKV: 1, hd: 128, dtype, norm, cfg: { theta: 1e7, headDim: 128, partialRotaryFactor: 0.25 }, slots: [9, 8, 7, 6], blocks: 2 },
      { name: 'T 2, 2/1 heads of 520 (rows longer than the registers hold)', T: 2, nH: 2, nKV: 1, hd: 520, dtype, norm, cfg: { theta: 10000, headDim: 520 }, slots: [1, 30], blocks: 2 },
      { name: 'T 1, 32/8 of 128, qkv misaligned (scalar path)', T: 1, nH: 32, nKV: 8, hd: 128, dtype, norm, cfg: LLAMA3_128, slots: [5], blocks: 2, misalign: 1 },
    );
  }
}
CACHE_CASES.push({ name: 'T 2, 2/1 heads of 1024 (vectors past the registers)', T: 2, nH: 2, nKV: 1, hd: 1024, dtype: 'float32', norm: 'same', cfg: { theta: 10000, headDim: 1024 }, slots: [2, 17], blocks: 2 });

describe.skipIf(!hasGpu)('qkvRotaryCache (CUDA vs CPU twin)', () => {
  let seed = 500;
  for (const c of CACHE_CASES) {
    const s = seed++;
    it(`${c.name}, ${c.dtype}, norm ${c.norm}`, () => {
      tidy(() => {
        const cpu = cacheInputs(c, s);
        const gpu = onDevice(cpu, c.misalign ?? 0);
        const qCpu = runCache(cpu, c);
        const qGpu = runCache(gpu, c);
        synchronize(dev);
        expect(qGpu.shape).toEqual(qCpu.shape);
        expect(firstByteDifference(gpu.vCache.to('cpu').storage.read(), cpu.vCache.storage.read())).toBe(-1);
        if (c.norm === 'none') {
          expect(firstByteDifference(qGpu.to('cpu').storage.read(), qCpu.storage.read())).toBe(-1);
          expect(firstByteDifference(gpu.kCache.to('cpu').storage.read(), cpu.kCache.storage.read())).toBe(-1);
        } else {
          const rotDim = 2 * cpu.invFreq.numel;
          normCompare(qGpu.toFloat32Array(), qCpu.toFloat32Array(), c.hd, rotDim, c.dtype, 'q');
          // rows the op did not write are equal (d = 0), the written ones within the bound
          normCompare(gpu.kCache.toFloat32Array(), cpu.kCache.toFloat32Array(), c.hd, rotDim, c.dtype, 'kCache');
        }
      });
    });
  }

  it('slots outside the cache are skipped on CUDA (the CPU throws): as padding', () => {
    tidy(() => {
      const c: CacheCase = { name: '', T: 4, nH: 8, nKV: 2, hd: 128, dtype: 'bfloat16', norm: 'same', cfg: LLAMA3_128, slots: [5, -1, 6, -1], blocks: 2 };
      const cpu = cacheInputs(c, 42);
      const gpu = onDevice(cpu);
      gpu.slots = Tensor.fromArray(Int32Array.of(5, 32, 6, -7), [4], { dtype: 'int32', device: dev }); // capacity 32
      const q = runCache(cpu, c);
      const qGpu = runCache(gpu, c);
      normCompare(qGpu.toFloat32Array(), q.toFloat32Array(), c.hd, 128, c.dtype, 'q');
      normCompare(gpu.kCache.toFloat32Array(), cpu.kCache.toFloat32Array(), c.hd, 128, c.dtype, 'kCache');
      expect(firstByteDifference(gpu.vCache.to('cpu').storage.read(), cpu.vCache.storage.read())).toBe(-1);
      expect(() => runCache({ ...cpu, slots: Tensor.fromArray(Int32Array.of(5, 32, 6, -7), [4], { dtype: 'int32' }) }, c)).toThrow(/slot 32 of token 1/);
    });
  });

  it('Qwen3-8B decode (32/8 of 128, bf16 norms): CUDA fused vs CUDA rmsnorm -> rotary -> cacheWrite', () => {
    tidy(() => {
      const c: CacheCase = { name: '', T: 1, nH: 32, nKV: 8, hd: 128, dtype: 'bfloat16', norm: 'same', cfg: { theta: 1e6, headDim: 128 }, slots: [100], blocks: 8 };
      const g = onDevice(cacheInputs(c, 77));
      const kRef = g.kCache.clone();
      const vRef = g.vCache.clone();
      const view = (off: number, heads: number) => new Tensor(g.qkv.storage.view(off * 2, heads * 128 * 2), [1, heads, 128], 'bfloat16');
      const qc = rmsnorm(view(0, 32), g.qNorm!, 1e-6).y;
      const kc = rmsnorm(view(32 * 128, 8), g.kNorm!, 1e-6).y;
      rotary(qc, g.positions, g.invFreq, { attentionScaling: g.attentionScaling, inPlace: true });
      rotary(kc, g.positions, g.invFreq, { attentionScaling: g.attentionScaling, inPlace: true });
      cacheWrite(kRef, vRef, kc, view(40 * 128, 8), g.slots);
      const q = runCache(g, c);
      normCompare(q.toFloat32Array(), qc.toFloat32Array(), 128, 128, 'bfloat16', 'q');
      normCompare(g.kCache.toFloat32Array(), kRef.toFloat32Array(), 128, 128, 'bfloat16', 'kCache');
      expect(firstByteDifference(g.vCache.to('cpu').storage.read(), vRef.to('cpu').storage.read())).toBe(-1);
    });
  });

  it('a captured call replays to the direct result, also after the inputs change', () => {
    tidy(() => {
      const c: CacheCase = { name: '', T: 1, nH: 32, nKV: 8, hd: 128, dtype: 'bfloat16', norm: 'same', cfg: LLAMA3_128, slots: [17], blocks: 8 };
      const g = onDevice(cacheInputs(c, 91));
      const out = Tensor.zeros([1, 32, 128], 'bfloat16', dev);
      const rng = new Rng(92);
      const k0 = g.kCache.clone();
      // direct, on copies of the caches (also warms the allocator, though the step allocates nothing)
      const direct = (): { q: Tensor; k: Tensor; v: Tensor } => {
        const k = g.kCache.clone();
        const v = g.vCache.clone();
        const q = runCache({ ...g, kCache: k, vCache: v }, c);
        return { q, k, v };
      };
      const same = (a: Tensor, b: Tensor) => expect(firstByteDifference(a.to('cpu').storage.read(), b.to('cpu').storage.read())).toBe(-1);
      const d1 = direct();
      const graph = CudaGraph.capture(dev, () => {
        runCache(g, c, out);
      });
      same(g.kCache, k0); // capture ran nothing
      graph.replay();
      synchronize(dev);
      same(out, d1.q);
      same(g.kCache, d1.k);
      same(g.vCache, d1.v);
      // next token: new qkv, position and slot in the same tensors, the same graph
      g.qkv.copy_(Tensor.fromArray(rng.normal(g.qkv.numel, 2), [...g.qkv.shape], { dtype: 'bfloat16' }));
      g.positions.copy_(Tensor.fromArray(Int32Array.of(4242), [1]));
      g.slots.copy_(Tensor.fromArray(Int32Array.of(18), [1]));
      const d2 = direct();
      graph.replay();
      synchronize(dev);
      same(out, d2.q);
      same(g.kCache, d2.k);
      same(g.vCache, d2.v);
      graph.destroy();
    });
  });
});
