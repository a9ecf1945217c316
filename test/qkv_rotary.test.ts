import { describe, expect, it } from 'vitest';
import { firstByteDifference, relError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { rotary } from '../src/runtime/ops/rotary.js';
import { qkvRotary, qkvRotaryCache } from '../src/runtime/ops/qkv_rotary.js';
import { rmsnorm } from '../src/runtime/ops/norm.js';
import { cacheWrite } from '../src/runtime/ops/paged_attention.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { parseModelConfig } from '../src/models/hf/config.js';
import { createCausalLM } from '../src/models/load.js';
import { randomSource } from '../src/models/weights.js';
import { prefill } from '../src/models/batch.js';

/** a and b hold the same values bit for bit (as the float32 / int32 arrays toArray gives). */
function bitsEqual(a: Tensor, b: Tensor): boolean {
  return firstByteDifference(a.toArray(), b.toArray()) === -1;
}

const configs = [
  { name: 'llama3 hd 128', headDim: 128, cfg: { theta: 500000, headDim: 128, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } } },
  { name: 'yarn hd 96', headDim: 96, cfg: { theta: 1e6, headDim: 96, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 } } },
  { name: 'partial rotary 0.25 of hd 128', headDim: 128, cfg: { theta: 1e7, headDim: 128, partialRotaryFactor: 0.25 } },
  { name: 'default hd 36 (unvectorised)', headDim: 36, cfg: { theta: 10000, headDim: 36 } },
];

function run(device: 'cpu' | 'cuda:0', T: number, nH: number, nKV: number, headDim: number, dtype: 'float32' | 'bfloat16' | 'float16', cfg: object, seed: number) {
  const rng = new Rng(seed);
  const { invFreq, attentionScaling } = ropeInvFreq(cfg as Parameters<typeof ropeInvFreq>[0]);
  const qkv = Tensor.fromArray(rng.normal(T * (nH + 2 * nKV) * headDim), [T, (nH + 2 * nKV) * headDim], { dtype, device });
  const pos = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => (i * 37) % 5000), [T], { dtype: 'int32', device });
  const inv = Tensor.fromArray(invFreq, [invFreq.length], { dtype: 'float32', device });
  return { qkv, pos, inv, attentionScaling, out: qkvRotary(qkv, pos, inv, { heads: nH, kvHeads: nKV, headDim, attentionScaling }) };
}

describe('qkvRotary (CPU): split + rotary of q and k, bit for bit', () => {
  for (const { name, headDim, cfg } of configs) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`${name}, ${dtype}`, () => {
        tidy(() => {
          const [T, nH, nKV] = [19, 6, 2];
          const { qkv, pos, inv, attentionScaling, out } = run('cpu', T, nH, nKV, headDim, dtype, cfg, 5);
          const w = (nH + 2 * nKV) * headDim;
          const all = qkv.toArray() as Float32Array;
          const part = (lo: number, hi: number, heads: number) => {
            const a = new Float32Array(T * (hi - lo));
            for (let t = 0; t < T; t++) a.set(all.subarray(t * w + lo, t * w + hi), t * (hi - lo));
            return Tensor.fromArray(a, [T, heads, headDim], { dtype });
          };
          const q = rotary(part(0, nH * headDim, nH), pos, inv, { attentionScaling });
          const k = rotary(part(nH * headDim, (nH + nKV) * headDim, nKV), pos, inv, { attentionScaling });
          const v = part((nH + nKV) * headDim, w, nKV);
          expect(out.q.shape).toEqual([T, nH, headDim]);
          expect(out.k.shape).toEqual([T, nKV, headDim]);
          expect(out.v.shape).toEqual([T, nKV, headDim]);
          expect(bitsEqual(out.q, q)).toBe(true);
          expect(bitsEqual(out.k, k)).toBe(true);
          expect(bitsEqual(out.v, v)).toBe(true);
        });
      });
    }
  }
  it('rejects a width that is not (heads + 2 kvHeads) * headDim', () => {
    tidy(() => {
      const x = Tensor.zeros([3, 40]);
      const pos = Tensor.fromArray(new Int32Array(3), [3], { dtype: 'int32' });
      const inv = Tensor.zeros([4]);
      expect(() => qkvRotary(x, pos, inv, { heads: 2, kvHeads: 1, headDim: 8 })).toThrow(/qkvRotary/);
    });
  });
});

