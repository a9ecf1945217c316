import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { native } from '../src/runtime/binding.js';
import { adamwStep, clipCoefficient, globalGradNorm } from '../src/runtime/ops/optimizer.js';
import { adamwRefStep, clipCoefficientRef, gradNormRef, type AdamWRefHyper } from './helpers/ref_optimizer.js';
import { Rng } from './helpers/random.js';

const U = 2 ** -24; // fp32 unit roundoff

function vals(t: Tensor): Float32Array {
  return t.toArray() as Float32Array;
}

/** Every |got - ref| <= tol(i). */
function expectWithin(got: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number, label: string): void {
  expect(got.length, label).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= tol(i))) expect.fail(`${label}: element ${i} is ${got[i]}, reference ${ref[i]} (tolerance ${tol(i)})`);
  }
}

interface Run {
  n: number;
  steps: number;
  gradDType: DType;
  hyper: AdamWRefHyper;
  /** Clip to this global norm (computed over grad and a second tensor), or none. */
  maxNorm?: number;
  copyDType?: DType;
}

/**
 * Runs `steps` AdamW steps on the CPU and in fp64 with the same (dtype-rounded) grads and checks
 * p, m, v and the model copy after the last one.
 *
 * Tolerance: each fp32 step rounds p * decay (2^-24 |p|) and the update (about 8 operations of
 * 2^-24 on a term of size <= lr * |m_hat| / sqrt(v_hat), which stays below ~4 lr), and m and v carry
 * their own few-ulp errors into the next step; over S steps: S * (4 * 2^-24 |p| + 32 * 2^-24 lr).
 * m and v: S * 4 * 2^-24 * (|ref| + max |g|, resp. max g^2). A wrong formula or bias correction is
 * off by a sizeable fraction of lr.
 */
function checkRun(r: Run): void {
  const rng = new Rng(r.n * 17 + r.steps + (r.maxNorm ? 1 : 0));
  const p0 = rng.uniform(r.n, -2, 2);
  const p = Tensor.fromArray(p0, [r.n]);
  const m = Tensor.zeros([r.n]);
  const v = Tensor.zeros([r.n]);
  const copy = r.copyDType ? Tensor.zeros([r.n], r.copyDType) : undefined;
  const ref = { p: Float64Array.from(p0), m: new Float64Array(r.n), v: new Float64Array(r.n) };
  let gmax = 0;
  for (let step = 1; step <= r.steps; step++) {
    const g = Tensor.fromArray(rng.uniform(r.n, -1, 1), [r.n], { dtype: r.gradDType });
    const other = Tensor.fromArray(rng.uniform(5, -1, 1), [5], { dtype: r.gradDType });
    const gv = vals(g);
    let clipCoef: Tensor | undefined;
    let coefRef = 1;
    if (r.maxNorm !== undefined) {
      const norm = globalGradNorm([g, other]);
      const normRef = gradNormRef([gv, vals(other)]);
      // fp64 sum of squares, one fp32 rounding of the sum and of the sqrt.
      expect(Math.abs(norm.item() - normRef)).toBeLessThanOrEqual(2 * U * normRef);
      clipCoef = clipCoefficient(norm, r.maxNorm);
      // The kernel divides in fp32 from the fp32 norm: a few ulps.
      coefRef = clipCoefficientRef(normRef, r.maxNorm);
      expect(Math.abs(clipCoef.item() - coefRef)).toBeLessThanOrEqual(4 * U * coefRef);
      coefRef = clipCoef.item(); // the reference scales by the same fp32 coefficient
    }
    const gScaled = Float64Array.from(gv, (x) => x * coefRef);
    for (const x of gScaled) gmax = Math.max(gmax, Math.abs(x));
    adamwStep(p, g, m, v, { ...r.hyper, step, clipCoef, modelCopy: copy });
    adamwRefStep(ref, gScaled, r.hyper, step);
  }
  const S = r.steps;
  const pv = vals(p);
  expectWithin(pv, ref.p, (i) => S * (4 * U * Math.abs(ref.p[i]) + 32 * U * r.hyper.lr) + 1e-30, 'param');
  expectWithin(vals(m), ref.m, (i) => S * 4 * U * (Math.abs(ref.m[i]) + gmax), 'expAvg');
  expectWithin(vals(v), ref.v, (i) => S * 4 * U * (Math.abs(ref.v[i]) + gmax * gmax), 'expAvgSq');
  if (copy) {
    // The copy is the updated fp32 param rounded to nearest: exactly the host rounding of it.
    const expected = vals(Tensor.fromArray(pv, [r.n], { dtype: copy.dtype }));
    expect(Array.from(vals(copy))).toEqual(Array.from(expected));
  }
}

