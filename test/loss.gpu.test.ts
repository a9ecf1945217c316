import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { native } from '../src/runtime/binding.js';
import { memoryStats, resetPeakMemory, synchronize } from '../src/runtime/cuda.js';
import { tidy } from '../src/runtime/scope.js';
import {
  fusedLinearCrossEntropy,
  fusedLinearKl,
  logSoftmax,
  logSoftmaxBackward,
  softmax,
  softmaxBackward,
} from '../src/runtime/ops/loss.js';
import { relError } from './helpers/compare.js';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';

const GPU = 'cuda:0';

function vals(t: Tensor): Float32Array {
  return t.toArray() as Float32Array;
}

function input(rng: Rng, shape: number[], dtype: DType, scale = 1): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  return Tensor.fromArray(rng.uniform(n, -scale, scale), shape, { dtype });
}

/** Every |got - ref| <= rel * |ref| + abs (ref: the CPU twin). */
function expectElementwise(got: ArrayLike<number>, ref: ArrayLike<number>, rel: number, abs: number, label: string): void {
  expect(got.length, label).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= rel * Math.abs(ref[i]) + abs)) expect.fail(`${label}: element ${i} is ${got[i]} on CUDA, ${ref[i]} on the CPU`);
  }
}

describe.skipIf(!hasGpu)('softmax on CUDA vs the CPU twin', () => {
  const sizes: [number, number][] = [
    [3, 1],
    [37, 7],
    [5, 1007],
    [9, 32000],
    [2, 256000],
  ];
  for (const [rows, cols] of sizes) {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      it(`forward and backward ${dtype} [${rows}, ${cols}]`, () =>
        tidy(() => {
          const rng = new Rng(rows * 131 + cols);
          const x = input(rng, [rows, cols], dtype, 8);
          const dy = input(rng, [rows, cols], dtype);
          const xg = x.to(GPU), dyg = dy.to(GPU);
          // CUDA: fp32 log-sum-exp (tree order) vs fp64 on the CPU. With |x - lse| <= ~30 the
          // exponent differs by ~30 * 2^-23 at worst: 1e-5 relative on softmax, 1e-5 absolute on
          // log-softmax. A bf16 output may round to the neighbouring value: 2^-7 relative.
          const bf = dtype === 'bfloat16';
          for (const log of [false, true]) {
            const f = log ? logSoftmax : softmax;
            const yc = f(x), yg = f(xg);
            const label = `${log ? 'logSoftmax' : 'softmax'} ${dtype} [${rows}, ${cols}]`;
            if (bf) expectElementwise(vals(yg), vals(yc), 2 ** -7, log ? 1e-5 : 1e-30, label);
            else expectElementwise(vals(yg), vals(yc), log ? 1e-6 : 1e-5, log ? 1e-5 : 1e-30, label);
            // Backward from the same y (the CPU's, copied): fp32 row sum of cols terms on CUDA vs fp64,
            // ~1e-6 relative on the norm in f32; bf16 output rounding (2^-9 per element) dominates
            // in bf16: 1e-2 on the norm.
            const dxc = (log ? logSoftmaxBackward : softmaxBackward)(dy, yc);
            const dxg = (log ? logSoftmaxBackward : softmaxBackward)(dyg, yc.to(GPU));
            expect(relError(vals(dxg), vals(dxc)), `${label} backward`).toBeLessThan(bf ? 1e-2 : 1e-5);
          }
        }));
    }
  }

  it('dx written over dy gives the same values', () =>
    tidy(() => {
      const rng = new Rng(3);
      const x = input(rng, [4, 3001], 'float32').to(GPU);
      const dy = input(rng, [4, 3001], 'float32').to(GPU);
      const y = softmax(x);
      const dx = softmaxBackward(dy, y);
      native().softmaxBackward(y.storage, 0, dy.storage, dy.storage, 0, 4, 3001, false);
      expect(Array.from(vals(dy))).toEqual(Array.from(vals(dx)));
    }));
});

interface Case {
  T: number;
  V: number;
  H: number;
  dtype: DType;
}