// qkvRotaryCache on the CPU: bit for bit the composition it replaces in decode (views of qkv ->
// rmsnorm -> rotary -> cacheWrite, each a CPU op), and close to a float64 reference.
type FloatDType = 'float32' | 'bfloat16' | 'float16';

interface CacheCase {
  T: number;
  nH: number;
  nKV: number;
  hd: number;
  dtype: FloatDType;
  /** 'none', norm weights in qkv's dtype, or float32 weights (bf16 qkv). */
  norm: 'none' | 'same' | 'f32';
  rope: { cfg: object; scaling?: number };
  /** Slots per token; -1 pads. */
  slots: number[];
  seed: number;
}

const BLOCKS = 5;
const BLOCK_SIZE = 4;

const ROPES = {
  llama3: { cfg: { theta: 500000, headDim: 16, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } }, scaling: 1.25 },
  yarn: { cfg: { theta: 1e6, headDim: 32, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 2048 } } },
  partial: { cfg: { theta: 1e4, headDim: 32, partialRotaryFactor: 0.25 } },
} as const;

/** The case's inputs as CPU tensors, caches filled with random values (so untouched rows are visible). */
function cacheInputs(c: CacheCase) {
  const rng = new Rng(c.seed);
  const p = ropeInvFreq(c.rope.cfg as Parameters<typeof ropeInvFreq>[0]);
  const attentionScaling = c.rope.scaling ?? p.attentionScaling;
  const width = (c.nH + 2 * c.nKV) * c.hd;
  const wType = c.norm === 'f32' ? 'float32' : c.dtype;
  const cacheShape = [BLOCKS, BLOCK_SIZE, c.nKV, c.hd];
  const cacheN = BLOCKS * BLOCK_SIZE * c.nKV * c.hd;
  return {
    attentionScaling,
    qkv: Tensor.fromArray(rng.normal(c.T * width, 2), [c.T, width], { dtype: c.dtype }),
    positions: Tensor.fromArray(rng.int(c.T, 0, 20000), [c.T], { dtype: 'int32' }),
    invFreq: Tensor.fromArray(p.invFreq, [p.invFreq.length], { dtype: 'float32' }),
    slots: Tensor.fromArray(Int32Array.from(c.slots), [c.T], { dtype: 'int32' }),
    qNorm: c.norm === 'none' ? undefined : Tensor.fromArray(rng.normal(c.hd, 0.3).map((v) => 1 + v), [c.hd], { dtype: wType }),
    kNorm: c.norm === 'none' ? undefined : Tensor.fromArray(rng.normal(c.hd, 0.3).map((v) => 1 + v), [c.hd], { dtype: wType }),
    kCache: Tensor.fromArray(rng.normal(cacheN), cacheShape, { dtype: c.dtype }),
    vCache: Tensor.fromArray(rng.normal(cacheN), cacheShape, { dtype: c.dtype }),
  };
}

/** Columns [lo, hi) of every row of qkv as a contiguous [T, heads, hd] tensor (what the views hold). */
function part(qkv: Tensor, lo: number, hi: number, heads: number, hd: number): Tensor {
  const [T, w] = qkv.shape;
  const all = qkv.toArray() as Float32Array;
  const a = new Float32Array(T * (hi - lo));
  for (let t = 0; t < T; t++) a.set(all.subarray(t * w + lo, t * w + hi), t * (hi - lo));
  return Tensor.fromArray(a, [T, heads, hd], { dtype: qkv.dtype });
}

