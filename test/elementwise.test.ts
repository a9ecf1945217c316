import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { floatToF16Bits, f16BitsToFloat } from '../src/runtime/dtype.js';
import { add, axpy_, cast, fill_, full, max, maxLastDim, mul, scale, sum, sumLastDim } from '../src/runtime/ops/elementwise.js';
import { maxAbsError, relError } from './helpers/compare.js';
import { Rng, roundBf16 } from './helpers/random.js';

const roundF16 = (v: Float32Array): Float32Array => f16BitsToFloat(floatToF16Bits(v));
const round = (v: Float32Array, dtype: 'float32' | 'bfloat16' | 'float16'): Float32Array =>
  dtype === 'bfloat16' ? roundBf16(v) : dtype === 'float16' ? roundF16(v) : Float32Array.from(v);

describe('cast (CPU)', () => {
  it('rounds float32 to bf16/f16 to nearest even and widens back exactly', () => {
    const x = new Rng(1).normal(1001, 3);
    const t = Tensor.fromArray(x, [7, 143]);
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const y = cast(t, dtype);
      expect(y.shape).toEqual([7, 143]);
      expect(y.toNumbers()).toEqual(Array.from(round(x, dtype)));
      // widening is exact
      expect(cast(y, 'float32').toNumbers()).toEqual(y.toNumbers());
    }
    // bf16 -> f16 goes through float32: one rounding from the bf16 value
    const b = cast(t, 'bfloat16');
    expect(cast(b, 'float16').toNumbers()).toEqual(Array.from(roundF16(b.toArray() as Float32Array)));
  });

  it('converts integers: int32 <-> int64 (wrapping), int -> float by rounding', () => {
    const i64 = Tensor.fromArray([1, -2, 2 ** 31 + 5, 2 ** 40 + 1, -(2 ** 33)], [5], { dtype: 'int64' });
    expect(cast(i64, 'int32').toNumbers()).toEqual([1, -2, -(2 ** 31) + 5, 1, 0]);
    expect(cast(cast(i64, 'int32'), 'int64').toNumbers()).toEqual([1, -2, -(2 ** 31) + 5, 1, 0]);
    // 2^40 + 1 is not a float32: rounds to 2^40
    expect(cast(i64, 'float32').toNumbers()).toEqual([1, -2, 2 ** 31, 2 ** 40, -(2 ** 33)]);
    const i32 = Tensor.fromArray([3, -7, 257, 16777217], [4], { dtype: 'int32' });
    // 257 is not a bf16 (8 bits): ties to even gives 256; 16777217 -> 16777216 in float32 first
    expect(cast(i32, 'bfloat16').toNumbers()).toEqual([3, -7, 256, 16777216]);
    const mask = Tensor.fromArray([1, 0, 1], [3], { dtype: 'bool' });
    expect(cast(mask, 'float32').toNumbers()).toEqual([1, 0, 1]);
  });

  it('refuses float -> int and names the shapes', () => {
    const t = Tensor.fromArray([1.5], [1]);
    expect(() => cast(t, 'int32')).toThrow(/cast: cannot cast float32\[1\] on cpu to int32/);
  });
});

