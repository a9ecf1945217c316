import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { addRmsnorm, addRmsnormBackward, rmsnorm, rmsnormBackward } from '../src/runtime/ops/norm.js';
import { finiteDifference, maxAbsError, relError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { rmsnormBackwardRef, rmsnormRef } from './helpers/ref_norm.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;

/** |a - b| <= rel * |b| + abs, elementwise; returns the worst violation ratio (<= 1 passes). */
function worst(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, abs: number): number {
  let w = 0;
  for (let i = 0; i < b.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / (rel * Math.abs(b[i]) + abs));
  return w;
}

describe('rmsnorm forward (CPU)', () => {
  const rng = new Rng(21);
  for (const [rows, cols] of [[1, 1], [3, 7], [16, 64], [5, 128], [4, 1000], [2, 4096]]) {
    it(`float32 [${rows}, ${cols}] matches the float64 reference`, () => {
      const x = rng.normal(rows * cols, 2);
      const w = rng.uniform(cols, 0.5, 1.5);
      const { y, rstd } = rmsnorm(Tensor.fromArray(x, [rows, cols]), Tensor.fromArray(w, [cols]), 1e-6);
      const ref = rmsnormRef(x, w, rows, cols, 1e-6);
      expect(rstd.shape).toEqual([rows]);
      // fp32 products of values ~1 and an fp64 row sum: a few ulps of float32
      expect(relError(f32(y), ref.y)).toBeLessThan(1e-6);
      expect(relError(f32(rstd), ref.rstd)).toBeLessThan(1e-6);
    });
  }

  for (const wDType of ['bfloat16', 'float32'] as const) {
    it(`bfloat16 x with ${wDType} w: one bf16 rounding of the exact result`, () => {
      const [rows, cols] = [6, 384];
      const x = roundBf16(rng.normal(rows * cols));
      const w = wDType === 'bfloat16' ? roundBf16(rng.uniform(cols, 0.5, 1.5)) : rng.uniform(cols, 0.5, 1.5);
      const { y } = rmsnorm(Tensor.fromArray(x, [rows, cols], { dtype: 'bfloat16' }), Tensor.fromArray(w, [cols], { dtype: wDType }));
      expect(y.dtype).toBe('bfloat16');
      const ref = rmsnormRef(x, w, rows, cols, 1e-6);
      // fp32 math then rounding to bf16: half an ulp (2^-9 relative) plus fp32 noise
      expect(worst(f32(y), ref.y, 2 ** -8, 1e-30)).toBeLessThanOrEqual(1);
    });
  }

  it('q/k-norm shape: [tokens, heads, head_dim] with w [head_dim]', () => {
    const x = rng.normal(3 * 4 * 128);
    const w = rng.uniform(128, 0.5, 1.5);
    const { y, rstd } = rmsnorm(Tensor.fromArray(x, [3, 4, 128]), Tensor.fromArray(w, [128]), 1e-6);
    expect(y.shape).toEqual([3, 4, 128]);
    expect(rstd.shape).toEqual([3, 4]);
    expect(relError(f32(y), rmsnormRef(x, w, 12, 128, 1e-6).y)).toBeLessThan(1e-6);
  });

  it('fused residual add: h is x + residual rounded once, y normalises the stored h', () => {
    const [rows, cols] = [9, 200];
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const round = dtype === 'bfloat16' ? roundBf16 : (v: Float32Array) => v;
      const x = round(rng.normal(rows * cols));
      const res = round(rng.normal(rows * cols, 3));
      const w = rng.uniform(cols, 0.5, 1.5);
      const out = addRmsnorm(
        Tensor.fromArray(x, [rows, cols], { dtype }),
        Tensor.fromArray(res, [rows, cols], { dtype }),
        Tensor.fromArray(w, [cols]),
        1e-5,
      );
      const h = round(Float32Array.from(x, (v, i) => Math.fround(v + res[i])));
      expect(Array.from(f32(out.h))).toEqual(Array.from(h));
      const ref = rmsnormRef(h, w, rows, cols, 1e-5);
      expect(worst(f32(out.y), ref.y, dtype === 'bfloat16' ? 2 ** -8 : 1e-6, 1e-30)).toBeLessThanOrEqual(1);
      expect(relError(f32(out.rstd), ref.rstd)).toBeLessThan(1e-6);
    }
  });
});