function roundTo(v: number, dtype: FloatDType): number {
  if (dtype === 'float32') return Math.fround(v);
  if (dtype === 'bfloat16') return roundBf16(Float32Array.of(v))[0];
  return Tensor.fromArray([v], [1], { dtype: 'float16' }).toFloat32Array()[0];
}

/**
 * float64 reference of one group of heads (q or k) of qkv: the norm in float64 (its result rounded
 * to the dtype, as the op stores it before rotating), then the rotation with float64 cos/sin of the
 * fp32 angle. Returns the outputs and, per element, the magnitude that bounds its rounding error.
 */
function referenceHeads(
  qkv: Float32Array, width: number, T: number, first: number, heads: number, hd: number, pos: Int32Array, inv: Float32Array,
  scaling: number, w: Float32Array | null, eps: number, dtype: FloatDType,
): { out: Float64Array; mag: Float64Array } {
  const out = new Float64Array(T * heads * hd);
  const mag = new Float64Array(T * heads * hd);
  const half = inv.length;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const x = Array.from(qkv.subarray(t * width + (first + h) * hd, t * width + (first + h + 1) * hd));
      if (w) {
        let ss = 0;
        for (const v of x) ss += v * v;
        const r = 1 / Math.sqrt(ss / hd + Math.fround(eps));
        for (let c = 0; c < hd; c++) x[c] = roundTo(x[c] * r * w[c], dtype);
      }
      const o = (t * heads + h) * hd;
      for (let j = 0; j < half; j++) {
        const angle = Math.fround(Math.fround(pos[t]) * inv[j]);
        const c = Math.cos(angle) * scaling;
        const s = Math.sin(angle) * scaling;
        out[o + j] = x[j] * c - x[j + half] * s;
        out[o + j + half] = x[j + half] * c + x[j] * s;
        mag[o + j] = mag[o + j + half] = (Math.abs(x[j]) + Math.abs(x[j + half])) * Math.abs(scaling);
      }
      for (let i = 2 * half; i < hd; i++) {
        out[o + i] = x[i];
        mag[o + i] = Math.abs(x[i]);
      }
    }
  }
  return { out, mag };
}

// Rounding of the op vs the float64 reference, relative to mag: the output's own rounding (half an
// ulp: 2^-8 bf16, 2^-11 f16, 2^-24 f32) and, with a norm, a normed input that lands one ulp away when
// the fp32 and float64 products straddle a rounding boundary (2^-7 / 2^-23 of that input), plus the
// fp32 rotation arithmetic (a few 2^-24).
const REF_TOL = { float32: 2e-6, bfloat16: 2 ** -6, float16: 2 ** -9 } as const;

/** Cache rows of the given slots, as [slot][kvHeads * hd] values. */
function cacheRows(cache: Tensor, slot: number): Float32Array {
  const row = cache.shape[2] * cache.shape[3];
  return (cache.toArray() as Float32Array).slice(slot * row, (slot + 1) * row);
}