describe('fill / full (CPU)', () => {
  it('fills every dtype', () => {
    expect(full([3], 2.5).toNumbers()).toEqual([2.5, 2.5, 2.5]);
    expect(full([2], 1 / 3, 'bfloat16').toNumbers()).toEqual(Array.from(roundBf16(new Float32Array([1 / 3, 1 / 3]))));
    expect(full([2], -65504, 'float16').toNumbers()).toEqual([-65504, -65504]);
    expect(full([17], -123456, 'int32').toNumbers()).toEqual(new Array(17).fill(-123456));
    expect(full([3], 2 ** 45 + 3, 'int64').toNumbers()).toEqual([2 ** 45 + 3, 2 ** 45 + 3, 2 ** 45 + 3]);
    expect(full([33], 7, 'uint8').toNumbers()).toEqual(new Array(33).fill(7));
    expect(full([2], 1, 'bool').toNumbers()).toEqual([1, 1]);
    const t = Tensor.fromArray([1, 2, 3], [3]);
    expect(fill_(t, -0.5)).toBe(t);
    expect(t.toNumbers()).toEqual([-0.5, -0.5, -0.5]);
  });

  it('rejects values the dtype cannot hold', () => {
    expect(() => full([2], 1.5, 'int32')).toThrow(/fill_: 1.5 is not representable in int32\[2\]/);
    expect(() => full([2], 2 ** 31, 'int32')).toThrow(/not representable/);
    expect(() => full([2], 256, 'uint8')).toThrow(/not representable/);
    expect(() => full([2], 2, 'bool')).toThrow(/bool tensors take 0 or 1/);
  });
});

