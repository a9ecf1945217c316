import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { native } from '../src/runtime/binding.js';
import {
  fusedLinearCrossEntropy,
  fusedLinearKl,
  fusedLossChunkRows,
  fusedLossScratchBytesPerRow,
  logSoftmax,
  logSoftmaxBackward,
  softmax,
  softmaxBackward,
} from '../src/runtime/ops/loss.js';
import { crossEntropyRef, klRef, softmaxBackwardRef, softmaxRef } from './helpers/ref_loss.js';
import { finiteDifference, maxAbsError, relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

/** Random values rounded to `dtype`: the tensor and the exact values the kernel sees. */
function input(rng: Rng, shape: number[], dtype: DType = 'float32', scale = 1): { t: Tensor; v: Float32Array } {
  const n = shape.reduce((x, y) => x * y, 1);
  const t = Tensor.fromArray(rng.uniform(n, -scale, scale), shape, { dtype });
  return { t, v: vals(t) };
}

/** A floating tensor's values as float32 (bf16/f16 widened). */
function vals(t: Tensor): Float32Array {
  return t.toArray() as Float32Array;
}

/** Every |got - ref| <= rel * |ref| + abs. */
function expectElementwise(got: ArrayLike<number>, ref: ArrayLike<number>, rel: number, abs: number, label: string): void {
  expect(got.length, label).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= rel * Math.abs(ref[i]) + abs)) expect.fail(`${label}: element ${i} is ${got[i]}, reference ${ref[i]}`);
  }
}

