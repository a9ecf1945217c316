import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { add, axpy_, cast, fill_, full, max, maxLastDim, mul, scale, sum, sumLastDim } from '../src/runtime/ops/elementwise.js';
import { hasGpu } from './helpers/gpu.js';
import { maxAbsError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

const FLOATS = ['float32', 'bfloat16', 'float16'] as const;
// Sizes around the 16-byte pack boundaries and the grid caps, plus a large one.
const SIZES = [1, 7, 8, 9, 1000, 4099, 1 << 20, 3_000_017];

/** Index and values of the first bitwise difference between two host arrays, or null when equal. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const bits = (x: ArrayLike<number>) => (x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x);
  const [ua, ub] = [bits(a), bits(b)];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `index ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

const cpu = (x: ArrayLike<number>, shape: number[], dtype: DType): Tensor => Tensor.fromArray(x, shape, { dtype });

/** The same tensor on cuda:0 and a misaligned view of it (offset by one element: scalar paths). */
function onGpu(t: Tensor): Tensor {
  return t.to('cuda:0');
}
function misaligned(t: Tensor): { cpu: Tensor; gpu: Tensor } {
  const n = t.numel;
  const padded = Tensor.fromArray([0, ...Array.from(t.toArray() as ArrayLike<number>)], [n + 1, 1], { dtype: t.dtype });
  return { cpu: padded.rows(1, n + 1).reshape([n]), gpu: padded.to('cuda:0').rows(1, n + 1).reshape([n]) };
}

function same(gpu: Tensor, ref: Tensor): void {
  expect(gpu.device).toBe('cuda:0');
  expect(gpu.shape).toEqual(ref.shape);
  const [a, b] = [gpu.toArray(), ref.toArray()];
  if (a instanceof BigInt64Array) expect(firstDifference(gpu.toNumbers(), ref.toNumbers())).toBeNull();
  else expect(firstDifference(a, b as ArrayLike<number>)).toBeNull();
}

describe.skipIf(!hasGpu)('elementwise on CUDA vs the CPU twin', () => {
  const rng = new Rng(11);

  it('cast is bit-exact for every supported pair, aligned and not', () => {
    for (const n of SIZES.slice(0, 7)) {
      const vals = rng.normal(n, 100);
      for (const from of FLOATS) {
        const x = cpu(vals, [n], from);
        for (const to of FLOATS) same(cast(onGpu(x), to), cast(x, to));
        const m = misaligned(x);
        for (const to of FLOATS) same(cast(m.gpu, to), cast(m.cpu, to));
      }
      const ints = rng.int(n, -(2 ** 30), 2 ** 30);
      const i32 = cpu(ints, [n], 'int32');
      const i64 = cast(i32, 'int64');
      for (const x of [i32, i64]) {
        for (const to of ['float32', 'bfloat16', 'float16', 'int32', 'int64'] as const) same(cast(onGpu(x), to), cast(x, to));
      }
      const mask = cpu(Array.from(ints, (v) => v & 1), [n], 'bool');
      same(cast(onGpu(mask), 'bfloat16'), cast(mask, 'bfloat16'));
    }
  });

  it('fill writes the same bits as the CPU for every dtype', () => {
    for (const n of SIZES) {
      for (const [dtype, value] of [['float32', -1.25], ['bfloat16', 1 / 3], ['float16', 1e-5], ['int32', -7], ['int64', 2 ** 40], ['uint8', 200], ['bool', 1]] as const) {
        same(full([n], value, dtype, 'cuda:0'), full([n], value, dtype));
      }
    }
    const t = Tensor.zeros([1001], 'bfloat16', 'cuda:0');
    const view = t.rows(3, 1000); // offset 6 bytes: the scalar path
    fill_(view, 2);
    const host = t.toNumbers();
    expect(host.slice(0, 3)).toEqual([0, 0, 0]);
    expect(host.slice(3, 1000).every((v) => v === 2)).toBe(true);
    expect(host[1000]).toBe(0);
  });

  it('add / mul / scale are bit-exact (one fp32 op, one rounding, on both)', () => {
    for (const dtype of FLOATS) {
      for (const [m, n] of [[1, 1], [3, 7], [5, 8], [33, 4096], [129, 1000], [1024, 3000]]) {
        const a = cpu(rng.uniform(m * n), [m, n], dtype);
        const b = cpu(rng.uniform(m * n), [m, n], dtype);
        const row = cpu(rng.uniform(n), [n], dtype);
        const [ga, gb, grow] = [onGpu(a), onGpu(b), onGpu(row)];
        same(add(ga, gb), add(a, b));
        same(add(ga, grow), add(a, row));
        same(mul(ga, gb), mul(a, b));
        same(mul(ga, grow), mul(a, row));
        same(scale(ga, 0.3), scale(a, 0.3));
        // in place on the device
        add(ga, gb, ga);
        same(ga, add(a, b));
        const ma = misaligned(a.reshape([m * n]));
        const mb = misaligned(b.reshape([m * n]));
        same(add(ma.gpu, mb.gpu), add(ma.cpu, mb.cpu));
        same(scale(ma.gpu, -2), scale(ma.cpu, -2));
      }
    }
  });

  it('axpy_ matches within one fp32 rounding (CUDA fuses y + alpha*x into an FMA)', () => {
    for (const n of SIZES) {
      for (const [yt, xt] of [['float32', 'bfloat16'], ['float32', 'float32'], ['bfloat16', 'bfloat16'], ['float16', 'float32']] as const) {
        const y = cpu(rng.normal(n), [n], yt);
        const x = cpu(rng.normal(n), [n], xt);
        const gy = onGpu(y);
        axpy_(gy, onGpu(x), 0.37);
        axpy_(y, x, 0.37);
        // fp32 results differ by at most an ulp of |y| + |alpha x| (< 8 here): 2^-23 * 8; a half-type y
        // may then round to the neighbouring value: one ulp of the half type (2^-8 relative for bf16,
        // 2^-11 for f16) on values below 8.
        const tol = yt === 'float32' ? 8 * 2 ** -23 : yt === 'bfloat16' ? 8 * 2 ** -8 : 8 * 2 ** -11;
        expect(maxAbsError(gy.toArray() as Float32Array, y.toArray() as Float32Array)).toBeLessThanOrEqual(tol);
      }
    }
  });

  it('sum / max over the whole tensor: deterministic, and equal to the CPU within one float32 rounding', () => {
    for (const dtype of FLOATS) {
      for (const n of SIZES) {
        const x = cpu(rng.uniform(n, -1, 1.5), [n], dtype);
        const g = onGpu(x);
        const s = sum(g).item();
        const ref = sum(x).item();
        // both accumulate in fp64 (different orders, errors ~1e-16 relative); the float32 results
        // can then differ by one rounding step only.
        expect(Math.abs(s - ref)).toBeLessThanOrEqual(Math.abs(ref) * 2 ** -23 + 1e-30);
        for (let rep = 0; rep < 3; rep++) expect(sum(g).item()).toBe(s);
        expect(max(g).item()).toBe(max(x).item());
        const mx = misaligned(x);
        expect(max(mx.gpu).item()).toBe(max(mx.cpu).item());
      }
    }
    const withNaN = cpu([1, 2, NaN, 4, 5, 6, 7, 8, 9], [9], 'float32');
    expect(max(onGpu(withNaN)).item()).toBeNaN();
    expect(sum(Tensor.empty([0], 'float32', 'cuda:0')).item()).toBe(0);
  });

  it('sumLastDim / maxLastDim: warp rows and block rows, aligned and not', () => {
    for (const dtype of FLOATS) {
      for (const [rows, cols] of [[1, 1], [17, 7], [64, 128], [5, 1024], [9, 1025], [3, 16384], [2, 151_936], [4099, 64]]) {
        const x = cpu(rng.normal(rows * cols), [rows, cols], dtype);
        const g = onGpu(x);
        const s = sumLastDim(g);
        const ref = sumLastDim(x);
        expect(s.shape).toEqual([rows]);
        const sv = s.toArray() as Float32Array;
        const rv = ref.toArray() as Float32Array;
        // fp64 accumulation on both; the float32 results differ by at most one rounding step
        for (let r = 0; r < rows; r++) expect(Math.abs(sv[r] - rv[r])).toBeLessThanOrEqual(Math.abs(rv[r]) * 2 ** -23 + 1e-30);
        same(maxLastDim(g), maxLastDim(x));
      }
    }
  });
});