function makeCase(c: Case, seed: number) {
  const rng = new Rng(seed);
  const h = input(rng, [c.T, c.H], c.dtype, 2);
  const w = input(rng, [c.V, c.H], c.dtype, 0.5);
  const wts = rng.uniform(c.T, 0.5, 1.5);
  const tg = rng.int(c.T, 0, c.V);
  for (let t = 1; t < c.T; t += 4) {
    wts[t] = 0; // ignored tokens, with a target that must not be read
    tg[t] = -100;
  }
  const ht = input(rng, [c.T, 48], c.dtype, 2);
  const wt = input(rng, [c.V, 48], c.dtype, 0.5);
  const dW0 = rng.uniform(c.V * c.H, -0.01, 0.01);
  return {
    h, w, ht, wt, dW0,
    weights: Tensor.fromArray(wts, [c.T]),
    targets: Tensor.fromArray(tg, [c.T]),
  };
}

/*
 * Tolerances of the fused losses, CUDA vs the CPU twin:
 * - logits: both fp32-accumulated GEMMs of H terms, in different orders: ~H * 2^-24 relative;
 * - per-token loss: CUDA sums exp in fp32 over V (tree order), the CPU in fp64; losses are O(log V)
 *   ~ 10, so 1e-4 relative + 1e-4 absolute covers both, and a wrong row or target is off by O(1);
 * - gradients: f32 dz differ by ~1e-6; cuBLASLt vs the CPU GEMM by ~1e-6: 1e-4 on the norm. With
 *   16-bit h, dz is rounded to bf16 on both sides and a few elements may round differently
 *   (2^-8 each): 1e-2 on the norm.
 * - argmax: the top two logits of V random values differ by far more than the ~1e-6 rounding, so
 *   the match flags must agree exactly.
 */
