import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { native } from '../src/runtime/binding.js';
import { linear, matmul } from '../src/runtime/ops/matmul.js';
import { OUT_REL, gemmTolerance, refMatmul, worstError } from './helpers/ref_matmul.js';
import { Rng } from './helpers/random.js';

/**
 * Every result is checked per element against the float64 reference with the fp32-accumulation
 * bound of helpers/ref_matmul.ts: (k + 4) * 2^-24 * sum|terms|, plus one ulp of the output dtype
 * (0 for f32, 2^-8 for bf16, 2^-10 for f16). An indexing or transpose bug gives errors of the order
 * of sum|terms| itself, far above this.
 */
function expectClose(got: ArrayLike<number>, ref: Float64Array, mag: Float64Array, k: number, outRel: number, label: string): void {
  expect(got.length, label).toBe(ref.length);
  const w = worstError(got, ref, gemmTolerance(ref, mag, k, outRel));
  expect(w.ratio, `${label}: element ${w.index} is ${w.got}, reference ${w.want}`).toBeLessThanOrEqual(1);
}

/** Random values rounded to `dtype`, as both a tensor and the exact values the kernel sees. */
function input(rng: Rng, shape: number[], dtype: DType = 'float32'): { t: Tensor; v: Float32Array } {
  const n = shape.reduce((x, y) => x * y, 1);
  const t = Tensor.fromArray(rng.uniform(n), shape, { dtype });
  return { t, v: t.toFloat32Array() as Float32Array };
}