function runCacheCase(c: CacheCase, withOut: boolean): void {
  tidy(() => {
    const x = cacheInputs(c);
    const { nH, nKV, hd, T } = c;
    const width = (nH + 2 * nKV) * hd;
    const k0 = x.kCache.clone();
    const v0 = x.vCache.clone();
    // The composition, on copies of the caches.
    const kRef = x.kCache.clone();
    const vRef = x.vCache.clone();
    let qc = part(x.qkv, 0, nH * hd, nH, hd);
    let kc = part(x.qkv, nH * hd, (nH + nKV) * hd, nKV, hd);
    const vc = part(x.qkv, (nH + nKV) * hd, width, nKV, hd);
    const eps = 1e-5;
    if (x.qNorm && x.kNorm) {
      qc = rmsnorm(qc, x.qNorm, eps).y;
      kc = rmsnorm(kc, x.kNorm, eps).y;
    }
    rotary(qc, x.positions, x.invFreq, { attentionScaling: x.attentionScaling, inPlace: true });
    rotary(kc, x.positions, x.invFreq, { attentionScaling: x.attentionScaling, inPlace: true });
    cacheWrite(kRef, vRef, kc, vc, x.slots);

    const out = withOut ? Tensor.fromArray(new Float32Array(T * nH * hd).fill(7), [T, nH, hd], { dtype: c.dtype }) : undefined;
    const q = qkvRotaryCache(x.qkv, x.positions, x.invFreq, {
      heads: nH, kvHeads: nKV, headDim: hd, attentionScaling: x.attentionScaling, qNorm: x.qNorm, kNorm: x.kNorm, eps,
      kCache: x.kCache, vCache: x.vCache, slotMapping: x.slots, out,
    });
    if (out) expect(q).toBe(out);
    expect(q.shape).toEqual([T, nH, hd]);
    expect(q.dtype).toBe(c.dtype);
    expect(bitsEqual(q, qc)).toBe(true);
    expect(bitsEqual(x.kCache, kRef)).toBe(true);
    expect(bitsEqual(x.vCache, vRef)).toBe(true);

    // Rows of slots nobody wrote (padding included) are untouched; v rows are qkv's exactly.
    const written = new Set(c.slots.filter((s) => s >= 0));
    for (let s = 0; s < BLOCKS * BLOCK_SIZE; s++) {
      if (written.has(s)) continue;
      expect(Array.from(cacheRows(x.kCache, s))).toEqual(Array.from(cacheRows(k0, s)));
      expect(Array.from(cacheRows(x.vCache, s))).toEqual(Array.from(cacheRows(v0, s)));
    }
    const all = x.qkv.toArray() as Float32Array;
    c.slots.forEach((s, t) => {
      if (s >= 0) expect(Array.from(cacheRows(x.vCache, s))).toEqual(Array.from(all.subarray(t * width + (nH + nKV) * hd, (t + 1) * width)));
    });

    // Against float64.
    const pos = x.positions.toArray() as Int32Array;
    const inv = x.invFreq.toArray() as Float32Array;
    const qn = x.qNorm ? (x.qNorm.toArray() as Float32Array) : null;
    const kn = x.kNorm ? (x.kNorm.toArray() as Float32Array) : null;
    const tol = REF_TOL[c.dtype];
    const check = (got: ArrayLike<number>, ref: { out: Float64Array; mag: Float64Array }, offset: number, n: number, what: string) => {
      for (let i = 0; i < n; i++) {
        const d = Math.abs(got[offset + i] - ref.out[i]);
        if (!(d <= tol * ref.mag[i] + 1e-30)) expect.fail(`${what}[${i}]: ${got[offset + i]} vs float64 ${ref.out[i]} (|d| ${d} > ${tol} * ${ref.mag[i]})`);
      }
    };
    const qr = referenceHeads(all, width, T, 0, nH, hd, pos, inv, x.attentionScaling, qn, eps, c.dtype);
    check(q.toArray() as Float32Array, qr, 0, T * nH * hd, 'q');
    const kr = referenceHeads(all, width, T, nH, nKV, hd, pos, inv, x.attentionScaling, kn, eps, c.dtype);
    const kAll = x.kCache.toArray() as Float32Array;
    c.slots.forEach((s, t) => {
      if (s < 0) return;
      const n = nKV * hd;
      check(kAll, { out: kr.out.subarray(t * n, (t + 1) * n), mag: kr.mag.subarray(t * n, (t + 1) * n) }, s * n, n, `k of token ${t}`);
    });
  });
}