describe.skipIf(!hasGpu)('fused losses on CUDA vs the CPU twin', () => {
  const cases: Case[] = [
    { T: 48, V: 32000, H: 64, dtype: 'bfloat16' },
    { T: 48, V: 32000, H: 64, dtype: 'float32' },
    { T: 37, V: 1007, H: 96, dtype: 'bfloat16' },
    { T: 37, V: 1007, H: 96, dtype: 'float32' },
  ];
  for (const c of cases) {
    const name = `T=${c.T} V=${c.V} H=${c.H} ${c.dtype}`;
    for (const kl of [false, true]) {
      it(`${kl ? 'forward KL' : 'cross-entropy'} ${name} at several chunk sizes`, () =>
        tidy(() => {
          const d = makeCase(c, c.T + c.V + (kl ? 1 : 0));
          const run = (device: 'cpu' | typeof GPU, chunkRows?: number) => {
            const on = (t: Tensor) => (device === 'cpu' ? t : t.to(GPU));
            const dW = Tensor.fromArray(d.dW0, [c.V, c.H], { device });
            const opts = { chunkRows, backward: { dW, gradScale: 0.25 } };
            const r = kl
              ? fusedLinearKl(on(d.h), on(d.w), on(d.ht), on(d.wt), on(d.weights), opts)
              : fusedLinearCrossEntropy(on(d.h), on(d.w), on(d.targets), on(d.weights), opts);
            return {
              lossSum: r.lossSum.item(),
              tokenLoss: vals(r.tokenLoss),
              dh: vals(r.dh!),
              dW: vals(dW),
              match: 'argmaxMatch' in r ? (r.argmaxMatch as Tensor).toNumbers() : [],
            };
          };
          const ref = run('cpu');
          const bf = c.dtype !== 'float32';
          for (const chunkRows of [undefined, 1, 7, c.T]) {
            const g = run(GPU, chunkRows);
            const label = `${name} chunkRows=${chunkRows ?? 'budget'}`;
            expectElementwise(g.tokenLoss, ref.tokenLoss, 1e-4, 1e-4, `${label} tokenLoss`);
            expect(Math.abs(g.lossSum - ref.lossSum), `${label} lossSum`).toBeLessThanOrEqual(1e-4 * Math.abs(ref.lossSum));
            expect(relError(g.dh, ref.dh), `${label} dh`).toBeLessThan(bf ? 1e-2 : 1e-4);
            // dW started at dW0: compare the accumulated increments, not dW0 itself.
            const inc = (a: Float32Array) => Float64Array.from(a, (v, i) => v - d.dW0[i]);
            expect(relError(inc(g.dW), inc(ref.dW)), `${label} dW`).toBeLessThan(bf ? 1e-2 : 1e-4);
            expect(g.match, `${label} argmaxMatch`).toEqual(ref.match);
            for (let t = 1; t < c.T; t += 4) {
              if (!kl) expect(g.tokenLoss[t], `${label} ignored token ${t}`).toBe(0);
              expect(g.dh.subarray(t * c.H, (t + 1) * c.H).every((v) => v === 0), `${label} ignored token ${t} dh`).toBe(true);
            }
          }
        }));
    }
  }

  it('mixed dtypes: bf16 draft, f32 target side, bf16 dh', () =>
    tidy(() => {
      const c: Case = { T: 21, V: 3001, H: 40, dtype: 'bfloat16' };
      const d = makeCase(c, 5);
      const ht = Tensor.fromArray(vals(d.ht), [c.T, 48]);
      const wt = Tensor.fromArray(vals(d.wt), [c.V, 48]);
      const run = (device: 'cpu' | typeof GPU) => {
        const on = (t: Tensor) => (device === 'cpu' ? t : t.to(GPU));
        const dW = Tensor.zeros([c.V, c.H], 'float32', device);
        const r = fusedLinearKl(on(d.h), on(d.w), on(ht), on(wt), on(d.weights), {
          chunkRows: 4,
          backward: { dW, gradScale: 1, dhDType: 'bfloat16' },
        });
        return { tokenLoss: vals(r.tokenLoss), dh: vals(r.dh!), dW: vals(dW) };
      };
      const ref = run('cpu'), g = run(GPU);
      expectElementwise(g.tokenLoss, ref.tokenLoss, 1e-4, 1e-4, 'tokenLoss');
      expect(relError(g.dh, ref.dh)).toBeLessThan(1e-2); // bf16 dz and bf16 dh rounding
      expect(relError(g.dW, ref.dW)).toBeLessThan(1e-2);
    }));

  it('a weighted token with a target outside [0, V) poisons the loss with NaN (no host sync to report it)', () =>
    tidy(() => {
      const h = Tensor.fromArray(new Rng(1).uniform(3 * 8), [3, 8]).to(GPU);
      const w = Tensor.fromArray(new Rng(2).uniform(10 * 8), [10, 8]).to(GPU);
      const targets = Tensor.fromArray([1, 10, 2], [3], { dtype: 'int32' }).to(GPU);
      const weights = Tensor.fromArray([1, 1, 1], [3]).to(GPU);
      const r = fusedLinearCrossEntropy(h, w, targets, weights);
      const tl = vals(r.tokenLoss);
      expect(Number.isNaN(tl[1])).toBe(true);
      expect(Number.isFinite(tl[0]) && Number.isFinite(tl[2])).toBe(true);
      expect(Number.isNaN(r.lossSum.item())).toBe(true);
    }));

  it('never holds the whole [T, V] fp32 logits: peak memory stays near the budget', () =>
    tidy(() => {
      const T = 2048, V = 32000, H = 64;
      const rng = new Rng(11);
      const h = input(rng, [T, H], 'bfloat16').to(GPU);
      const w = input(rng, [V, H], 'bfloat16', 0.5).to(GPU);
      const targets = Tensor.fromArray(rng.int(T, 0, V), [T]).to(GPU);
      const weights = Tensor.fromArray(rng.uniform(T, 0.5, 1), [T]).to(GPU);
      const dW = Tensor.zeros([V, H], 'float32', GPU);
      const budget = 16 * 2 ** 20;
      // Warm-up: the GEMM workspace (32 MiB per stream) and plans are created once.
      fusedLinearCrossEntropy(h, w, targets, weights, { budgetBytes: budget, backward: { dW, gradScale: 1 } });
      synchronize(GPU);
      const before = memoryStats(GPU).bytesInUse;
      resetPeakMemory(GPU);
      fusedLinearCrossEntropy(h, w, targets, weights, { budgetBytes: budget, backward: { dW, gradScale: 1 } });
      synchronize(GPU);
      const extra = memoryStats(GPU).peakBytesInUse - before;
      // Outputs (lossSum, tokenLoss, dh f32: ~0.5 MiB) + the scratch (<= budget, blocks rounded up
      // by at most 1/8) + small GEMM epilogue buffers: well below 2 x budget, and far below the
      // 262 MB that whole fp32 logits would take.
      expect(extra).toBeLessThan(2 * budget);
    }));
});