describe('softmax and log-softmax on the CPU', () => {
  // [rows, cols]: a single column, odd widths, a long row.
  const sizes: [number, number][] = [
    [3, 1],
    [5, 7],
    [4, 1007],
    [2, 40000],
  ];
  for (const [rows, cols] of sizes) {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      it(`forward ${dtype} [${rows}, ${cols}]`, () => {
        const rng = new Rng(rows * 7919 + cols);
        const x = input(rng, [rows, cols], dtype, 8);
        const refS = softmaxRef(x.v, rows, cols, false);
        const refL = softmaxRef(x.v, rows, cols, true);
        // Sums are fp64, so the only error is the rounding of the stored output: 2^-24 relative for
        // f32 (2^-23 allowed), 2^-9 for bf16 (2^-8 allowed).
        const rel = dtype === 'float32' ? 2 ** -23 : 2 ** -8;
        expectElementwise(vals(softmax(x.t)), refS, rel, 1e-30, 'softmax');
        expectElementwise(vals(logSoftmax(x.t)), refL, rel, 1e-30, 'logSoftmax');
        // bf16 input, f32 output: only the f32 rounding remains.
        expectElementwise(vals(softmax(x.t, 'float32')), refS, 2 ** -23, 1e-30, 'softmax -> f32');
      });
    }
  }

  it('a 3-D input runs along the last dimension', () => {
    const rng = new Rng(5);
    const x = input(rng, [2, 3, 5]);
    const y = softmax(x.t);
    expect(y.shape).toEqual([2, 3, 5]);
    expectElementwise(vals(y), softmaxRef(x.v, 6, 5, false), 2 ** -23, 1e-30, 'softmax 3-D');
  });

  for (const log of [false, true]) {
    const name = log ? 'logSoftmaxBackward' : 'softmaxBackward';
    for (const [rows, cols] of [[3, 1], [4, 9], [3, 1007]] as [number, number][]) {
      it(`${name} [${rows}, ${cols}] matches the analytic gradient and finite differences`, () => {
        const rng = new Rng(rows * 31 + cols + (log ? 1 : 0));
        const x = input(rng, [rows, cols], 'float32', 3);
        const dy = input(rng, [rows, cols]);
        const y = log ? logSoftmax(x.t) : softmax(x.t);
        const dx = vals((log ? logSoftmaxBackward : softmaxBackward)(dy.t, y));
        // Against the fp64 formula on the same stored y: fp64 sums, one f32 rounding per element.
        const ref = softmaxBackwardRef(vals(y), dy.v, rows, cols, log);
        expect(relError(dx, ref)).toBeLessThan(1e-6);
        // Against d/dx sum(dy * f(x)) of the fp64 forward. The stored y carries 2^-24 relative error
        // and central differences with step 1e-3 an O(1e-6) truncation error: 1e-5 absolute.
        const f = (xx: Float64Array): number => {
          const s = softmaxRef(xx, rows, cols, log);
          let acc = 0;
          for (let i = 0; i < s.length; i++) acc += dy.v[i] * s[i];
          return acc;
        };
        const idx = [0, rows * cols - 1, Math.floor((rows * cols) / 2), cols - 1];
        const fd = finiteDifference(f, Float64Array.from(x.v), idx);
        expect(maxAbsError(idx.map((i) => dx[i]), fd)).toBeLessThan(1e-5);
      });
    }
  }

  it('bf16 gradients keep dy dtype; dx may be written over dy by the native call', () => {
    const rng = new Rng(17);
    const x = input(rng, [3, 50]);
    const dy = input(rng, [3, 50], 'bfloat16');
    const y = softmax(x.t);
    const dx = softmaxBackward(dy.t, y);
    expect(dx.dtype).toBe('bfloat16');
    const ref = softmaxBackwardRef(vals(y), dy.v, 3, 50, false);
    // bf16 output rounding, 2^-9 relative per element, so below 2^-8 on the norm.
    expect(relError(vals(dx), ref)).toBeLessThan(2 ** -8);
    native().softmaxBackward(y.storage, 0, dy.t.storage, dy.t.storage, 1, 3, 50, false);
    expect(Array.from(vals(dy.t))).toEqual(Array.from(vals(dx)));
  });

  it('names the op, shapes and dtypes when misused', () => {
    const xi = Tensor.fromArray([1, 2, 3], [3], { dtype: 'int32' });
    expect(() => softmax(xi)).toThrow(/softmax: x is int32\[3\] on cpu; expected a floating dtype/);
    expect(() => logSoftmax(Tensor.scalar(1))).toThrow(/logSoftmax: x is float32\[\] on cpu; expected rank >= 1/);
    const y = softmax(Tensor.fromArray([1, 2, 3, 4], [2, 2]));
    expect(() => softmaxBackward(Tensor.zeros([4]), y)).toThrow(/softmaxBackward: dy is float32\[4\] on cpu; expected shape \[2, 2\]/);
    expect(() => softmax(Tensor.fromArray([1, 2], [2]), 'int32')).toThrow(/softmax: output dtype int32 is not floating/);
    // The native glue checks bounds itself: storage too small for rows * cols.
    expect(() => native().softmax(y.storage, 0, y.storage, 0, 3, 2, false)).toThrow(
      /softmax: x holds 16 bytes but the shapes need 24 \(6 x float32\)/,
    );
  });
});

interface Problem {
  T: number;
  V: number;
  H: number;
  h: { t: Tensor; v: Float32Array };
  w: { t: Tensor; v: Float32Array };
  weights: Float32Array;
  targets: Int32Array;
}

/** Random problem; every third token ignored (weight 0, target -100) when `holes`. */
function problem(seed: number, T: number, V: number, H: number, dtype: DType, holes: boolean): Problem {
  const rng = new Rng(seed);
  const h = input(rng, [T, H], dtype, 1.5);
  const w = input(rng, [V, H], dtype, 1.5);
  const weights = rng.uniform(T, 0.25, 1.5);
  const targets = rng.int(T, 0, V);
  if (holes) {
    for (let t = 0; t < T; t += 3) {
      weights[t] = 0;
      targets[t] = -100;
    }
  }
  return { T, V, H, h, w, weights, targets };
}