describe('qkvRotaryCache (CPU): views -> rmsnorm -> rotary -> cacheWrite, bit for bit', () => {
  const shapes = [
    { name: 'GQA 4/2, hd 16, llama3 rope, attention scaling 1.25', nH: 4, nKV: 2, hd: 16, rope: ROPES.llama3 },
    { name: 'MHA 3/3, hd 32, yarn (attention scaling from yarn)', nH: 3, nKV: 3, hd: 32, rope: ROPES.yarn },
    { name: 'GQA 4/2, hd 32, partial rotary 0.25', nH: 4, nKV: 2, hd: 32, rope: ROPES.partial },
  ];
  const normsFor = { float32: ['none', 'same'], bfloat16: ['none', 'same', 'f32'], float16: ['none'] } as const;
  let seed = 100;
  for (const sh of shapes) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      for (const norm of normsFor[dtype]) {
        for (const T of [1, 3]) {
          // T = 3: a padded token in the middle; slots out of order and across blocks.
          const slots = T === 1 ? [13] : [17, -1, 2];
          const c: CacheCase = { T, nH: sh.nH, nKV: sh.nKV, hd: sh.hd, dtype, norm, rope: sh.rope, slots, seed: seed++ };
          it(`${sh.name}, ${dtype}, norm ${norm}, T ${T}`, () => runCacheCase(c, false));
        }
      }
    }
  }
  it('writes q into `out` (same bits)', () => {
    runCacheCase({ T: 3, nH: 4, nKV: 2, hd: 16, dtype: 'bfloat16', norm: 'same', rope: ROPES.llama3, slots: [0, 19, -1], seed: 7 }, true);
    runCacheCase({ T: 1, nH: 4, nKV: 2, hd: 32, dtype: 'float32', norm: 'none', rope: ROPES.partial, slots: [5], seed: 8 }, true);
  });
  it('every token padded: q only, caches untouched', () => {
    runCacheCase({ T: 3, nH: 4, nKV: 2, hd: 16, dtype: 'float32', norm: 'same', rope: ROPES.llama3, slots: [-1, -1, -1], seed: 9 }, false);
  });
  it('a norm on q only', () => {
    tidy(() => {
      const c: CacheCase = { T: 3, nH: 4, nKV: 2, hd: 16, dtype: 'bfloat16', norm: 'same', rope: ROPES.llama3, slots: [3, 4, 5], seed: 10 };
      const x = cacheInputs(c);
      const kRef = x.kCache.clone();
      const vRef = x.vCache.clone();
      const qc = rmsnorm(part(x.qkv, 0, 64, 4, 16), x.qNorm!).y;
      rotary(qc, x.positions, x.invFreq, { attentionScaling: x.attentionScaling, inPlace: true });
      const kc = rotary(part(x.qkv, 64, 96, 2, 16), x.positions, x.invFreq, { attentionScaling: x.attentionScaling });
      cacheWrite(kRef, vRef, kc, part(x.qkv, 96, 128, 2, 16), x.slots);
      const q = qkvRotaryCache(x.qkv, x.positions, x.invFreq, {
        heads: 4, kvHeads: 2, headDim: 16, attentionScaling: x.attentionScaling, qNorm: x.qNorm, kCache: x.kCache, vCache: x.vCache, slotMapping: x.slots,
      });
      expect(bitsEqual(q, qc)).toBe(true);
      expect(bitsEqual(x.kCache, kRef)).toBe(true);
      expect(bitsEqual(x.vCache, vRef)).toBe(true);
    });
  });
  it('no tokens: an empty q, nothing written', () => {
    tidy(() => {
      const kCache = Tensor.zeros([2, 4, 1, 8]);
      const q = qkvRotaryCache(Tensor.zeros([0, 24]), Tensor.empty([0], 'int32'), Tensor.zeros([4]), {
        heads: 1, kvHeads: 1, headDim: 8, kCache, vCache: Tensor.zeros([2, 4, 1, 8]), slotMapping: Tensor.empty([0], 'int32'),
      });
      expect(q.shape).toEqual([0, 1, 8]);
    });
  });
});

