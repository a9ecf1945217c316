import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Tensor } from '../src/runtime/tensor.js';
import { rotary, rotaryBackward } from '../src/runtime/ops/rotary.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { Rng } from './helpers/random.js';

const dev = 'cuda:0' as const;

/** Index and values of the first bitwise difference between two host arrays, or null when equal. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x);
  const [ua, ub] = [bits(a), bits(b)];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

// CUDA and the CPU twin run the same steps (native/kernels/rotary_math.h): the fp32 angle as one
// product, cos/sin from an integer argument reduction and fp64 polynomials rounded once to fp32 (no
// library sincosf: CUDA's and glibc's differ in the last bit), and x1 c - x2 s as one rounded
// product plus an explicit fma (nothing left for nvcc to contract). Every step is one correctly
// rounded IEEE operation, so the outputs are equal bit for bit in every dtype; any difference is a bug.
// (An earlier version compared within "one output ulp" of 2^-8 / 2^-11 relative, which is half an
// ulp near the bottom of a binade, so the 1-ulp flips that its differing sin/cos produced failed it.)
describe.skipIf(!hasGpu)('rotary (CUDA vs CPU twin)', () => {
  const rng = new Rng(99);
  const configs = [
    { name: 'llama3 hd 128', headDim: 128, cfg: { theta: 500000, headDim: 128, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } } },
    { name: 'default hd 64', headDim: 64, cfg: { theta: 10000, headDim: 64 } },
    { name: 'yarn hd 96', headDim: 96, cfg: { theta: 1e6, headDim: 96, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 } } },
    { name: 'partial rotary 0.25 of hd 128', headDim: 128, cfg: { theta: 1e7, headDim: 128, partialRotaryFactor: 0.25 } },
  ];

  for (const { name, headDim, cfg } of configs) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      for (const [T, H] of [[1, 32], [7, 8], [333, 5]]) {
        it(`${name}, ${dtype}, T=${T}, heads=${H}: forward, in place and backward`, () => {
          const { invFreq, attentionScaling } = ropeInvFreq(cfg);
          const x = Tensor.fromArray(rng.normal(T * H * headDim), [T, H, headDim], { dtype });
          const pos = Tensor.fromArray(rng.int(T, 0, 131072), [T]);
          const inv = Tensor.fromArray(invFreq, [invFreq.length]);
          const opts = { attentionScaling };
          const cpu = rotary(x, pos, inv, opts).toArray() as Float32Array;
          const xg = x.to(dev);
          const posg = pos.to(dev);
          const invg = inv.to(dev);
          const gpu = rotary(xg, posg, invg, opts);
          expect(gpu.device).toBe(dev);
          expect(firstDifference(gpu.toArray() as Float32Array, cpu)).toBeNull();
          // in place gives the out-of-place result bit for bit
          rotary(xg, posg, invg, { ...opts, inPlace: true });
          expect(Array.from(xg.toArray() as Float32Array)).toEqual(Array.from(gpu.toArray() as Float32Array));
          const dcpu = rotaryBackward(x, pos, inv, opts).toArray() as Float32Array;
          const dgpu = rotaryBackward(x.to(dev), posg, invg, opts).toArray() as Float32Array;
          expect(firstDifference(dgpu, dcpu)).toBeNull();
        });
      }
    }
  }

  it('cos and sin of any finite angle, equal bit for bit (argument reduction across all exponents)', () => {
    // x = (1, 0) per pair makes the outputs exactly (cos a, sin a); angles up to ~2e38 (still finite:
    // NaN bits are not compared) and negative positions exercise every window of the 2/pi table.
    const inv = Float32Array.from([1, 0.5, 3.0e-3, 1.7, 1e3, 12345.678, 1e7, 3.3e12, 7e20, 1e25, 1.5e28, 1e29, 2 ** -20, 1e-30, Math.PI / 2, Math.PI]);
    const half = inv.length;
    const posArr = Int32Array.from([0, 1, -1, 2, 3, 7, 100, 355, 710, 8191, 65536, 102943, 131071, 2 ** 24 + 1, 2 ** 31 - 1, -(2 ** 31)]);
    const T = posArr.length;
    const x = new Float32Array(T * 2 * half);
    for (let t = 0; t < T; t++) x.fill(1, t * 2 * half, t * 2 * half + half);
    const xt = Tensor.fromArray(x, [T, 1, 2 * half]);
    const pos = Tensor.fromArray(posArr, [T]);
    const invT = Tensor.fromArray(inv, [half]);
    for (const inverse of [false, true]) {
      const op = inverse ? rotaryBackward : rotary;
      const cpu = op(xt, pos, invT).toArray() as Float32Array;
      const gpu = op(xt.to(dev), pos.to(dev), invT.to(dev)).toArray() as Float32Array;
      expect(firstDifference(gpu, cpu)).toBeNull();
    }
  });

  it('refuses tensors on different devices', () => {
    const x = Tensor.fromArray(rng.normal(2 * 2 * 8), [2, 2, 8], { device: dev });
    const pos = Tensor.fromArray(Int32Array.from([0, 1]), [2]);
    const inv = Tensor.fromArray(new Float32Array([1, 0.1, 0.01, 0.001]), [4], { device: dev });
    expect(() => rotary(x, pos, inv)).toThrow(/rotary: tensors on different devices: x on cuda:0, positions on cpu/);
  });
});
