import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { fusedLinear, type FusedLinearOptions } from '../src/runtime/ops/fused_linear.js';
import { rmsnorm } from '../src/runtime/ops/norm.js';
import { linear } from '../src/runtime/ops/matmul.js';
import { swigluFused } from '../src/runtime/ops/activation.js';
import { add } from '../src/runtime/ops/elementwise.js';
import { worstError } from './helpers/ref_matmul.js';
import { fusedLinearReference, type RefCase } from './helpers/ref_fused_linear.js';
import { firstByteDifference } from './helpers/compare.js';
import { Rng } from './helpers/random.js';
import { toPairsRows } from './helpers/gate_up_pairs.js';

const U = 2 ** -24; // fp32 unit roundoff

const Y_REL: Record<string, number> = { float32: 6 * U, bfloat16: 2 ** -7 + 6 * U };

function host(rng: Rng, shape: number[], dtype: DType, lo = -1, hi = 1): { t: Tensor; v: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = Tensor.fromArray(rng.uniform(n, lo, hi), shape, { dtype });
  return { t, v: t.toFloat32Array() as Float32Array };
}

/** The unfused ops the fused one must reproduce bit for bit. */
function composed(x: Tensor, w: Tensor, o: FusedLinearOptions): Tensor {
  const y = o.norm ? rmsnorm(x, o.norm.weight, o.norm.eps).y : x;
  let v = linear(y, w, o.bias, { outDType: o.outDType });
  if (o.swiglu) v = swigluFused(v);
  if (o.residual) v = add(o.residual, v);
  return v;
}

function bytes(t: Tensor): ArrayBuffer {
  return t.storage.read(0, t.byteLength);
}

interface Fusion {
  name: string;
  norm?: boolean;
  normF32?: boolean;
  bias?: boolean;
  swiglu?: boolean;
  residual?: boolean;
  outF32?: boolean;
}

const FUSIONS: Fusion[] = [
  { name: 'plain' },
  { name: 'bias', bias: true },
  { name: 'norm', norm: true },
  { name: 'swiglu', swiglu: true },
  { name: 'residual in place', residual: true },
  { name: 'norm + swiglu', norm: true, swiglu: true },
  { name: 'norm (f32 weight) + bias + swiglu + residual', norm: true, normF32: true, bias: true, swiglu: true, residual: true },
  { name: 'norm, float32 out (logits)', norm: true, outF32: true },
  { name: 'bias + swiglu + residual, float32 out', bias: true, swiglu: true, residual: true, outF32: true },
];

/** Builds one problem (host tensors, exact values) for a fusion. */
function problem(rng: Rng, f: Fusion, dtype: DType, m: number, n: number, k: number) {
  const nW = f.swiglu ? 2 * n : n;
  const outDType: DType = f.outF32 ? 'float32' : dtype;
  const x = host(rng, [m, k], dtype, -2, 2);
  const w = host(rng, [nW, k], dtype, -2 / Math.sqrt(k), 2 / Math.sqrt(k));
  const bias = f.bias ? host(rng, [nW], dtype, -0.5, 0.5) : undefined;
  const nw = f.norm ? host(rng, [k], f.normF32 ? 'float32' : dtype, 0.5, 1.5) : undefined;
  const residual = f.residual ? host(rng, [m, n], outDType, -1, 1) : undefined;
  const opts: FusedLinearOptions = {
    bias: bias?.t,
    norm: nw ? { weight: nw.t, eps: 1e-5 } : undefined,
    swiglu: f.swiglu,
    outDType: f.outF32 ? 'float32' : undefined,
  };
  const ref: RefCase = {
    m, k, nW, x: x.v, w: w.v, bias: bias?.v, norm: nw ? { w: nw.v, eps: 1e-5 } : undefined, swiglu: f.swiglu,
    residual: residual?.v, xDType: dtype, outDType,
  };
  return { x, w, residual, opts, ref, outDType, nW };
}