describe('qkvRotaryCache: argument errors', () => {
  // heads 2, kvHeads 1, hd 8: qkv [2, 32], caches [3, 4, 1, 8], capacity 12.
  function base(over: Partial<Record<string, Tensor | number | undefined>> = {}) {
    const t = {
      qkv: Tensor.zeros([2, 32]),
      positions: Tensor.fromArray(Int32Array.of(0, 1), [2]),
      invFreq: Tensor.fromArray([1, 0.1], [2]),
      kCache: Tensor.zeros([3, 4, 1, 8]),
      vCache: Tensor.zeros([3, 4, 1, 8]),
      slotMapping: Tensor.fromArray(Int32Array.of(0, 5), [2]),
      qNorm: undefined as Tensor | undefined,
      kNorm: undefined as Tensor | undefined,
      out: undefined as Tensor | undefined,
      heads: 2,
      kvHeads: 1,
      headDim: 8,
      eps: 1e-6,
      attentionScaling: 1,
      ...over,
    } as {
      qkv: Tensor; positions: Tensor; invFreq: Tensor; kCache: Tensor; vCache: Tensor; slotMapping: Tensor;
      qNorm?: Tensor; kNorm?: Tensor; out?: Tensor; heads: number; kvHeads: number; headDim: number; eps: number; attentionScaling: number;
    };
    return () => qkvRotaryCache(t.qkv, t.positions, t.invFreq, {
      heads: t.heads, kvHeads: t.kvHeads, headDim: t.headDim, eps: t.eps, attentionScaling: t.attentionScaling,
      qNorm: t.qNorm, kNorm: t.kNorm, kCache: t.kCache, vCache: t.vCache, slotMapping: t.slotMapping, out: t.out,
    });
  }
  const cases: [string, () => Partial<Record<string, Tensor | number | undefined>>, RegExp][] = [
    ['qkv width', () => ({ qkv: Tensor.zeros([2, 40]) }), /qkvRotaryCache: qkv is float32\[2, 40\] on cpu; expected \[T, 32\]/],
    ['qkv rank', () => ({ qkv: Tensor.zeros([2, 4, 8]) }), /qkvRotaryCache: qkv is float32\[2, 4, 8\] on cpu; expected rank 2/],
    ['qkv dtype', () => ({ qkv: Tensor.empty([2, 32], 'int32') }), /qkvRotaryCache: qkv is int32\[2, 32\] on cpu; expected a floating dtype/],
    ['heads', () => ({ heads: 0 }), /qkvRotaryCache: heads must be a positive integer, got 0/],
    ['headDim', () => ({ headDim: 7.5 }), /qkvRotaryCache: headDim must be a positive integer, got 7.5/],
    ['positions dtype', () => ({ positions: Tensor.zeros([2]) }), /qkvRotaryCache: positions is float32\[2\] on cpu; expected dtype int32/],
    ['positions shape', () => ({ positions: Tensor.fromArray(Int32Array.of(0, 1, 2), [3]) }), /qkvRotaryCache: positions is int32\[3\] on cpu; expected shape \[2\]/],
    ['slotMapping dtype', () => ({ slotMapping: Tensor.zeros([2]) }), /qkvRotaryCache: slotMapping is float32\[2\] on cpu; expected dtype int32/],
    ['slotMapping shape', () => ({ slotMapping: Tensor.fromArray(Int32Array.of(0), [1]) }), /qkvRotaryCache: slotMapping is int32\[1\] on cpu; expected shape \[2\]/],
    ['invFreq dtype', () => ({ invFreq: Tensor.fromArray([1, 0.1], [2], { dtype: 'bfloat16' }) }), /qkvRotaryCache: invFreq is bfloat16\[2\] on cpu; expected dtype float32/],
    ['invFreq too long', () => ({ invFreq: Tensor.zeros([5]) }), /qkvRotaryCache: invFreq is float32\[5\] on cpu: 2 \* its length must be in \[2, headDim 8\]/],
    ['attentionScaling', () => ({ attentionScaling: NaN }), /qkvRotaryCache: attentionScaling must be finite, got NaN/],
    ['kCache dtype', () => ({ kCache: Tensor.zeros([3, 4, 1, 8], 'bfloat16') }), /qkvRotaryCache: dtypes differ: qkv is float32, kCache is bfloat16/],
    ['kCache rank', () => ({ kCache: Tensor.zeros([12, 1, 8]) }), /qkvRotaryCache: kCache is float32\[12, 1, 8\] on cpu; expected rank 4/],
    ['kCache heads', () => ({ kCache: Tensor.zeros([3, 4, 2, 8]), vCache: Tensor.zeros([3, 4, 2, 8]) }), /qkvRotaryCache: kCache is float32\[3, 4, 2, 8\] on cpu; expected shape \[-1, -1, 1, 8\]/],
    ['vCache shape', () => ({ vCache: Tensor.zeros([2, 4, 1, 8]) }), /qkvRotaryCache: vCache is float32\[2, 4, 1, 8\] on cpu; expected shape \[3, 4, 1, 8\]/],
    ['empty cache', () => ({ kCache: Tensor.zeros([0, 4, 1, 8]), vCache: Tensor.zeros([0, 4, 1, 8]) }), /qkvRotaryCache: kCache float32\[0, 4, 1, 8\] on cpu is empty/],
    ['qNorm shape', () => ({ qNorm: Tensor.zeros([16]) }), /qkvRotaryCache: qNorm is float32\[16\] on cpu; expected shape \[8\]/],
    ['kNorm dtype', () => ({ qkv: Tensor.zeros([2, 32], 'bfloat16'), kCache: Tensor.zeros([3, 4, 1, 8], 'bfloat16'), vCache: Tensor.zeros([3, 4, 1, 8], 'bfloat16'), kNorm: Tensor.zeros([8], 'float16') }), /qkvRotaryCache: kNorm is float16\[8\] on cpu; expected bfloat16 or float32/],
    ['norm with float16 qkv', () => ({ qkv: Tensor.zeros([2, 32], 'float16'), kCache: Tensor.zeros([3, 4, 1, 8], 'float16'), vCache: Tensor.zeros([3, 4, 1, 8], 'float16'), qNorm: Tensor.zeros([8], 'float16') }), /qkvRotaryCache: qNorm needs qkv float32 or bfloat16 \(as rmsnorm\)/],
    ['norm dtypes differ', () => ({ qkv: Tensor.zeros([2, 32], 'bfloat16'), kCache: Tensor.zeros([3, 4, 1, 8], 'bfloat16'), vCache: Tensor.zeros([3, 4, 1, 8], 'bfloat16'), qNorm: Tensor.zeros([8], 'bfloat16'), kNorm: Tensor.zeros([8]) }), /qkvRotaryCache: qNorm is bfloat16\[8\] on cpu but kNorm is float32\[8\] on cpu; expected one dtype/],
    ['eps', () => ({ qNorm: Tensor.zeros([8]), eps: -1 }), /qkvRotaryCache: eps must be finite and >= 0, got -1/],
    ['out shape', () => ({ out: Tensor.zeros([2, 16]) }), /qkvRotaryCache: out is float32\[2, 16\] on cpu; expected shape \[2, 2, 8\]/],
    ['out dtype', () => ({ out: Tensor.zeros([2, 2, 8], 'bfloat16') }), /qkvRotaryCache: dtypes differ: qkv is float32, out is bfloat16/],
  ];
  for (const [name, over, re] of cases) {
    it(name, () => tidy(() => {
      expect(base(over())).toThrow(re);
    }));
  }
  it('the base case is valid', () => tidy(() => {
    expect(base()).not.toThrow();
  }));
  for (const slot of [12, -2, 1 << 30]) {
    it(`slot ${slot} (out of range) throws naming the token and slot, writing nothing`, () => {
      tidy(() => {
        const kCache = Tensor.fromArray(new Float32Array(96).fill(3), [3, 4, 1, 8]);
        const vCache = Tensor.fromArray(new Float32Array(96).fill(4), [3, 4, 1, 8]);
        const out = Tensor.fromArray(new Float32Array(32).fill(5), [2, 2, 8]);
        const run = base({ qkv: Tensor.fromArray(new Rng(1).normal(64), [2, 32]), slotMapping: Tensor.fromArray(Int32Array.of(1, slot), [2]), kCache, vCache, out });
        expect(run).toThrow(new RegExp(`qkvRotaryCache: slot ${slot} of token 1 is outside the cache \\[0, 12\\) \\(-1 skips a token\\)`));
        expect(Array.from(kCache.toArray() as Float32Array).every((v) => v === 3)).toBe(true);
        expect(Array.from(vCache.toArray() as Float32Array).every((v) => v === 4)).toBe(true);
        expect(Array.from(out.toArray() as Float32Array).every((v) => v === 5)).toBe(true);
      });
    });
  }
});