describe('fusedLinearCrossEntropy on the CPU', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [7, 11, 5],
    [13, 97, 6],
  ];
  for (const [T, V, H] of shapes) {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      it(`T=${T} V=${V} H=${H} ${dtype}: loss and gradients match fp64 at every chunk size`, () => {
        const p = problem(T * 100 + V + H, T, V, H, dtype, T > 1);
        const ref = crossEntropyRef(p.h.v, p.w.v, p.targets, p.weights, T, V, H, 0.37);
        const chunks = [...new Set([1, 2, 5, T])];
        for (const chunkRows of chunks) {
          const dW0 = new Rng(9).uniform(V * H);
          const dW = Tensor.fromArray(dW0, [V, H]);
          const r = fusedLinearCrossEntropy(p.h.t, p.w.t, Tensor.fromArray(p.targets, [T]), Tensor.fromArray(p.weights, [T]), {
            chunkRows,
            backward: { dW, gradScale: 0.37 },
          });
          const label = `chunkRows=${chunkRows}`;
          // fp32 logits from an H-term fp32 dot product and an fp64 log-sum-exp: the per-token loss
          // is within ~H * 2^-24 * |logit| of fp64, far below 1e-5.
          expectElementwise(vals(r.tokenLoss), ref.tokenLoss, 1e-5, 1e-5, `${label} tokenLoss`);
          expect(Math.abs(r.lossSum.item() - ref.lossSum), label).toBeLessThanOrEqual(1e-5 * Math.abs(ref.lossSum) + 1e-5);
          // Gradients: f32 dz then fp32 GEMMs, ~1e-6 relative on the norm. With bf16 h and w, dz is
          // rounded to bf16 before the GEMMs (2^-9 relative per element), so 1e-2 on the norm.
          const tol = dtype === 'float32' ? 1e-5 : 1e-2;
          expect(relError(vals(r.dh!), ref.dh), `${label} dh`).toBeLessThan(tol);
          const dWgot = vals(dW);
          const dWinc = Float64Array.from(dWgot, (g, i) => g - dW0[i]); // dW was accumulated into
          expect(relError(dWinc, ref.dW), `${label} dW`).toBeLessThan(tol);
          for (let t = 0; t < T; t++) {
            if (p.weights[t] !== 0) continue;
            expect(vals(r.tokenLoss)[t]).toBe(0);
            const row = Array.from(vals(r.dh!).subarray(t * H, (t + 1) * H));
            expect(row.every((g) => g === 0), `ignored token ${t} gets no gradient`).toBe(true);
          }
        }
      });
    }
  }

  it('the gradients match finite differences of the fp64 loss', () => {
    const T = 5, V = 9, H = 4, scale = 0.5;
    const p = problem(77, T, V, H, 'float32', true);
    const dW = Tensor.zeros([V, H]);
    const r = fusedLinearCrossEntropy(p.h.t, p.w.t, Tensor.fromArray(p.targets, [T]), Tensor.fromArray(p.weights, [T]), {
      chunkRows: 2,
      backward: { dW, gradScale: scale },
    });
    const hv = Float64Array.from(p.h.v), wv = Float64Array.from(p.w.v);
    const fh = (x: Float64Array): number => scale * crossEntropyRef(x, wv, p.targets, p.weights, T, V, H).lossSum;
    const fw = (x: Float64Array): number => scale * crossEntropyRef(hv, x, p.targets, p.weights, T, V, H).lossSum;
    // Central differences with step 1e-3 have an O(1e-6) truncation error; the kernel's fp32 adds
    // ~1e-6 relative: 1e-4 absolute is far below a wrong index or sign (gradients are O(0.1)).
    const ih = [0, 3, 7, 11, T * H - 1];
    expect(maxAbsError(ih.map((i) => vals(r.dh!)[i]), finiteDifference(fh, hv, ih))).toBeLessThan(1e-4);
    const iw = [0, 5, 17, V * H - 1];
    expect(maxAbsError(iw.map((i) => vals(dW)[i]), finiteDifference(fw, wv, iw))).toBeLessThan(1e-4);
  });

  it('a tiny budget forces one row per chunk and gives the same result', () => {
    const p = problem(5, 6, 33, 7, 'float32', false);
    const run = (opts: { budgetBytes?: number; chunkRows?: number }) =>
      fusedLinearCrossEntropy(p.h.t, p.w.t, Tensor.fromArray(p.targets, [6]), Tensor.fromArray(p.weights, [6]), opts);
    const whole = run({});
    const tiny = run({ budgetBytes: 1 });
    // Per-row work is identical; only the GEMM's row blocking could differ: fp32 rounding at most.
    expectElementwise(vals(tiny.tokenLoss), vals(whole.tokenLoss), 1e-6, 1e-7, 'tokenLoss');
    expect(tiny.lossSum.item()).toBeCloseTo(whole.lossSum.item(), 5);
    expect(fusedLossChunkRows(1, 33 * 4)).toBe(1);
    expect(fusedLossChunkRows(256 * 2 ** 20, fusedLossScratchBytesPerRow(32000, 'bfloat16', true, true))).toBe(
      Math.floor((256 * 2 ** 20) / (32000 * 10)),
    );
    expect(fusedLossScratchBytesPerRow(1000, 'float32', false, true)).toBe(4000);
  });

  it('bf16 dh on request; T = 0 gives a zero loss', () => {
    const p = problem(3, 4, 10, 3, 'bfloat16', false);
    const r = fusedLinearCrossEntropy(p.h.t, p.w.t, Tensor.fromArray(p.targets, [4]), Tensor.fromArray(p.weights, [4]), {
      backward: { dW: Tensor.zeros([10, 3]), gradScale: 1, dhDType: 'bfloat16' },
    });
    expect(r.dh!.dtype).toBe('bfloat16');
    const ref = crossEntropyRef(p.h.v, p.w.v, p.targets, p.weights, 4, 10, 3);
    expect(relError(vals(r.dh!), ref.dh)).toBeLessThan(2e-2); // bf16 dz and bf16 output rounding
    const e = fusedLinearCrossEntropy(Tensor.zeros([0, 3], 'bfloat16'), p.w.t, Tensor.zeros([0], 'int32'), Tensor.zeros([0]));
    expect(e.lossSum.item()).toBe(0);
    expect(e.tokenLoss.shape).toEqual([0]);
  });

  it('names the op, shapes and dtypes when misused', () => {
    const p = problem(1, 4, 6, 3, 'float32', false);
    const tg = Tensor.fromArray(p.targets, [4]);
    const wt = Tensor.fromArray(p.weights, [4]);
    const op = /fusedLinearCrossEntropy: /;
    expect(() => fusedLinearCrossEntropy(p.h.t.reshape([12]), p.w.t, tg, wt)).toThrow(/h is float32\[12\] on cpu; expected rank 2/);
    expect(() => fusedLinearCrossEntropy(p.h.t, Tensor.zeros([6, 4]), tg, wt)).toThrow(/w is float32\[6, 4\] on cpu; expected shape \[-1, 3\]/);
    expect(() => fusedLinearCrossEntropy(p.h.t, Tensor.zeros([6, 3], 'bfloat16'), tg, wt)).toThrow(/h and w must share a dtype/);
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, Tensor.zeros([4]), wt)).toThrow(/targets is float32\[4\] on cpu; expected dtype int32/);
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, tg, Tensor.zeros([5]))).toThrow(/weights is float32\[5\] on cpu; expected shape \[4\]/);
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, tg, wt, { chunkRows: 0 })).toThrow(/chunkRows must be a positive integer, got 0/);
    expect(() =>
      fusedLinearCrossEntropy(p.h.t, p.w.t, tg, wt, { backward: { dW: Tensor.zeros([6, 3], 'bfloat16'), gradScale: 1 } }),
    ).toThrow(/backward.dW is bfloat16\[6, 3\] on cpu; expected dtype float32/);
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, tg, wt, { backward: { dW: Tensor.zeros([3, 6]), gradScale: 1 } })).toThrow(
      /backward.dW is float32\[3, 6\] on cpu; expected shape \[6, 3\]/,
    );
    const bad = Tensor.fromArray([0, 1, 6, 2], [4], { dtype: 'int32' });
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, bad, wt)).toThrow(op);
    expect(() => fusedLinearCrossEntropy(p.h.t, p.w.t, bad, wt)).toThrow(/targets\[2\] = 6 is outside \[0, 6\) on a token with nonzero weight/);
    // The native glue checks bounds and argument pairing itself.
    const f32 = 0, i32 = 3;
    const loss = Tensor.zeros([]), tok = Tensor.zeros([4]);
    expect(() =>
      native().fusedLinearCrossEntropy(p.h.t.storage, p.w.t.storage, f32, tg.storage, wt.storage, loss.storage, tok.storage, null, f32, null, 1, 4, 7, 3, 4),
    ).toThrow(/w holds 72 bytes but the shapes need 84/);
    expect(() =>
      native().fusedLinearCrossEntropy(p.h.t.storage, p.w.t.storage, i32, tg.storage, wt.storage, loss.storage, tok.storage, null, f32, null, 1, 4, 6, 3, 4),
    ).toThrow(/h must be float32, bfloat16 or float16, got int32/);
    expect(() =>
      native().fusedLinearCrossEntropy(p.h.t.storage, p.w.t.storage, f32, tg.storage, wt.storage, loss.storage, tok.storage, Tensor.zeros([4, 3]).storage, f32, null, 1, 4, 6, 3, 4),
    ).toThrow(/dh and dW go together/);
  });
});

