import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Tensor } from '../src/runtime/tensor.js';
import { rotary, rotaryBackward } from '../src/runtime/ops/rotary.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { Rng } from './helpers/random.js';

const dev = 'cuda:0' as const;

/** max over elements of |a - b| - rel |b| */
function excess(a: ArrayLike<number>, b: ArrayLike<number>, rel: number): number {
  let worst = -Infinity;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e - rel * Math.abs(b[i]));
  }
  return worst;
}

// CUDA and the CPU twin compute the same fp32 angle (one product); their cos/sin (sincosf vs libm)
// and the final a*c - b*s (nvcc may fuse into an FMA) differ by a few ulp: ~1e-6 of |x| <= ~5, so
// 2e-5 absolute. In bf16/f16 both round the fp32 result once; results a few ulp apart can round to
// neighbouring values, one output ulp: 2^-8 (bf16) / 2^-11 (f16) relative.
const REL = { float32: 0, bfloat16: 2 ** -8, float16: 2 ** -11 } as const;

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
          expect(excess(gpu.toArray() as Float32Array, cpu, REL[dtype])).toBeLessThan(2e-5);
          // in place gives the out-of-place result bit for bit
          rotary(xg, posg, invg, { ...opts, inPlace: true });
          expect(Array.from(xg.toArray() as Float32Array)).toEqual(Array.from(gpu.toArray() as Float32Array));
          const dcpu = rotaryBackward(x, pos, inv, opts).toArray() as Float32Array;
          const dgpu = rotaryBackward(x.to(dev), posg, invg, opts).toArray() as Float32Array;
          expect(excess(dgpu, dcpu, REL[dtype])).toBeLessThan(2e-5);
        });
      }
    }
  }

  it('refuses tensors on different devices', () => {
    const x = Tensor.fromArray(rng.normal(2 * 2 * 8), [2, 2, 8], { device: dev });
    const pos = Tensor.fromArray(Int32Array.from([0, 1]), [2]);
    const inv = Tensor.fromArray(new Float32Array([1, 0.1, 0.01, 0.001]), [4], { device: dev });
    expect(() => rotary(x, pos, inv)).toThrow(/rotary: tensors on different devices: x on cuda:0, positions on cpu/);
  });
});