describe('rmsnorm backward (CPU)', () => {
  const rng = new Rng(33);
  const eps = 1e-6;

  for (const [rows, cols] of [[1, 1], [4, 7], [8, 64], [3, 1000]]) {
    it(`float32 [${rows}, ${cols}]: analytic reference, finite differences and the CPU kernel agree`, () => {
      const x = rng.normal(rows * cols);
      const w = rng.uniform(cols, 0.5, 1.5);
      const dy = rng.normal(rows * cols);
      const xt = Tensor.fromArray(x, [rows, cols]);
      const wt = Tensor.fromArray(w, [cols]);
      const { rstd } = rmsnorm(xt, wt, eps);
      const { dx, dw } = rmsnormBackward(Tensor.fromArray(dy, [rows, cols]), xt, wt, rstd);
      const ref = rmsnormBackwardRef(dy, x, w, rows, cols, eps);
      // fp32 elementwise math on an fp64 row sum. dx is a difference of two terms of size up to ~10
      // (it cancels completely when cols = 1): bound the absolute error by a few fp32 ulps of them.
      expect(maxAbsError(f32(dx), ref.dx)).toBeLessThan(1e-5);
      if (cols > 1) expect(relError(f32(dx), ref.dx)).toBeLessThan(1e-5);
      expect(relError(f32(dw), ref.dw)).toBeLessThan(1e-6);
      // the float64 reference's own gradient, by central differences of sum(dy * y)
      const x64 = Float64Array.from(x);
      const w64 = Float64Array.from(w);
      const lossX = (v: Float64Array): number => rmsnormRef(v, w64, rows, cols, eps).y.reduce((s, y, i) => s + y * dy[i], 0);
      const lossW = (v: Float64Array): number => rmsnormRef(x64, v, rows, cols, eps).y.reduce((s, y, i) => s + y * dy[i], 0);
      const ix = [0, Math.floor((rows * cols) / 2), rows * cols - 1];
      const iw = [0, cols - 1];
      const fdx = finiteDifference(lossX, x64, ix, 1e-5);
      const fdw = finiteDifference(lossW, w64, iw, 1e-5);
      // central differences with h = 1e-5 in float64: truncation ~h^2, rounding ~1e-11/h
      expect(maxAbsError(fdx, ix.map((i) => ref.dx[i]))).toBeLessThan(1e-5);
      expect(maxAbsError(fdw, iw.map((i) => ref.dw[i]))).toBeLessThan(1e-5);
      expect(maxAbsError(fdx, ix.map((i) => f32(dx)[i]))).toBeLessThan(1e-4);
    });
  }

  it('bfloat16 with float32 w: dx within bf16 rounding of the reference, dw float32', () => {
    const [rows, cols] = [5, 256];
    const x = roundBf16(rng.normal(rows * cols));
    const dy = roundBf16(rng.normal(rows * cols));
    const w = rng.uniform(cols, 0.5, 1.5);
    const xt = Tensor.fromArray(x, [rows, cols], { dtype: 'bfloat16' });
    const wt = Tensor.fromArray(w, [cols]);
    const { rstd } = rmsnorm(xt, wt);
    const { dx, dw } = rmsnormBackward(Tensor.fromArray(dy, [rows, cols], { dtype: 'bfloat16' }), xt, wt, rstd);
    expect(dx.dtype).toBe('bfloat16');
    expect(dw.dtype).toBe('float32');
    const ref = rmsnormBackwardRef(dy, x, w, rows, cols, 1e-6);
    // dx: one bf16 rounding (2^-9 relative) of a difference of two terms; bound by an ulp of the
    // larger term: 2^-8 * (|rstd*dy*w| + |coef*h|) <= 2^-8 * 8 here.
    expect(maxAbsError(f32(dx), ref.dx)).toBeLessThan(8 * 2 ** -8);
    expect(relError(f32(dx), ref.dx)).toBeLessThan(4e-3);
    expect(relError(f32(dw), ref.dw)).toBeLessThan(1e-6);
  });

  it('fused backward adds dhIn to dx; without dhIn it is the plain backward', () => {
    const [rows, cols] = [6, 96];
    const x = rng.normal(rows * cols);
    const res = rng.normal(rows * cols);
    const w = rng.uniform(cols, 0.5, 1.5);
    const dy = rng.normal(rows * cols);
    const dhIn = rng.normal(rows * cols);
    const xt = Tensor.fromArray(x, [rows, cols]);
    const wt = Tensor.fromArray(w, [cols]);
    const { h, rstd } = addRmsnorm(xt, Tensor.fromArray(res, [rows, cols]), wt);
    const hv = f32(h);
    const g = addRmsnormBackward(Tensor.fromArray(dy, [rows, cols]), Tensor.fromArray(dhIn, [rows, cols]), h, wt, rstd);
    const ref = rmsnormBackwardRef(dy, hv, w, rows, cols, 1e-6, dhIn);
    expect(relError(f32(g.dx), ref.dx)).toBeLessThan(1e-5);
    expect(relError(f32(g.dw), ref.dw)).toBeLessThan(1e-6);
    const plain = addRmsnormBackward(Tensor.fromArray(dy, [rows, cols]), null, h, wt, rstd);
    expect(relError(f32(plain.dx), rmsnormBackwardRef(dy, hv, w, rows, cols, 1e-6).dx)).toBeLessThan(1e-5);
    // the gradient reaching x through h is the same as through the residual: by FD on x and on res
    const x64 = Float64Array.from(x);
    const loss = (v: Float64Array): number => {
      const hh = Float64Array.from(v, (a, i) => a + res[i]);
      const y = rmsnormRef(hh, w, rows, cols, 1e-6).y;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * dy[i] + hh[i] * dhIn[i];
      return s;
    };
    const idx = [1, 100, rows * cols - 2];
    expect(maxAbsError(finiteDifference(loss, x64, idx, 1e-5), idx.map((i) => f32(g.dx)[i]))).toBeLessThan(1e-4);
  });

  it('names the op, shapes and dtypes when misused', () => {
    const x = Tensor.fromArray(new Float32Array(8).fill(1), [2, 4]);
    const w = Tensor.fromArray([1, 1, 1, 1], [4]);
    expect(() => rmsnorm(x, Tensor.fromArray([1, 1, 1], [3]))).toThrow(/rmsnorm: w is float32\[3\] on cpu; expected shape \[4\]/);
    expect(() => rmsnorm(Tensor.empty([2, 4], 'float16'), w)).toThrow(/rmsnorm: x is float16\[2, 4\] on cpu; expected dtype float32 or bfloat16/);
    expect(() => rmsnorm(x, Tensor.empty([4], 'bfloat16'))).toThrow(/rmsnorm: w is bfloat16\[4\] on cpu; expected float32 or float32/);
    expect(() => rmsnorm(Tensor.empty([2, 0]), Tensor.empty([0]))).toThrow(/the normalised dimension is empty/);
    expect(() => rmsnorm(x, w, -1)).toThrow(/rmsnorm: eps must be finite and >= 0/);
    expect(() => addRmsnorm(x, Tensor.empty([4, 2]), w)).toThrow(/addRmsnorm: residual is float32\[4, 2\] on cpu; expected shape \[2, 4\]/);
    const { rstd } = rmsnorm(x, w);
    expect(() => rmsnormBackward(Tensor.empty([2, 4], 'bfloat16'), x, w, rstd)).toThrow(/rmsnormBackward: dy is bfloat16\[2, 4\] on cpu; expected float32/);
    expect(() => rmsnormBackward(x, x, w, Tensor.empty([3]))).toThrow(/rmsnormBackward: rstd is float32\[3\] on cpu; expected 2 values/);
  });
});