describe('fusedLinearKl on the CPU', () => {
  const shapes: [number, number, number, number][] = [
    [1, 2, 1, 1],
    [7, 11, 5, 8],
    [10, 131, 6, 4],
  ];
  for (const [T, V, H, Ht] of shapes) {
    for (const [dtype, tdtype] of [['float32', 'float32'], ['bfloat16', 'float32'], ['bfloat16', 'bfloat16']] as [DType, DType][]) {
      it(`T=${T} V=${V} H=${H} Ht=${Ht} h ${dtype}, ht ${tdtype}: loss, argmax and gradients at every chunk size`, () => {
        const p = problem(T * 31 + V * 7 + H, T, V, H, dtype, T > 1);
        const rng = new Rng(T + V + Ht);
        // Target logits about 3x sharper than the draft's: KL well away from 0.
        const ht = input(rng, [T, Ht], tdtype, 2);
        const wt = input(rng, [V, Ht], tdtype, 2);
        const ref = klRef(p.h.v, p.w.v, ht.v, wt.v, p.weights, T, V, H, Ht, 1.7);
        for (const chunkRows of [...new Set([1, 3, T])]) {
          const dW = Tensor.zeros([V, H]);
          const r = fusedLinearKl(p.h.t, p.w.t, ht.t, wt.t, Tensor.fromArray(p.weights, [T]), {
            chunkRows,
            backward: { dW, gradScale: 1.7 },
          });
          const label = `chunkRows=${chunkRows}`;
          // fp32 logits (error ~ H * 2^-24 * |logit|) and an fp64 sum over V: 1e-5 relative / absolute.
          expectElementwise(vals(r.tokenLoss), ref.tokenLoss, 1e-5, 1e-5, `${label} tokenLoss`);
          expect(Math.abs(r.lossSum.item() - ref.lossSum), label).toBeLessThanOrEqual(1e-5 * Math.abs(ref.lossSum) + 1e-5);
          expect(r.argmaxMatch.toNumbers(), `${label} argmaxMatch`).toEqual(Array.from(ref.argmaxMatch!));
          // As for cross-entropy: 1e-5 in f32, 1e-2 once dz is rounded to bf16.
          const tol = dtype === 'float32' ? 1e-5 : 1e-2;
          expect(relError(vals(r.dh!), ref.dh), `${label} dh`).toBeLessThan(tol);
          expect(relError(vals(dW), ref.dW), `${label} dW`).toBeLessThan(tol);
          for (let t = 0; t < T; t++) {
            if (p.weights[t] !== 0) continue;
            expect(vals(r.tokenLoss)[t], 'ignored tokens still report their KL').toBeGreaterThan(0);
            const row = Array.from(vals(r.dh!).subarray(t * H, (t + 1) * H));
            expect(row.every((g) => g === 0), `ignored token ${t} gets no gradient`).toBe(true);
          }
        }
      });
    }
  }

  it('the gradients match finite differences of the fp64 loss', () => {
    const T = 4, V = 8, H = 3, Ht = 5, scale = 2;
    const p = problem(99, T, V, H, 'float32', false);
    const rng = new Rng(100);
    const ht = input(rng, [T, Ht], 'float32', 2);
    const wt = input(rng, [V, Ht], 'float32', 2);
    const dW = Tensor.zeros([V, H]);
    const r = fusedLinearKl(p.h.t, p.w.t, ht.t, wt.t, Tensor.fromArray(p.weights, [T]), { chunkRows: 3, backward: { dW, gradScale: scale } });
    const hv = Float64Array.from(p.h.v), wv = Float64Array.from(p.w.v);
    const fh = (x: Float64Array): number => scale * klRef(x, wv, ht.v, wt.v, p.weights, T, V, H, Ht).lossSum;
    const fw = (x: Float64Array): number => scale * klRef(hv, x, ht.v, wt.v, p.weights, T, V, H, Ht).lossSum;
    // Step 1e-3: O(1e-6) truncation; fp32 kernel: ~1e-6 relative. Gradients are O(0.1-1).
    const ih = [0, 4, 8, T * H - 1];
    expect(maxAbsError(ih.map((i) => vals(r.dh!)[i]), finiteDifference(fh, hv, ih))).toBeLessThan(1e-4);
    const iw = [0, 7, 13, V * H - 1];
    expect(maxAbsError(iw.map((i) => vals(dW)[i]), finiteDifference(fw, wv, iw))).toBeLessThan(1e-4);
  });

  it('a draft equal to the target has zero KL, zero gradient and matching argmax', () => {
    const p = problem(12, 6, 20, 4, 'float32', false);
    const dW = Tensor.zeros([20, 4]);
    const r = fusedLinearKl(p.h.t, p.w.t, p.h.t, p.w.t, Tensor.fromArray(p.weights, [6]), { backward: { dW, gradScale: 1 } });
    expect(r.argmaxMatch.toNumbers()).toEqual([1, 1, 1, 1, 1, 1]);
    // p == q exactly (same fp32 logits): each term p * (logp - logq) is exactly 0.
    expect(Array.from(vals(r.tokenLoss))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(maxAbsError(vals(dW), new Float32Array(80))).toBe(0);
  });

  it('names the op, shapes and dtypes when misused', () => {
    const p = problem(2, 3, 5, 2, 'float32', false);
    const w8 = Tensor.fromArray(p.weights, [3]);
    const ht = Tensor.zeros([3, 4]);
    expect(() => fusedLinearKl(p.h.t, p.w.t, Tensor.zeros([2, 4]), Tensor.zeros([5, 4]), w8)).toThrow(
      /fusedLinearKl: ht is float32\[2, 4\] on cpu; expected shape \[3, -1\]/,
    );
    expect(() => fusedLinearKl(p.h.t, p.w.t, ht, Tensor.zeros([6, 4]), w8)).toThrow(/fusedLinearKl: wt is float32\[6, 4\] on cpu; expected shape \[5, 4\]/);
    expect(() => fusedLinearKl(p.h.t, p.w.t, ht, Tensor.zeros([5, 4], 'bfloat16'), w8)).toThrow(/ht and wt must share a dtype/);
    expect(() => fusedLinearKl(p.h.t, p.w.t, ht, Tensor.zeros([5, 4]), w8, { budgetBytes: 0 })).toThrow(/budgetBytes must be positive/);
  });
});
