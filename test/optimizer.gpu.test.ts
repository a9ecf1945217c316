import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { tidy } from '../src/runtime/scope.js';
import { adamwStep, clipCoefficient, globalGradNorm } from '../src/runtime/ops/optimizer.js';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';

const GPU = 'cuda:0';
const U = 2 ** -24;

function vals(t: Tensor): Float32Array {
  return t.toArray() as Float32Array;
}

function expectWithin(got: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number, label: string): void {
  expect(got.length, label).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= tol(i))) expect.fail(`${label}: element ${i} is ${got[i]} on CUDA, ${ref[i]} on the CPU (tolerance ${tol(i)})`);
  }
}

/** A float32 [n] tensor on `device` whose data starts 4 bytes into its storage when `misaligned`. */
function place(values: Float32Array, dtype: DType, device: 'cpu' | typeof GPU, misaligned: boolean): Tensor {
  if (!misaligned) return Tensor.fromArray(values, [values.length], { dtype, device });
  const padded = new Float32Array(values.length + 1);
  padded.set(values, 1);
  return Tensor.fromArray(padded, [values.length + 1], { dtype, device }).rows(1, values.length + 1);
}

interface Case {
  n: number;
  gradDType: DType;
  copyDType?: DType;
  clip: boolean;
  /** Offsets every tensor by one element: the kernel's unvectorised path. */
  misaligned?: boolean;
}

/*
 * CUDA vs the CPU twin: both run the same fp32 update with the same host-computed scalars; nvcc
 * contracts a*b + c into FMAs and gcc does not, so each step may differ by ~2 ulps in m, v and the
 * update. Over S steps: p within S * (4 * 2^-24 |p| + 16 * 2^-24 lr), m within S * 4 * 2^-24 * (|m| +
 * max|g|), v within S * 4 * 2^-24 * (|v| + max g^2). The 16-bit copy must be exactly the rounding of
 * the kernel's own fp32 p (checked against the host rounding of it).
 */
describe.skipIf(!hasGpu)('adamwStep on CUDA vs the CPU twin', () => {
  const cases: Case[] = [
    { n: 1, gradDType: 'float32', clip: false },
    { n: 3, gradDType: 'bfloat16', copyDType: 'bfloat16', clip: true },
    { n: 4, gradDType: 'float32', copyDType: 'bfloat16', clip: false },
    { n: 1001, gradDType: 'bfloat16', copyDType: 'bfloat16', clip: true },
    { n: 1001, gradDType: 'float16', copyDType: 'float16', clip: true },
    { n: 1001, gradDType: 'bfloat16', copyDType: 'bfloat16', clip: true, misaligned: true },
    { n: (1 << 20) + 3, gradDType: 'bfloat16', copyDType: 'bfloat16', clip: true },
    { n: (1 << 20) + 3, gradDType: 'float32', clip: false, misaligned: true },
  ];
  const lr = 1e-2;
  const steps = 3;
  for (const c of cases) {
    const name = `n=${c.n} grad ${c.gradDType} copy ${c.copyDType ?? 'none'}${c.clip ? ' clipped' : ''}${c.misaligned ? ' misaligned' : ''}`;
    it(name, () =>
      tidy(() => {
        const rng = new Rng(c.n + (c.clip ? 1 : 0));
        const p0 = rng.uniform(c.n, -2, 2);
        const make = (device: 'cpu' | typeof GPU) => ({
          p: place(p0, 'float32', device, !!c.misaligned),
          m: place(new Float32Array(c.n), 'float32', device, !!c.misaligned),
          v: place(new Float32Array(c.n), 'float32', device, !!c.misaligned),
          copy: c.copyDType ? place(new Float32Array(c.n), c.copyDType, device, !!c.misaligned) : undefined,
        });
        const cpu = make('cpu'), gpu = make(GPU);
        let gmax = 0;
        for (let step = 1; step <= steps; step++) {
          const gv = rng.uniform(c.n, -1, 1);
          const gc = place(gv, c.gradDType, 'cpu', !!c.misaligned);
          const gg = place(gv, c.gradDType, GPU, !!c.misaligned);
          for (const x of vals(gc)) gmax = Math.max(gmax, Math.abs(x));
          let coefG: Tensor | undefined, coefC: Tensor | undefined;
          if (c.clip) {
            // Max norm below the norm (about sqrt(n / 3)), so the coefficient bites.
            coefG = clipCoefficient(globalGradNorm([gg]), 0.1 * Math.sqrt(c.n / 3));
            coefC = Tensor.fromArray(vals(coefG), []); // the CPU scales by the GPU's exact coefficient
            expect(coefG.item()).toBeLessThan(1);
          }
          const hyper = { lr, step, weightDecay: 0.01 };
          adamwStep(cpu.p, gc, cpu.m, cpu.v, { ...hyper, clipCoef: coefC, modelCopy: cpu.copy });
          adamwStep(gpu.p, gg, gpu.m, gpu.v, { ...hyper, clipCoef: coefG, modelCopy: gpu.copy });
        }
        const pc = vals(cpu.p), mc = vals(cpu.m), vc = vals(cpu.v);
        const pg = vals(gpu.p);
        expectWithin(pg, pc, (i) => steps * (4 * U * Math.abs(pc[i]) + 16 * U * lr), `${name} param`);
        expectWithin(vals(gpu.m), mc, (i) => steps * 4 * U * (Math.abs(mc[i]) + gmax), `${name} expAvg`);
        expectWithin(vals(gpu.v), vc, (i) => steps * 4 * U * (Math.abs(vc[i]) + gmax * gmax), `${name} expAvgSq`);
        if (gpu.copy) {
          const expected = vals(Tensor.fromArray(pg, [c.n], { dtype: gpu.copy.dtype }));
          expect(vals(gpu.copy).every((x, i) => x === expected[i]), `${name} modelCopy is the rounding of p`).toBe(true);
        }
      }));
  }
});

describe.skipIf(!hasGpu)('grad norm and clip coefficient on CUDA vs the CPU twin', () => {
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: tensors of 1, 1001 and 2^22 + 5 elements`, () =>
      tidy(() => {
        const rng = new Rng(21);
        const host = [rng.uniform(1), rng.uniform(1001), rng.uniform((1 << 22) + 5)];
        const cpu = host.map((a) => Tensor.fromArray(a, [a.length], { dtype }));
        const gpu = cpu.map((t) => t.to(GPU));
        const nc = globalGradNorm(cpu), ng = globalGradNorm(gpu);
        // Both sum in fp64 (in different orders) and round the sum and the sqrt to fp32: <= 2 ulps.
        expect(Math.abs(ng.item() - nc.item())).toBeLessThanOrEqual(4 * U * nc.item());
        // The coefficient is one fp32 add and divide of the same norm on both sides: identical.
        const normOnCpu = Tensor.fromArray(vals(ng), []);
        for (const maxNorm of [0.5, 1e9]) {
          expect(clipCoefficient(ng, maxNorm).item()).toBe(clipCoefficient(normOnCpu, maxNorm).item());
        }
      }));
  }

  it('a NaN gradient gives a NaN norm and coefficient on the device', () =>
    tidy(() => {
      const g = Tensor.fromArray([1, NaN, 2], [3]).to(GPU);
      const norm = globalGradNorm([g]);
      expect(Number.isNaN(norm.item())).toBe(true);
      expect(Number.isNaN(clipCoefficient(norm, 1).item())).toBe(true);
    }));
});