describe('add / mul / scale / axpy_ (CPU)', () => {
  const rng = new Rng(7);
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: same shape and trailing broadcast match fp32 math rounded once`, () => {
      const a = round(rng.uniform(5 * 37), dtype);
      const bFull = round(rng.uniform(5 * 37), dtype);
      const bRow = round(rng.uniform(37), dtype);
      const ta = Tensor.fromArray(a, [5, 37], { dtype });
      // Products and sums of two float32 values are exact in float64; fround gives the fp32 result.
      const expectOp = (f: (x: number, y: number) => number, b: Float32Array): Float32Array =>
        round(Float32Array.from(a, (v, i) => Math.fround(f(v, b[i % b.length]))), dtype);
      const cases: [Tensor, Float32Array][] = [
        [Tensor.fromArray(bFull, [5, 37], { dtype }), bFull],
        [Tensor.fromArray(bRow, [37], { dtype }), bRow],
      ];
      for (const [tb, b] of cases) {
        expect(add(ta, tb).toNumbers()).toEqual(Array.from(expectOp((x, y) => x + y, b)));
        expect(mul(ta, tb).toNumbers()).toEqual(Array.from(expectOp((x, y) => x * y, b)));
      }
      expect(scale(ta, -1.5).toNumbers()).toEqual(Array.from(round(Float32Array.from(a, (v) => Math.fround(-1.5 * v)), dtype)));
    });
  }

  it('broadcasts a trailing [K, N] block over [B, K, N] and writes in place', () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 3, 2]);
    const b = Tensor.fromArray([10, 20, 30, 40, 50, 60], [3, 2]);
    expect(add(a, b, a)).toBe(a);
    expect(a.toNumbers()).toEqual([11, 22, 33, 44, 55, 66, 17, 28, 39, 50, 61, 72]);
    scale(a, 0.5, a);
    expect(a.toNumbers()).toEqual([5.5, 11, 16.5, 22, 27.5, 33, 8.5, 14, 19.5, 25, 30.5, 36]);
  });

  it('axpy_ accumulates bf16 gradients into a float32 buffer', () => {
    const y0 = rng.normal(999);
    const x = roundBf16(rng.normal(999));
    const y = Tensor.fromArray(y0, [999]);
    const xt = Tensor.fromArray(x, [999], { dtype: 'bfloat16' });
    axpy_(y, xt, 0.25);
    axpy_(y, xt, 0.25);
    const ref = Array.from(y0, (v, i) => v + 0.5 * x[i]);
    // two fp32 roundings per step on values of size ~1: 2^-23 relative each
    expect(maxAbsError(y.toArray() as Float32Array, ref)).toBeLessThan(1e-6 * 8);
    // into bf16: one rounding of the fp32 result
    const yb = Tensor.fromArray(roundBf16(y0), [999], { dtype: 'bfloat16' });
    axpy_(yb, xt, -1);
    const refB = roundBf16(Float32Array.from(roundBf16(y0), (v, i) => v - x[i]));
    expect(yb.toNumbers()).toEqual(Array.from(refB));
  });

  it('names the op, shapes and dtypes when misused', () => {
    const a = Tensor.fromArray(new Float32Array(6), [2, 3]);
    expect(() => add(a, Tensor.fromArray([1, 2], [2]))).toThrow(/add: b is float32\[2\] on cpu; expected a's shape \[2, 3\] or a trailing part of it/);
    expect(() => mul(a, Tensor.fromArray([1, 2, 3], [3], { dtype: 'bfloat16' }))).toThrow(/mul: a and b must share a dtype/);
    expect(() => add(a, a, Tensor.empty([3, 2]))).toThrow(/add: out is float32\[3, 2\] on cpu; expected float32\[2, 3\]/);
    expect(() => scale(Tensor.fromArray([1], [1], { dtype: 'int32' }), 2)).toThrow(/scale: x is int32\[1\] on cpu; expected a floating dtype/);
    expect(() => axpy_(a, Tensor.empty([5]))).toThrow(/axpy_: y is float32\[2, 3\] on cpu but x is float32\[5\] on cpu/);
  });
});

describe('sum / max reductions (CPU)', () => {
  it('whole-tensor sum in fp64 matches a float64 reference and is deterministic', () => {
    const rng = new Rng(3);
    for (const [n, dtype] of [[1, 'float32'], [100003, 'float32'], [300001, 'bfloat16'], [4097, 'float16']] as const) {
      const x = round(rng.uniform(n, -1, 2), dtype);
      const t = Tensor.fromArray(x, [n], { dtype });
      let ref = 0;
      for (const v of x) ref += v;
      const s = sum(t);
      expect(s.shape).toEqual([]);
      expect(s.dtype).toBe('float32');
      // fp64 accumulation: the only error is the final rounding to float32 (2^-24 relative)
      expect(Math.abs(s.item() - ref)).toBeLessThanOrEqual(Math.abs(ref) * 2 ** -24 + 1e-12);
      expect(sum(t).item()).toBe(s.item());
      const m = max(t).item();
      expect(m).toBe(x.reduce((p, v) => Math.max(p, v), -Infinity));
    }
    expect(sum(Tensor.empty([0])).item()).toBe(0);
  });

  it('max propagates NaN and handles all-negative inputs', () => {
    expect(max(Tensor.fromArray([-5, -2, -9], [3])).item()).toBe(-2);
    expect(max(Tensor.fromArray([1, NaN, 3], [3])).item()).toBeNaN();
    expect(() => max(Tensor.empty([0]))).toThrow(/max: float32\[0\] on cpu is empty/);
  });

  it('reduces along the last dimension', () => {
    const rng = new Rng(5);
    for (const [shape, dtype] of [[[13, 77], 'float32'], [[2, 3, 1500], 'bfloat16'], [[4, 1], 'float16']] as const) {
      const cols = shape[shape.length - 1];
      const n = (shape as readonly number[]).reduce((p, d) => p * d, 1);
      const x = round(rng.normal(n), dtype);
      const t = Tensor.fromArray(x, shape, { dtype });
      const rows = n / cols;
      const refSum = new Float64Array(rows);
      const refMax = new Float64Array(rows).fill(-Infinity);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          refSum[r] += x[r * cols + c];
          refMax[r] = Math.max(refMax[r], x[r * cols + c]);
        }
      }
      const s = sumLastDim(t);
      expect(s.shape).toEqual(shape.slice(0, -1));
      // fp64 accumulation then one float32 rounding
      expect(maxAbsError(s.toArray() as Float32Array, refSum)).toBeLessThan(1e-5);
      expect(maxLastDim(t).toNumbers()).toEqual(Array.from(refMax));
    }
    expect(() => sumLastDim(Tensor.scalar(1))).toThrow(/sumLastDim: float32\[\] on cpu has no last dimension/);
    expect(relError(sumLastDim(Tensor.fromArray([1, 2, 3, 4], [2, 2])).toNumbers(), [3, 7])).toBe(0);
  });
});