const HYPER: AdamWRefHyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

describe('adamwStep on the CPU', () => {
  for (const n of [1, 7, 1001, 70001]) {
    it(`n=${n}: 6 steps with weight decay, f32 grads`, () => checkRun({ n, steps: 6, gradDType: 'float32', hyper: HYPER }));
  }
  it('no weight decay, bf16 grads and a bf16 model copy', () =>
    checkRun({ n: 513, steps: 5, gradDType: 'bfloat16', hyper: { ...HYPER, weightDecay: 0 }, copyDType: 'bfloat16' }));
  it('f16 grads, f16 copy, other betas', () =>
    checkRun({ n: 300, steps: 4, gradDType: 'float16', hyper: { lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 }, copyDType: 'float16' }));
  it('clipping that bites (max norm 0.5) over several steps', () =>
    checkRun({ n: 2000, steps: 5, gradDType: 'float32', hyper: HYPER, maxNorm: 0.5 }));
  it('clipping that does not bite (coefficient 1)', () =>
    checkRun({ n: 100, steps: 3, gradDType: 'bfloat16', hyper: HYPER, maxNorm: 1e6, copyDType: 'bfloat16' }));

  it('the first step without weight decay moves each weight by about lr against its gradient', () => {
    // m_hat = g and v_hat = g^2 after one step, so the update is lr * g / (|g| + eps): an
    // independent check of the bias corrections.
    const rng = new Rng(4);
    const p0 = rng.uniform(64, -1, 1);
    const g = rng.uniform(64, -1, 1);
    const p = Tensor.fromArray(p0, [64]);
    adamwStep(p, Tensor.fromArray(g, [64]), Tensor.zeros([64]), Tensor.zeros([64]), { lr: 0.1, step: 1, weightDecay: 0 });
    expectWithin(vals(p), Float64Array.from(p0, (x, i) => x - 0.1 * Math.sign(g[i])), (i) => 1e-6 + 4 * U * Math.abs(p0[i]), 'param');
  });

  it('weight decay alone shrinks p by lr * wd when the gradient is 0', () => {
    const p = Tensor.fromArray([1, -2, 4], [3]);
    adamwStep(p, Tensor.zeros([3]), Tensor.zeros([3]), Tensor.zeros([3]), { lr: 0.1, step: 3, weightDecay: 0.5 });
    expectWithin(vals(p), [0.95, -1.9, 3.8], () => 4 * U * 4, 'param');
  });

  it('accepts shapes with the same element count (flat master weights, shaped grads)', () => {
    const p = Tensor.fromArray([1, 2, 3, 4, 5, 6], [6]);
    adamwStep(p, Tensor.fromArray([1, 1, 1, 1, 1, 1], [2, 3]), Tensor.zeros([6]), Tensor.zeros([3, 2]), { lr: 0.5, step: 1, weightDecay: 0 });
    expectWithin(vals(p), [0.5, 1.5, 2.5, 3.5, 4.5, 5.5], () => 1e-6, 'param');
  });

  it('names the op and what is wrong when misused', () => {
    const p = Tensor.zeros([4]);
    const z = () => Tensor.zeros([4]);
    const h = { lr: 0.1, step: 1 };
    expect(() => adamwStep(Tensor.zeros([4], 'bfloat16'), z(), z(), z(), h)).toThrow(/adamwStep: param is bfloat16\[4\] on cpu; expected dtype float32/);
    expect(() => adamwStep(p, Tensor.zeros([5]), z(), z(), h)).toThrow(/adamwStep: grad is float32\[5\] on cpu; expected 4 elements like param/);
    expect(() => adamwStep(p, Tensor.zeros([4], 'int32'), z(), z(), h)).toThrow(/adamwStep: grad is int32\[4\] on cpu; expected a floating dtype/);
    expect(() => adamwStep(p, z(), z(), z(), { lr: 0.1, step: 0 })).toThrow(/step must be an integer >= 1 \(the first step is 1\), got 0/);
    expect(() => adamwStep(p, z(), z(), z(), { lr: -1, step: 1 })).toThrow(/lr must be finite and >= 0, got -1/);
    expect(() => adamwStep(p, z(), z(), z(), { ...h, beta2: 1 })).toThrow(/betas must lie in \[0, 1\), got 0.9, 1/);
    expect(() => adamwStep(p, z(), z(), z(), { ...h, clipCoef: Tensor.zeros([2]) })).toThrow(/clipCoef is float32\[2\] on cpu; expected one element/);
    expect(() => adamwStep(p, z(), z(), z(), { ...h, modelCopy: Tensor.zeros([3], 'bfloat16') })).toThrow(/modelCopy is bfloat16\[3\] on cpu; expected 4 elements/);
    // The native glue and kernel check on their own too.
    expect(() => native().adamwStep(p.storage, p.storage, 0, p.storage, p.storage, null, 1, null, 5, 0.1, 0.9, 0.999, 1e-8, 0, 1)).toThrow(
      /adamwStep: param holds 16 bytes but the shapes need 20/,
    );
    expect(() => native().adamwStep(p.storage, p.storage, 0, p.storage, p.storage, null, 1, null, 4, 0.1, 0.9, 0.999, 0, 0, 1)).toThrow(
      /eps must be finite and > 0/,
    );
  });
});