describe('matmul on the CPU', () => {
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [7, 5, 3],
    [33, 65, 17],
    [65, 33, 300], // K spans two packed slices (256)
    [100, 270, 40], // M and N span two blocks (96 rows, 256 columns)
    [5, 1, 64],
    [3, 600, 700], // the few-rows path: several column blocks and K chunks
  ];
  for (const [m, n, k] of sizes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`f32 m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`, () => {
          const rng = new Rng(m * 1000 + n * 10 + k + (transA ? 7 : 0) + (transB ? 13 : 0));
          const a = input(rng, transA ? [k, m] : [m, k]);
          const b = input(rng, transB ? [n, k] : [k, n]);
          const c = matmul(a.t, b.t, { transA, transB });
          expect(c.shape).toEqual([m, n]);
          expect(c.dtype).toBe('float32');
          const r = refMatmul({ a: a.v, b: b.v, m, n, k, transA, transB });
          expectClose(c.toFloat32Array() as Float32Array, r.out, r.mag, k, 0, 'f32');
        });
      }
    }
  }

  it('threads over a larger problem (several blocks in every dimension) with bias, alpha, beta', () => {
    const [batch, m, n, k] = [2, 200, 530, 520];
    const rng = new Rng(77);
    const a = input(rng, [batch, m, k]);
    const b = input(rng, [n, k]);
    const bias = input(rng, [n]);
    const prev = input(rng, [batch, m, n]);
    const out = prev.t.clone();
    matmul(a.t, b.t, { transB: true, bias: bias.t, alpha: 1.25, beta: -2, out });
    const r = refMatmul({ a: a.v, b: b.v, m, n, k, transB: true, batch, strideB: 0, bias: bias.v, alpha: 1.25, beta: -2, c: prev.v });
    expectClose(out.toFloat32Array() as Float32Array, r.out, r.mag, k, 0, 'large');
  });

  it('batched 3-D operands with every transpose', () => {
    const [batch, m, n, k] = [3, 9, 18, 11];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const rng = new Rng(5 + (transA ? 1 : 0) + (transB ? 2 : 0));
        const a = input(rng, transA ? [batch, k, m] : [batch, m, k]);
        const b = input(rng, transB ? [batch, n, k] : [batch, k, n]);
        const c = matmul(a.t, b.t, { transA, transB });
        expect(c.shape).toEqual([batch, m, n]);
        const r = refMatmul({ a: a.v, b: b.v, m, n, k, transA, transB, batch });
        expectClose(c.toFloat32Array() as Float32Array, r.out, r.mag, k, 0, `batched ${transA} ${transB}`);
      }
    }
  });

  it('broadcasts a 2-D (or batch-1) operand over the batch', () => {
    const [batch, m, n, k] = [4, 6, 10, 7];
    const rng = new Rng(9);
    const a3 = input(rng, [batch, m, k]);
    const b2 = input(rng, [n, k]);
    const c1 = matmul(a3.t, b2.t, { transB: true });
    expect(c1.shape).toEqual([batch, m, n]);
    const r1 = refMatmul({ a: a3.v, b: b2.v, m, n, k, transB: true, batch, strideB: 0 });
    expectClose(c1.toFloat32Array() as Float32Array, r1.out, r1.mag, k, 0, 'B broadcast');

    const a2 = input(rng, [m, k]);
    const b3 = input(rng, [batch, k, n]);
    const c2 = matmul(a2.t, b3.t);
    expect(c2.shape).toEqual([batch, m, n]);
    const r2 = refMatmul({ a: a2.v, b: b3.v, m, n, k, batch, strideA: 0 });
    expectClose(c2.toFloat32Array() as Float32Array, r2.out, r2.mag, k, 0, 'A broadcast');

    const a1 = input(rng, [1, m, k]);
    const c3 = matmul(a1.t, b3.t);
    expect(c3.shape).toEqual([batch, m, n]);
    const r3 = refMatmul({ a: a1.v, b: b3.v, m, n, k, batch, strideA: 0 });
    expectClose(c3.toFloat32Array() as Float32Array, r3.out, r3.mag, k, 0, 'batch-1 broadcast');
  });

  it('adds a bias and applies alpha and beta to an out tensor', () => {
    const [batch, m, n, k] = [2, 13, 21, 9];
    const rng = new Rng(11);
    const a = input(rng, [batch, m, k]);
    const b = input(rng, [batch, k, n]);
    const bias = input(rng, [n]);
    const prev = input(rng, [batch, m, n]);
    const out = prev.t.clone();
    const c = matmul(a.t, b.t, { bias: bias.t, alpha: -0.75, beta: 0.5, out });
    expect(c).toBe(out);
    const r = refMatmul({ a: a.v, b: b.v, m, n, k, batch, bias: bias.v, alpha: -0.75, beta: 0.5, c: prev.v });
    expectClose(c.toFloat32Array() as Float32Array, r.out, r.mag, k, 0, 'bias alpha beta');
  });

  it('beta = 0 ignores the previous contents of out, even NaN', () => {
    const rng = new Rng(12);
    const a = input(rng, [4, 5]);
    const b = input(rng, [5, 3]);
    const out = Tensor.fromArray(new Float32Array(12).fill(NaN), [4, 3]);
    matmul(a.t, b.t, { out });
    const r = refMatmul({ a: a.v, b: b.v, m: 4, n: 3, k: 5 });
    expectClose(out.toFloat32Array() as Float32Array, r.out, r.mag, 5, 0, 'beta=0');
  });

  for (const abType of ['bfloat16', 'float16'] as DType[]) {
    for (const outType of ['float32', 'bfloat16', 'float16'] as DType[]) {
      it(`${abType} inputs, ${outType} output, bias of the output dtype`, () => {
        const [m, n, k] = [37, 70, 129];
        const rng = new Rng(21);
        const a = input(rng, [m, k], abType);
        const b = input(rng, [n, k], abType);
        const bias = input(rng, [n], outType);
        const c = matmul(a.t, b.t, { transB: true, bias: bias.t, outDType: outType });
        expect(c.dtype).toBe(outType);
        // The reference sees the rounded inputs (exactly what the kernel reads).
        const r = refMatmul({ a: a.v, b: b.v, m, n, k, transB: true, bias: bias.v });
        expectClose(c.toFloat32Array(), r.out, r.mag, k, OUT_REL[outType], `${abType}->${outType}`);
      });
    }
  }

  for (const abType of ['bfloat16', 'float16'] as DType[]) {
    it(`few rows (decode-like) in ${abType}: batched over a shared B, both B layouts, bias`, () => {
      const [batch, m, n, k] = [3, 2, 300, 77];
      for (const transB of [false, true]) {
        const rng = new Rng(transB ? 91 : 92);
        const a = input(rng, [batch, m, k], abType);
        const b = input(rng, transB ? [n, k] : [k, n], abType);
        const bias = input(rng, [n], abType);
        const c = matmul(a.t, b.t, { transB, bias: bias.t, outDType: 'float32' });
        const r = refMatmul({ a: a.v, b: b.v, m, n, k, transB, batch, strideB: 0, bias: bias.v });
        expectClose(c.toFloat32Array(), r.out, r.mag, k, 0, `few rows transB=${transB}`);
      }
    });
  }

  it('bf16 batched with transA and an f32 bias', () => {
    const [batch, m, n, k] = [3, 17, 33, 65];
    const rng = new Rng(31);
    const a = input(rng, [batch, k, m], 'bfloat16');
    const b = input(rng, [batch, k, n], 'bfloat16');
    const bias = input(rng, [n], 'float32');
    const c = matmul(a.t, b.t, { transA: true, bias: bias.t });
    expect(c.dtype).toBe('bfloat16');
    const r = refMatmul({ a: a.v, b: b.v, m, n, k, transA: true, batch, bias: bias.v });
    expectClose(c.toFloat32Array(), r.out, r.mag, k, OUT_REL.bfloat16, 'bf16 batched');
  });

  it('k = 0 gives bias (alpha * empty sum), m = 0 gives an empty result', () => {
    const bias = Tensor.fromArray([1.5, -2, 3], [3]);
    const c = matmul(Tensor.empty([2, 0]), Tensor.empty([0, 3]), { bias });
    expect(Array.from(c.toFloat32Array())).toEqual([1.5, -2, 3, 1.5, -2, 3]);
    const e = matmul(Tensor.empty([0, 4]), Tensor.empty([4, 3]));
    expect(e.shape).toEqual([0, 3]);
  });

  it('linear is x @ weight^T + bias over any leading dimensions', () => {
    const [n, k] = [19, 23];
    const rng = new Rng(41);
    const x = input(rng, [2, 3, k]);
    const w = input(rng, [n, k]);
    const bias = input(rng, [n]);
    const y = linear(x.t, w.t, bias.t);
    expect(y.shape).toEqual([2, 3, n]);
    const r = refMatmul({ a: x.v, b: w.v, m: 6, n, k, transB: true, bias: bias.v });
    expectClose(y.toFloat32Array() as Float32Array, r.out, r.mag, k, 0, 'linear');
    const y1 = linear(Tensor.fromArray(x.v.slice(0, k), [k]), w.t);
    expect(y1.shape).toEqual([n]);
    const r1 = refMatmul({ a: x.v.slice(0, k), b: w.v, m: 1, n, k, transB: true });
    expectClose(y1.toFloat32Array() as Float32Array, r1.out, r1.mag, k, 0, 'linear 1-D');
  });

  it('names the shapes, dtypes and options when misused', () => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([4, 5]);
    expect(() => matmul(a, b)).toThrow(/matmul: inner dimensions differ \(3 vs 4\): a float32\[2, 3\] on cpu, b float32\[4, 5\]/);
    expect(() => matmul(a, Tensor.zeros([5, 3]), { transB: true, bias: Tensor.zeros([4]) })).toThrow(
      /matmul: bias is float32\[4\] on cpu; expected shape \[5\]/,
    );
    expect(() => matmul(a, Tensor.zeros([3, 2], 'bfloat16'))).toThrow(/matmul: a and b must share a dtype/);
    expect(() => matmul(Tensor.zeros([2, 3], 'int32'), Tensor.zeros([3, 2], 'int32'))).toThrow(/matmul: a is int32\[2, 3\] on cpu; expected a floating dtype/);
    expect(() => matmul(a, Tensor.zeros([3, 2]), { beta: 1 })).toThrow(/matmul: beta=1 .* needs an out tensor/);
    expect(() => matmul(a, Tensor.zeros([3, 2]), { out: Tensor.zeros([2, 3]) })).toThrow(/matmul: out is float32\[2, 3\] on cpu; expected shape \[2, 2\]/);
    expect(() => matmul(Tensor.zeros([2, 2, 2, 3]), a)).toThrow(/matmul: a must be 2-D or 3-D/);
    expect(() => matmul(Tensor.zeros([2, 4, 3]), Tensor.zeros([3, 3, 5]))).toThrow(/matmul: batch sizes differ \(2 vs 3\)/);
    expect(() => linear(Tensor.zeros([4, 3]), Tensor.zeros([5, 2]))).toThrow(/linear: x is float32\[4, 3\] on cpu but weight is float32\[5, 2\] on cpu: K differs/);
  });

  it('the native entry point checks storage sizes before running', () => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([3, 4]);
    const c = Tensor.zeros([2, 3]); // too small for [2, 4]
    expect(() => native().matmul(a.storage, b.storage, c.storage, null, 0, 0, 0, 2, 4, 3, false, false, 1, 6, 12, 8, 1, 0)).toThrow(
      /matmul: c holds 24 bytes but the shapes need 32/,
    );
    expect(() => native().matmul(a.storage, b.storage, c.storage, null, 0, 0, 0, 2, 4, 3, false, false, 2, 6, 12, 8, 1, 0)).toThrow(
      /matmul: a holds 24 bytes but the shapes need 48/,
    );
    expect(() => native().matmul(a.storage, b.storage, c.storage, null, 3, 0, 0, 2, 4, 3, false, false, 1, 6, 12, 8, 1, 0)).toThrow(
      /floating dtypes/,
    );
  });
});