describe('fusedLinear on the CPU vs float64', () => {
  // N odd, K not a multiple of 8 (and one that is), M across the few-rows / blocked matmul paths.
  const shapes: [number, number, number][] = [
    [1, 37, 45],
    [3, 19, 64],
    [8, 37, 45],
    [17, 21, 100],
  ];
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    for (const f of FUSIONS) {
      it(`${dtype} ${f.name}`, () => {
        for (const [m, n, k] of shapes) {
          const rng = new Rng(m * 1009 + n * 13 + k + (dtype === 'bfloat16' ? 5 : 0));
          const p = problem(rng, f, dtype, m, n, k);
          let out: Tensor;
          if (p.residual) {
            const h = p.residual.t.clone();
            out = fusedLinear(p.x.t, p.w.t, { ...p.opts, residual: h, out: h });
            expect(out).toBe(h);
          } else {
            out = fusedLinear(p.x.t, p.w.t, p.opts);
          }
          expect(out.shape).toEqual([m, n]);
          expect(out.dtype).toBe(p.outDType);
          const r = fusedLinearReference(p.ref, Y_REL[dtype], 1);
          const w = worstError(out.toFloat32Array(), r.out, r.tol);
          expect(w.ratio, `m=${m} n=${n} k=${k}: element ${w.index} is ${w.got}, reference ${w.want}`).toBeLessThanOrEqual(1);
        }
      });
    }
  }

  it('x of rank 3 gives [..., N]; K = 0 gives the bias; M = 0 gives an empty output', () => {
    const rng = new Rng(3);
    const x = host(rng, [2, 3, 16], 'bfloat16');
    const w = host(rng, [10, 16], 'bfloat16');
    const out = fusedLinear(x.t, w.t, { swiglu: true });
    expect(out.shape).toEqual([2, 3, 5]);
    const bias = Tensor.fromArray([1, -2, 3], [3]);
    const e = fusedLinear(Tensor.zeros([2, 0]), Tensor.zeros([3, 0]), { bias });
    expect(Array.from(e.toFloat32Array())).toEqual([1, -2, 3, 1, -2, 3]);
    expect(fusedLinear(Tensor.zeros([0, 4]), Tensor.zeros([3, 4])).shape).toEqual([0, 3]);
  });
});

/**
 * The property the model relies on: fusing changes no bits. The CPU twin runs the unfused CPU
 * kernels' own code, so any difference here is a rounding point out of place.
 */
