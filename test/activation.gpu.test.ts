import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import { swiglu, swigluBackward, swigluFused, swigluFusedBackward } from '../src/runtime/ops/activation.js';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';

const f32 = (t: Tensor): Float32Array => t.toArray() as Float32Array;

/**
 * Index and values of the first bitwise difference between two host arrays, or null when equal. Two
 * NaNs count as equal: their payloads are not specified (x86 keeps an input's, CUDA makes its own).
 */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x);
  const [ua, ub] = [bits(a), bits(b)];
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return `index ${i}: ${a[i]} vs ${b[i]}`;
  }
  return null;
}

// CUDA and the CPU twin run the same steps (native/kernels/activation_math.h): sigmoid from an exp
// built of correctly rounded IEEE operations (no library expf: CUDA's and glibc's differ in the last
// bits), products and one explicit fma (nothing left for nvcc or g++ to contract), and a
// round-to-nearest-even conversion to the storage type, so the outputs are equal bit for bit in every
// dtype; any difference is a bug. (An earlier version used expf and compared within one output step,
// 2^-8 / 2^-11 relative, which is half a step near the bottom of a binade; and near the root of
// silu'(g) = s*(1 + g*(1-s)), g = -1.2785, the cancellation turns the last-bit differences of expf
// into several float16 steps of dgate, so no honest "one step" tolerance holds there.)
describe.skipIf(!hasGpu)('swiglu on CUDA vs the CPU twin', () => {
  const rng = new Rng(19);
  // inter multiples of the 16-byte pack (vector path) and not (1-element path); Qwen3-8B's 12288.
  const SHAPES = [[1, 1], [3, 7], [5, 8], [17, 100], [64, 1024], [33, 12288], [1000, 3000], [4097, 96]];

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: separate and fused, forward and backward, bit for bit`, () => {
      for (const [rows, inter] of SHAPES) {
        const n = rows * inter;
        const gate = Tensor.fromArray(rng.normal(n, 3), [rows, inter], { dtype });
        const up = Tensor.fromArray(rng.normal(n), [rows, inter], { dtype });
        const dout = Tensor.fromArray(rng.normal(n), [rows, inter], { dtype });
        const fused = Tensor.fromArray(rng.normal(2 * n, 3), [rows, 2 * inter], { dtype });
        const [gg, gu, gd, gf] = [gate, up, dout, fused].map((t) => t.to('cuda:0'));
        const tag = `${rows}x${inter}`;
        const check = (what: string, a: Tensor, b: Tensor): void => {
          expect(a.device, tag).toBe('cuda:0');
          expect(a.shape, tag).toEqual(b.shape);
          expect(firstDifference(f32(a), f32(b)), `${tag} ${what}`).toBeNull();
        };
        check('out', swiglu(gg, gu), swiglu(gate, up));
        check('fused out', swigluFused(gf), swigluFused(fused));
        const g = swigluBackward(gd, gg, gu);
        const r = swigluBackward(dout, gate, up);
        check('dgate', g.dgate, r.dgate);
        check('dup', g.dup, r.dup);
        check('fused [dgate | dup]', swigluFusedBackward(gd, gf), swigluFusedBackward(dout, fused));
      }
    });
  }

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: the pairs layout, bit for bit (vector and one-element paths)`, () => {
      for (const [rows, inter] of SHAPES) {
        const pairs = Tensor.fromArray(rng.normal(2 * rows * inter, 3), [rows, 2 * inter], { dtype });
        const got = swigluFused(pairs.to('cuda:0'), 'pairs');
        const want = swigluFused(pairs, 'pairs');
        expect(got.device).toBe('cuda:0');
        expect(got.shape).toEqual([rows, inter]);
        expect(firstDifference(f32(got), f32(want)), `${rows}x${inter}`).toBeNull();
      }
    });
  }

  it('every bfloat16 gate, both signs of up: bit for bit (the exp over its whole range, inf, NaN)', () => {
    // all 65536 bfloat16 patterns, each with up = 1.5 and up = -1.5; dout = 0.75
    const m = 65536 * 2;
    const bits = new Uint32Array(m);
    for (let i = 0; i < 65536; i++) bits[2 * i] = bits[2 * i + 1] = i << 16;
    const gate = new Float32Array(bits.buffer);
    const up = Float32Array.from({ length: m }, (_, i) => (i % 2 ? -1.5 : 1.5));
    const dout = new Float32Array(m).fill(0.75);
    const [tg, tu, td] = [gate, up, dout].map((v) => Tensor.fromArray(v, [m], { dtype: 'bfloat16' }));
    const [cg, cu, cd] = [tg, tu, td].map((t) => t.to('cuda:0'));
    expect(firstDifference(f32(swiglu(cg, cu)), f32(swiglu(tg, tu)))).toBeNull();
    const g = swigluBackward(cd, cg, cu);
    const r = swigluBackward(td, tg, tu);
    expect(firstDifference(f32(g.dgate), f32(r.dgate))).toBeNull();
    expect(firstDifference(f32(g.dup), f32(r.dup))).toBeNull();
  });

  it('misaligned views take the 1-element path', () => {
    const [rows, inter] = [9, 256];
    const base = Tensor.fromArray(rng.normal(rows * inter * 2 + 1), [rows * inter * 2 + 1], { dtype: 'bfloat16' });
    const cpuView = base.rows(1, rows * inter * 2 + 1).reshape([rows, 2 * inter]);
    const gpuView = base.to('cuda:0').rows(1, rows * inter * 2 + 1).reshape([rows, 2 * inter]);
    expect(firstDifference(f32(swigluFused(gpuView)), f32(swigluFused(cpuView)))).toBeNull();
  });
});