// A prefill of many tokens takes the fused path (stacked qkv GEMM + qkvRotary, residual adds in the
// GEMM epilogues, the final norm only at the picked rows); a short one the separate ops. Causality
// makes the first rows of the long prefill the short prefill's.
describe('dense prefill: the many-token path equals the few-token path', () => {
  const LLAMA = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 200,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    attention_bias: true,
    mlp_bias: true,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
    max_position_embeddings: 512,
    rope_theta: 10000,
    eos_token_id: 1,
  };
  it('logits and taps (float32, CPU)', () => {
    const cfg = parseModelConfig(LLAMA, '<test>');
    const src = randomSource({ seed: 11, std: 0.1 });
    const m = createCausalLM(cfg, src, { dtype: 'float32' });
    src.dispose();
    try {
      tidy(() => {
        const rng = new Rng(3);
        const ids = Array.from({ length: 170 }, () => Math.floor(rng.next() * 200));
        const n = 90;
        const taps = [0, 1, 3, 4];
        const long = prefill(m, [{ ids, logits: [n - 1, 169] }, { ids: ids.slice(0, 40), logits: 'last' }], { taps });
        const short = prefill(m, [{ ids: ids.slice(0, n), logits: 'last' }], { taps });
        const H = 64;
        const lg = long.logits!.toArray() as Float32Array;
        const sg = short.logits!.toArray() as Float32Array;
        expect(relError(lg.subarray(0, 200), sg.subarray(0, 200))).toBeLessThan(1e-5);
        for (const k of taps) {
          const a = long.taps.get(k)!.toArray() as Float32Array;
          const b = short.taps.get(k)!.toArray() as Float32Array;
          expect(relError(a.subarray(0, n * H), b.subarray(0, n * H)), `tap ${k}`).toBeLessThan(1e-5);
        }
        // 'all' logits over the long step agree with the picked rows.
        const all = m.forward({
          ids: Tensor.fromArray(Int32Array.from(ids), [170], { dtype: 'int32' }),
          positions: Tensor.fromArray(Int32Array.from({ length: 170 }, (_, i) => i), [170], { dtype: 'int32' }),
          attention: { kind: 'prefill', cuSeqlens: Tensor.fromArray(Int32Array.from([0, 170]), [2], { dtype: 'int32' }) },
          logitRows: 'all',
        }).logits!.toArray() as Float32Array;
        expect(relError(all.subarray((n - 1) * 200, n * 200), sg.subarray(0, 200))).toBeLessThan(1e-5);
        expect(relError(all.subarray(169 * 200, 170 * 200), lg.subarray(200, 400))).toBeLessThan(1e-6);
      });
    } finally {
      m.dispose();
    }
  });
});
