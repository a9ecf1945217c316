import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { swiglu, swigluBackward, swigluFused, swigluFusedBackward } from '../src/runtime/ops/activation.js';
import { hasGpu } from './helpers/gpu.js';
import { relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;

// CUDA's expf is within 2 ulps, glibc's within 1: the fp32 results differ by a few ulps (~1e-6
// relative), so float32 outputs agree to ~1e-6 and half-type outputs to one rounding step of their
// type when the fp32 values straddle a rounding boundary: an ulp is at most 2^-7 of the value for
// bf16 (8 significant bits) and 2^-10 for f16 (11 bits).
const REL = { float32: 2e-6, bfloat16: 2 ** -7, float16: 2 ** -10 };

function within(a: Float32Array, b: Float32Array, rel: number): boolean {
  for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i] - b[i]) <= rel * Math.abs(b[i]) + 1e-30)) return false;
  return true;
}

describe.skipIf(!hasGpu)('swiglu on CUDA vs the CPU twin', () => {
  const rng = new Rng(19);
  // inter multiples of the 16-byte pack (vector path) and not (1-element path); Qwen3-8B's 12288.
  const SHAPES = [[1, 1], [3, 7], [5, 8], [17, 100], [64, 1024], [33, 12288], [1000, 3000], [4097, 96]];

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: separate and fused, forward and backward`, () => {
      for (const [rows, inter] of SHAPES) {
        const n = rows * inter;
        const gate = Tensor.fromArray(rng.normal(n, 3), [rows, inter], { dtype });
        const up = Tensor.fromArray(rng.normal(n), [rows, inter], { dtype });
        const dout = Tensor.fromArray(rng.normal(n), [rows, inter], { dtype });
        const fused = Tensor.fromArray(rng.normal(2 * n, 3), [rows, 2 * inter], { dtype });
        const [gg, gu, gd, gf] = [gate, up, dout, fused].map((t) => t.to('cuda:0'));
        const tag = `${rows}x${inter}`;
        const check = (a: Tensor, b: Tensor): void => {
          expect(a.shape, tag).toEqual(b.shape);
          if (dtype === 'float32') expect(relError(f32(a), f32(b)), tag).toBeLessThan(REL.float32);
          else expect(within(f32(a), f32(b), REL[dtype]), tag).toBe(true);
        };
        check(swiglu(gg, gu), swiglu(gate, up));
        check(swigluFused(gf), swigluFused(fused));
        const g = swigluBackward(gd, gg, gu);
        const r = swigluBackward(dout, gate, up);
        check(g.dgate, r.dgate);
        check(g.dup, r.dup);
        check(swigluFusedBackward(gd, gf), swigluFusedBackward(dout, fused));
      }
    });
  }

  it('misaligned views take the 1-element path', () => {
    const [rows, inter] = [9, 256];
    const base = Tensor.fromArray(rng.normal(rows * inter * 2 + 1), [rows * inter * 2 + 1], { dtype: 'bfloat16' });
    const cpuView = base.rows(1, rows * inter * 2 + 1).reshape([rows, 2 * inter]);
    const gpuView = base.to('cuda:0').rows(1, rows * inter * 2 + 1).reshape([rows, 2 * inter]);
    expect(within(f32(swigluFused(gpuView)), f32(swigluFused(cpuView)), REL.bfloat16)).toBe(true);
  });
});