describe('fusedLinear on the CPU equals the unfused ops bit for bit', () => {
  for (const dtype of ['bfloat16', 'float32'] as DType[]) {
    for (const f of FUSIONS) {
      it(`${dtype} ${f.name}`, () => {
        for (const [m, n, k] of [[1, 37, 45], [5, 20, 64], [9, 33, 130]] as [number, number, number][]) {
          const rng = new Rng(m * 7 + n * 11 + k);
          const p = problem(rng, f, dtype, m, n, k);
          const want = composed(p.x.t, p.w.t, { ...p.opts, residual: p.residual?.t });
          let got: Tensor;
          if (p.residual) {
            const h = p.residual.t.clone();
            got = fusedLinear(p.x.t, p.w.t, { ...p.opts, residual: h, out: h });
          } else {
            got = fusedLinear(p.x.t, p.w.t, p.opts);
          }
          expect(got.dtype).toBe(want.dtype);
          expect(firstByteDifference(bytes(got), bytes(want)), `m=${m} n=${n} k=${k}`).toBe(-1);
        }
      });
    }
  }

  it('a decode layer (qkv, o with residual, gate/up with swiglu, down with residual, f32 logits)', () => {
    const [hidden, inter, qkv, vocab, eps] = [64, 96, 96, 101, 1e-6];
    const rng = new Rng(77);
    const t = (shape: number[], lo = -1, hi = 1) => host(rng, shape, 'bfloat16', lo, hi).t;
    const x0 = t([1, hidden]);
    const [inNorm, postNorm, finalNorm] = [t([hidden], 0.5, 1.5), t([hidden], 0.5, 1.5), t([hidden], 0.5, 1.5)];
    const [wqkv, wo, wgu, wd, lm] = [t([qkv, hidden]), t([hidden, qkv]), t([2 * inter, hidden]), t([hidden, inter]), t([vocab, hidden])];
    // Fused.
    const x = x0.clone();
    const q = fusedLinear(x, wqkv, { norm: { weight: inNorm, eps } });
    fusedLinear(q, wo, { residual: x, out: x });
    const act = fusedLinear(x, wgu, { norm: { weight: postNorm, eps }, swiglu: true });
    fusedLinear(act, wd, { residual: x, out: x });
    const logits = fusedLinear(x, lm, { norm: { weight: finalNorm, eps }, outDType: 'float32' });
    // Unfused.
    let h = x0;
    const q2 = linear(rmsnorm(h, inNorm, eps).y, wqkv);
    h = add(h, linear(q2, wo));
    const act2 = swigluFused(linear(rmsnorm(h, postNorm, eps).y, wgu));
    h = add(h, linear(act2, wd));
    const logits2 = linear(rmsnorm(h, finalNorm, eps).y, lm, undefined, { outDType: 'float32' });
    expect(firstByteDifference(bytes(x), bytes(h))).toBe(-1);
    expect(firstByteDifference(bytes(logits), bytes(logits2))).toBe(-1);
  });
});

describe('fusedLinear argument errors', () => {
  const x = Tensor.zeros([2, 8], 'bfloat16');
  const w = Tensor.zeros([6, 8], 'bfloat16');
  it('shapes', () => {
    expect(() => fusedLinear(x, Tensor.zeros([6, 7], 'bfloat16'))).toThrow(/fusedLinear: x is bfloat16\[2, 8\] on cpu but weight is bfloat16\[6, 7\] on cpu: K differs \(8 vs 7\)/);
    expect(() => fusedLinear(x, Tensor.zeros([6], 'bfloat16'))).toThrow(/fusedLinear: weight is bfloat16\[6\] on cpu; expected \[N, K\]/);
    expect(() => fusedLinear(x, w, { bias: Tensor.zeros([5], 'bfloat16') })).toThrow(/fusedLinear: bias is bfloat16\[5\] on cpu; expected shape \[6\]/);
    expect(() => fusedLinear(x, Tensor.zeros([5, 8], 'bfloat16'), { swiglu: true })).toThrow(/fusedLinear: swiglu needs an even number of weight rows/);
    expect(() => fusedLinear(x, w, { swiglu: true, residual: Tensor.zeros([2, 6], 'bfloat16') })).toThrow(/fusedLinear: residual is .*; expected shape \[2, 3\]/);
    expect(() => fusedLinear(x, w, { out: Tensor.zeros([2, 5], 'bfloat16') })).toThrow(/fusedLinear: out is .*; expected shape \[2, 6\]/);
    expect(() => fusedLinear(x, w, { norm: { weight: Tensor.zeros([7], 'bfloat16'), eps: 1e-6 } })).toThrow(/fusedLinear: norm.weight is .*; expected shape \[8\]/);
  });
  it('dtypes', () => {
    expect(() => fusedLinear(x, Tensor.zeros([6, 8]))).toThrow(/fusedLinear: x and weight must share a dtype/);
    expect(() => fusedLinear(Tensor.zeros([2, 8], 'int32'), Tensor.zeros([6, 8], 'int32'))).toThrow(/fusedLinear: x .*; expected a floating dtype/);
    const h = Tensor.zeros([2, 8], 'float16');
    expect(() => fusedLinear(h, Tensor.zeros([6, 8], 'float16'), { norm: { weight: Tensor.zeros([8], 'float16'), eps: 1e-6 } })).toThrow(
      /fusedLinear: the norm prologue needs x float32 or bfloat16/,
    );
    expect(() => fusedLinear(x, w, { norm: { weight: Tensor.zeros([8], 'float16'), eps: 1e-6 } })).toThrow(/fusedLinear: norm.weight .*; expected bfloat16 or float32/);
    expect(() => fusedLinear(x, w, { norm: { weight: Tensor.zeros([8], 'bfloat16'), eps: -1 } })).toThrow(/fusedLinear: norm.eps must be finite and >= 0/);
    expect(() => fusedLinear(x, w, { residual: Tensor.zeros([2, 6]) })).toThrow(/fusedLinear: residual is float32\[2, 6\] on cpu; expected the output dtype bfloat16/);
    expect(() => fusedLinear(x, w, { outDType: 'float32', out: Tensor.zeros([2, 6], 'bfloat16') })).toThrow(/fusedLinear: out .* but the output dtype is float32/);
    expect(() => fusedLinear(x, w, { outDType: 'int32' })).toThrow(/fusedLinear: output dtype int32 is not floating/);
  });
  it('out may alias only residual, and only exactly', () => {
    const sq = Tensor.zeros([8, 8], 'bfloat16');
    const xs = Tensor.zeros([2, 8], 'bfloat16');
    expect(() => fusedLinear(xs, sq, { out: xs })).toThrow(/fusedGemv: out overlaps x/);
    expect(() => fusedLinear(xs, sq, { residual: xs, out: xs })).toThrow(/fusedGemv: out overlaps x/);
    const big = Tensor.zeros([3, 8], 'bfloat16');
    expect(() => fusedLinear(xs, sq, { residual: big.rows(0, 2), out: big.rows(1, 3) })).toThrow(/fusedGemv: out partly overlaps residual/);
  });
});