describe('global grad norm and clip coefficient on the CPU', () => {
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: several tensors, one longer than a summation block (65536)`, () => {
      const rng = new Rng(8);
      const gs = [rng.uniform(3), rng.uniform(70000), rng.uniform(1)].map((a) => Tensor.fromArray(a, [a.length], { dtype }));
      const norm = globalGradNorm(gs);
      expect(norm.shape).toEqual([]);
      const ref = gradNormRef(gs.map(vals));
      // fp64 sums; fp32 roundings of the accumulated sum and of the sqrt.
      expect(Math.abs(norm.item() - ref)).toBeLessThanOrEqual(2 * U * ref);
      expect(clipCoefficient(norm, 1).item()).toBeCloseTo(1 / (ref + 1e-6), 6);
      expect(clipCoefficient(norm, 1e9).item()).toBe(1);
    });
  }

  it('a NaN norm gives a NaN coefficient (as torch), never a silent 1', () => {
    expect(Number.isNaN(clipCoefficient(Tensor.scalar(NaN), 1).item())).toBe(true);
    const norm = globalGradNorm([Tensor.fromArray([1, NaN], [2])]);
    expect(Number.isNaN(norm.item())).toBe(true);
  });

  it('names the op and what is wrong when misused', () => {
    expect(() => globalGradNorm([])).toThrow(/globalGradNorm: needs at least one tensor/);
    expect(() => globalGradNorm([Tensor.zeros([2]), Tensor.zeros([2], 'int32')])).toThrow(/globalGradNorm: grads\[1\] is int32\[2\] on cpu; expected a floating dtype/);
    expect(() => clipCoefficient(Tensor.scalar(1), 0)).toThrow(/clipCoefficient: maxNorm must be finite and > 0, got 0/);
    expect(() => clipCoefficient(Tensor.zeros([2]), 1)).toThrow(/clipCoefficient: norm is float32\[2\] on cpu; expected one element/);
    const x = Tensor.zeros([2]);
    expect(() => native().sumSquaresAccumulate(x.storage, 0, 3, Tensor.scalar(0).storage)).toThrow(
      /sumSquaresAccumulate: x holds 8 bytes but the shapes need 12/,
    );
  });
});