describe('fusedLinear gateUpLayout pairs on the CPU', () => {
  for (const dtype of ['bfloat16', 'float32'] as DType[]) {
    it(`${dtype}: weight and bias rows in pairs give the halves layout's bits`, () => {
      const f = FUSIONS.find((x) => x.name === 'norm (f32 weight) + bias + swiglu + residual')!;
      for (const [m, n, k] of [[1, 37, 45], [5, 20, 64], [9, 33, 130]] as [number, number, number][]) {
        const rng = new Rng(m * 3 + n * 5 + k);
        const p = problem(rng, f, dtype, m, n, k);
        const wPairs = Tensor.fromArray(toPairsRows(p.w.v, n, k), [2 * n, k], { dtype });
        const bPairs = Tensor.fromArray(toPairsRows(p.opts.bias!.toFloat32Array() as Float32Array, n, 1), [2 * n], { dtype });
        const want = fusedLinear(p.x.t, p.w.t, { ...p.opts, residual: p.residual!.t });
        const got = fusedLinear(p.x.t, wPairs, { ...p.opts, bias: bPairs, residual: p.residual!.t, gateUpLayout: 'pairs' });
        expect(firstByteDifference(bytes(got), bytes(want)), `m=${m} n=${n} k=${k}`).toBe(-1);
        // the composition of the unfused ops with the pairs layout, too
        const y = rmsnorm(p.x.t, p.opts.norm!.weight, p.opts.norm!.eps).y;
        const composedPairs = add(p.residual!.t, swigluFused(linear(y, wPairs, bPairs), 'pairs'));
        expect(firstByteDifference(bytes(composedPairs), bytes(want)), `composed m=${m}`).toBe(-1);
      }
    });
  }

  it('rejects an unknown layout', () => {
    const x = Tensor.zeros([1, 8]);
    const w = Tensor.zeros([4, 8]);
    expect(() => fusedLinear(x, w, { swiglu: true, gateUpLayout: 'rows' as never })).toThrow(/fusedLinear: gateUpLayout must be 'halves' or 'pairs', got rows/);
  });
});
