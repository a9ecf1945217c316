import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Tensor } from '../src/runtime/tensor.js';
import { DTYPE_CODE, type DType } from '../src/runtime/dtype.js';
import { native } from '../src/runtime/binding.js';
import { CudaGraph, synchronize } from '../src/runtime/cuda.js';
import { fusedLinear, type FusedLinearOptions } from '../src/runtime/ops/fused_linear.js';
import { rmsnorm } from '../src/runtime/ops/norm.js';
import { linear } from '../src/runtime/ops/matmul.js';
import { swigluFused } from '../src/runtime/ops/activation.js';
import { add } from '../src/runtime/ops/elementwise.js';
import { worstError } from './helpers/ref_matmul.js';
import { fusedLinearReference, type RefCase } from './helpers/ref_fused_linear.js';
import { firstByteDifference } from './helpers/compare.js';
import { Rng } from './helpers/random.js';
import { toPairsRows } from './helpers/gate_up_pairs.js';

const dev = 'cuda:0' as const;
const U = 2 ** -24; // fp32 unit roundoff
// The bit-for-bit comparison with the unfused CUDA ops assumes their linear takes the few-rows GEMV
// kernel (whose summation order the fused kernel shares); AERIE_NO_GEMV sends it to cuBLASLt.
const exactVsUnfused = !(process.env.AERIE_NO_GEMV && process.env.AERIE_NO_GEMV !== '0');

/**
 * How far the op's normalised x may be from the float64 one rounded to x's dtype, relative to |y|.
 * CPU: rstd from a float64 sum (3 fp32 roundings after it). CUDA: an fp32 sum of k squares (positive
 * terms: relative error below k * 2^-24), halved by the square root, + 8 roundings. bf16 adds one ulp
 * (2^-7 relative at 8 significant bits): the two values may round to neighbouring bf16 numbers.
 */
function yRel(xDType: DType, k: number, gpu: boolean): number {
  const fp32 = gpu ? (k / 2 + 8) * U : 6 * U;
  return xDType === 'bfloat16' ? 2 ** -7 + fp32 : fp32;
}

interface Problem {
  ref: RefCase;
  x: Tensor;
  w: Tensor;
  bias?: Tensor;
  normW?: Tensor;
  residual?: Tensor;
  opts: { eps: number; swiglu: boolean; outDType: DType };
}

interface Spec {
  m: number;
  n: number; // output columns (N_w = 2n with swiglu)
  k: number;
  dtype: DType;
  norm?: boolean;
  normF32?: boolean;
  bias?: boolean;
  swiglu?: boolean;
  residual?: boolean;
  outF32?: boolean;
}

function hostTensor(rng: Rng, shape: number[], dtype: DType, lo: number, hi: number): { t: Tensor; v: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = Tensor.fromArray(rng.uniform(n, lo, hi), shape, { dtype });
  return { t, v: t.toFloat32Array() as Float32Array };
}

/** Host tensors for a spec; W scaled by 1/sqrt(K) so that gate values sit in silu's curved range. */
function makeProblem(rng: Rng, s: Spec): Problem {
  const nW = s.swiglu ? 2 * s.n : s.n;
  const outDType: DType = s.outF32 ? 'float32' : s.dtype;
  const x = hostTensor(rng, [s.m, s.k], s.dtype, -2, 2);
  const wScale = 2 / Math.sqrt(s.k);
  const w = hostTensor(rng, [nW, s.k], s.dtype, -wScale, wScale);
  const bias = s.bias ? hostTensor(rng, [nW], s.dtype, -0.5, 0.5) : undefined;
  const normW = s.norm ? hostTensor(rng, [s.k], s.normF32 ? 'float32' : s.dtype, 0.5, 1.5) : undefined;
  const residual = s.residual ? hostTensor(rng, [s.m, s.n], outDType, -1, 1) : undefined;
  const eps = 1e-5;
  return {
    ref: {
      m: s.m, k: s.k, nW, x: x.v, w: w.v, bias: bias?.v, norm: normW ? { w: normW.v, eps } : undefined, swiglu: s.swiglu,
      residual: residual?.v, xDType: s.dtype, outDType,
    },
    x: x.t, w: w.t, bias: bias?.t, normW: normW?.t, residual: residual?.t,
    opts: { eps, swiglu: s.swiglu ?? false, outDType },
  };
}

/** The problem's tensors on `device` (copies for CUDA). */
function on(p: Problem, device: 'cpu' | typeof dev) {
  const mv = (t?: Tensor) => (t ? (device === 'cpu' ? t : t.to(device)) : undefined);
  return { x: mv(p.x)!, w: mv(p.w)!, bias: mv(p.bias), normW: mv(p.normW), residual: mv(p.residual) };
}

function options(t: ReturnType<typeof on>, p: Problem): FusedLinearOptions {
  return {
    bias: t.bias,
    norm: t.normW ? { weight: t.normW, eps: p.opts.eps } : undefined,
    swiglu: p.opts.swiglu,
    outDType: p.opts.outDType,
  };
}

/** fusedLinear with the residual (when any) updated in place in a fresh copy. */
function runFused(t: ReturnType<typeof on>, p: Problem): Tensor {
  const o = options(t, p);
  if (!t.residual) return fusedLinear(t.x, t.w, o);
  const h = t.residual.clone();
  const r = fusedLinear(t.x, t.w, { ...o, residual: h, out: h });
  expect(r).toBe(h);
  return h;
}

/** The unfused ops the fused one must reproduce bit for bit. */
function runUnfused(t: ReturnType<typeof on>, p: Problem): Tensor {
  const y = t.normW ? rmsnorm(t.x, t.normW, p.opts.eps).y : t.x;
  let v = linear(y, t.w, t.bias, { outDType: p.opts.outDType });
  if (p.opts.swiglu) v = swigluFused(v);
  if (t.residual) v = add(t.residual, v);
  return v;
}

function bytes(t: Tensor): ArrayBuffer {
  return t.storage.read(0, t.byteLength);
}

/**
 * CUDA (fused kernel or its fallback) vs the float64 reference within the CUDA bound (twice the fp32
 * accumulation bound, as matmul.gpu.test.ts allows; the GEMV's summation order has the same
 * (k - 1) * 2^-24 bound as any), vs the CPU twin within the sum of both bounds, and vs the unfused
 * CUDA ops bit for bit.
 */
function check(label: string, p: Problem): void {
  const g = on(p, dev);
  const got = runFused(g, p);
  const twin = runFused(on(p, 'cpu'), p);
  expect(got.dtype).toBe(p.opts.outDType);
  const gotF = got.toFloat32Array();
  const refG = fusedLinearReference(p.ref, yRel(p.ref.xDType, p.ref.k, true), 2);
  const refC = fusedLinearReference(p.ref, yRel(p.ref.xDType, p.ref.k, false), 1);
  const vsRef = worstError(gotF, refG.out, refG.tol);
  expect(vsRef.ratio, `${label} vs float64: element ${vsRef.index} is ${vsRef.got}, reference ${vsRef.want}`).toBeLessThanOrEqual(1);
  const both = refG.tol.map((t, i) => t + refC.tol[i]);
  const vsTwin = worstError(gotF, twin.toFloat32Array(), both);
  expect(vsTwin.ratio, `${label} vs CPU twin: element ${vsTwin.index} is ${vsTwin.got}, CPU ${vsTwin.want}`).toBeLessThanOrEqual(1);
  if (exactVsUnfused) {
    const want = runUnfused(g, p);
    expect(firstByteDifference(bytes(got), bytes(want)), `${label} vs the unfused CUDA ops`).toBe(-1);
  }
}

/** What the native entry decides for these tensors (true: the fused kernel ran). */
function fusedKernelTakes(t: ReturnType<typeof on>, p: Problem, out: Tensor): boolean {
  const k = t.x.shape[t.x.rank - 1];
  const m = t.x.numel / k;
  return native().fusedGemv(
    t.x.storage, t.w.storage, out.storage, t.bias?.storage ?? null, t.normW?.storage ?? null, null,
    t.x.dtypeCode, DTYPE_CODE[p.opts.outDType], DTYPE_CODE[t.bias?.dtype ?? 'float32'], DTYPE_CODE[t.normW?.dtype ?? 'float32'],
    m, t.w.shape[0], k, p.opts.eps, p.opts.swiglu,
  );
}

// Llama-3.1-8B's decode layers scaled down 8x (hidden 512, qkv 768, inter 1792), lm_head with an odd
// vocabulary. f16 has no norm prologue (rmsnorm takes f32/bf16 x), so its layers run without it.
const LAYERS: { name: string; spec: Omit<Spec, 'm' | 'dtype'> }[] = [
  { name: 'qkv (norm, bias)', spec: { n: 768, k: 512, norm: true, bias: true } },
  { name: 'o_proj (residual in place)', spec: { n: 512, k: 512, residual: true } },
  { name: 'gate_up (norm, swiglu)', spec: { n: 1792, k: 512, norm: true, swiglu: true } },
  { name: 'down (residual in place)', spec: { n: 512, k: 1792, residual: true } },
  { name: 'lm_head (norm with f32 weight, f32 logits)', spec: { n: 4001, k: 512, norm: true, normF32: true, outF32: true } },
  { name: 'swiglu + residual + bias, f32 out', spec: { n: 300, k: 264, swiglu: true, residual: true, bias: true, outF32: true } },
];

describe.skipIf(!hasGpu)('fusedLinear on CUDA: vs float64, the CPU twin, and the unfused CUDA ops', () => {
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    for (const { name, spec } of LAYERS) {
      it(`${dtype} ${name}${dtype === 'float16' && spec.norm ? ' without the norm' : ''}, M = 1..8`, () => {
        for (let m = 1; m <= 8; m++) {
          const s: Spec = { ...spec, m, dtype, norm: dtype === 'bfloat16' && spec.norm };
          const p = makeProblem(new Rng(m * 101 + spec.n + spec.k + (dtype === 'float16' ? 7 : 0)), s);
          check(`m=${m}`, p);
        }
      }, 120_000);
    }
  }

  it('full size: 4096 x 4096 (o_proj, residual in place; qkv-like norm + bias)', () => {
    for (const s of [
      { m: 1, n: 4096, k: 4096, dtype: 'bfloat16', residual: true },
      { m: 3, n: 4096, k: 4096, dtype: 'bfloat16', norm: true, bias: true },
      { m: 1, n: 4096, k: 4096, dtype: 'float16', residual: true },
    ] as Spec[]) {
      check(JSON.stringify(s), makeProblem(new Rng(s.m + s.k), s));
    }
  }, 300_000);

  // The model loads gate/up in pairs (weights.ts GATE_UP_LAYOUT): the fused kernel's R = 2 mapping
  // then streams rows 2i and 2i + 1. Same weights reordered, same bits as the halves layout.
  it('gateUpLayout pairs: the halves layout\'s bits (fused kernel, M = 1..8, and the unfused pairs ops)', () => {
    for (const [n, k] of [[1792, 512], [300, 264], [14336, 4096]] as [number, number][]) {
      for (const m of n === 14336 ? [1] : [1, 2, 3, 4, 5, 6, 7, 8]) {
        const s: Spec = { m, n, k, dtype: 'bfloat16', norm: true, normF32: true, swiglu: true, bias: true, residual: true };
        const p = makeProblem(new Rng(n + k + m), s);
        const g = on(p, dev);
        const wPairs = Tensor.fromArray(toPairsRows(p.w.toFloat32Array() as Float32Array, n, k), [2 * n, k], { dtype: 'bfloat16' }).to(dev);
        const bPairs = Tensor.fromArray(toPairsRows(p.bias!.toFloat32Array() as Float32Array, n, 1), [2 * n], { dtype: 'bfloat16' }).to(dev);
        const want = runFused(g, p);
        const h = g.residual!.clone();
        const got = fusedLinear(g.x, wPairs, { ...options(g, p), bias: bPairs, residual: h, out: h, gateUpLayout: 'pairs' });
        const tag = `n=${n} k=${k} m=${m}`;
        expect(firstByteDifference(bytes(got), bytes(want)), `${tag} fused`).toBe(-1);
        // the fused kernel took the call (decode shapes), so this compared the pairs mapping itself
        const probe = Tensor.empty([m, n], 'bfloat16', dev);
        const took = native().fusedGemv(
          g.x.storage, wPairs.storage, probe.storage, bPairs.storage, g.normW!.storage, null, g.x.dtypeCode, DTYPE_CODE.bfloat16,
          DTYPE_CODE.bfloat16, DTYPE_CODE.float32, m, 2 * n, k, p.opts.eps, true, false, true,
        );
        expect(took, tag).toBe(true);
        if (exactVsUnfused) {
          const y = rmsnorm(g.x, g.normW!, p.opts.eps).y;
          const composed = add(g.residual!, swigluFused(linear(y, wPairs, bPairs), 'pairs'));
          expect(firstByteDifference(bytes(composed), bytes(want)), `${tag} unfused pairs ops`).toBe(-1);
        }
      }
    }
  }, 300_000);

  it('full size: gate_up 2 x 14336 x 4096 with norm + swiglu, M = 1', () => {
    const s: Spec = { m: 1, n: 14336, k: 4096, dtype: 'bfloat16', norm: true, swiglu: true };
    check('gate_up', makeProblem(new Rng(14336), s));
  }, 300_000);

  // RmsNormCuda's launch shape (and so its fp32 summation order) changes with K: lane groups of 1..32
  // (K <= 256), a warp (K <= 1024), a block of 64..512 threads, and rows longer than its register
  // cache (K = 20480). The fused prologue must match each bit for bit; M = 4 at K = 20480 is exactly
  // the 160 KiB of shared memory the kernel takes. K > 4096 also runs the ring's refills, and K = 4360
  // (545 chunks of 8) its one-chunk tail after them.
  it('norm prologue: every rmsnorm launch shape, bf16 and f32 norm weights, bit for bit', () => {
    for (const k of [8, 64, 136, 256, 512, 1032, 4096, 4360, 14336, 20480]) {
      for (const m of [1, 3, 4]) {
        const s: Spec = { m, n: 40, k, dtype: 'bfloat16', norm: true, normF32: m === 3 };
        check(`k=${k} m=${m}`, makeProblem(new Rng(k * 3 + m), s));
      }
    }
  }, 300_000);

  it('the fused kernel takes decode calls and declines the rest, which compose the unfused ops', () => {
    const rng = new Rng(91);
    const cases: { spec: Spec; takes: boolean; misalign?: 'x' | 'normW' }[] = [
      { spec: { m: 1, n: 64, k: 512, dtype: 'bfloat16', norm: true, swiglu: true }, takes: true },
      { spec: { m: 8, n: 64, k: 512, dtype: 'float16', bias: true }, takes: true },
      { spec: { m: 4, n: 40, k: 20480, dtype: 'bfloat16', norm: true }, takes: true },
      { spec: { m: 9, n: 64, k: 512, dtype: 'bfloat16', norm: true, swiglu: true }, takes: false },
      { spec: { m: 17, n: 64, k: 512, dtype: 'bfloat16', bias: true }, takes: false },
      { spec: { m: 2, n: 64, k: 512, dtype: 'float32', norm: true, swiglu: true }, takes: false },
      { spec: { m: 2, n: 64, k: 100, dtype: 'bfloat16', norm: true }, takes: false },
      { spec: { m: 2, n: 64, k: 4, dtype: 'float16' }, takes: false },
      { spec: { m: 8, n: 40, k: 10248, dtype: 'bfloat16', norm: true }, takes: false }, // 160 KiB + 128 B of rows
      { spec: { m: 2, n: 64, k: 512, dtype: 'bfloat16', norm: true }, takes: false, misalign: 'x' },
      { spec: { m: 2, n: 64, k: 512, dtype: 'bfloat16', norm: true }, takes: false, misalign: 'normW' },
    ];
    for (const c of cases) {
      const label = `${JSON.stringify(c.spec)}${c.misalign ? ` misaligned ${c.misalign}` : ''}`;
      const p = makeProblem(rng, c.spec);
      const g = on(p, dev);
      if (c.misalign) {
        // The same values in a device view one element (2 bytes) into a larger buffer.
        const src = c.misalign === 'x' ? g.x : g.normW!;
        const flat = Tensor.empty([src.numel + 1], src.dtype, dev);
        const view = flat.rows(1, src.numel + 1);
        view.copy_(src.reshape([src.numel]));
        if (c.misalign === 'x') g.x = view.reshape(src.shape);
        else g.normW = view.reshape(src.shape);
      }
      const out = Tensor.empty([c.spec.m, c.spec.n], p.opts.outDType, dev);
      expect(fusedKernelTakes(g, p, out), label).toBe(c.takes);
      // Either way the op gives the same result: compare through the op on those device tensors.
      const got = runFused(g, p);
      const twin = runFused(on(p, 'cpu'), p);
      const refG = fusedLinearReference(p.ref, yRel(p.ref.xDType, p.ref.k, true), 2);
      const refC = fusedLinearReference(p.ref, yRel(p.ref.xDType, p.ref.k, false), 1);
      const gotF = got.toFloat32Array();
      const vsRef = worstError(gotF, refG.out, refG.tol);
      expect(vsRef.ratio, `${label} vs float64: element ${vsRef.index} is ${vsRef.got}, reference ${vsRef.want}`).toBeLessThanOrEqual(1);
      const vsTwin = worstError(gotF, twin.toFloat32Array(), refG.tol.map((t, i) => t + refC.tol[i]));
      expect(vsTwin.ratio, `${label} vs CPU twin`).toBeLessThanOrEqual(1);
      if (exactVsUnfused) expect(firstByteDifference(bytes(got), bytes(runUnfused(g, p))), `${label} vs unfused`).toBe(-1);
    }
  }, 300_000);

  // A decode layer's five calls back to back on one stream (each launched with PDL, so each starts
  // under the previous one's tail), against the unfused ops: the same bits, M = 1 and 4.
  it('a decode layer chained with PDL equals the unfused ops bit for bit', () => {
    const [hidden, qkv, inter, vocab, eps] = [1024, 1536, 2816, 8003, 1e-5];
    for (const m of [1, 4]) {
      const rng = new Rng(500 + m);
      const t = (shape: number[], lo = -1, hi = 1) => hostTensor(rng, shape, 'bfloat16', lo, hi).t.to(dev);
      const s = (k: number) => 2 / Math.sqrt(k);
      const x0 = t([m, hidden], -2, 2);
      const [inNorm, postNorm, finalNorm] = [t([hidden], 0.5, 1.5), t([hidden], 0.5, 1.5), t([hidden], 0.5, 1.5)];
      const wqkv = t([qkv, hidden], -s(hidden), s(hidden));
      const wo = t([hidden, qkv], -s(qkv), s(qkv));
      const wgu = t([2 * inter, hidden], -s(hidden), s(hidden));
      const wd = t([hidden, inter], -s(inter), s(inter));
      const lm = t([vocab, hidden], -s(hidden), s(hidden));
      const x = x0.clone();
      const q = fusedLinear(x, wqkv, { norm: { weight: inNorm, eps } });
      fusedLinear(q, wo, { residual: x, out: x });
      const act = fusedLinear(x, wgu, { norm: { weight: postNorm, eps }, swiglu: true });
      fusedLinear(act, wd, { residual: x, out: x });
      const logits = fusedLinear(x, lm, { norm: { weight: finalNorm, eps }, outDType: 'float32' });
      let h = x0;
      const q2 = linear(rmsnorm(h, inNorm, eps).y, wqkv);
      h = add(h, linear(q2, wo));
      const act2 = swigluFused(linear(rmsnorm(h, postNorm, eps).y, wgu));
      h = add(h, linear(act2, wd));
      const logits2 = linear(rmsnorm(h, finalNorm, eps).y, lm, undefined, { outDType: 'float32' });
      if (exactVsUnfused) {
        expect(firstByteDifference(bytes(q), bytes(q2)), `m=${m} qkv`).toBe(-1);
        expect(firstByteDifference(bytes(act), bytes(act2)), `m=${m} act`).toBe(-1);
        expect(firstByteDifference(bytes(x), bytes(h)), `m=${m} residual stream`).toBe(-1);
        expect(firstByteDifference(bytes(logits), bytes(logits2)), `m=${m} logits`).toBe(-1);
      }
      // And the whole chain on the CPU twin, within a loose bound (five layers of bf16 roundings).
      const xc = x0.to('cpu');
      const cpu = (w: Tensor) => w.to('cpu');
      const qc = fusedLinear(xc, cpu(wqkv), { norm: { weight: cpu(inNorm), eps } });
      fusedLinear(qc, cpu(wo), { residual: xc, out: xc });
      const actc = fusedLinear(xc, cpu(wgu), { norm: { weight: cpu(postNorm), eps }, swiglu: true });
      fusedLinear(actc, cpu(wd), { residual: xc, out: xc });
      const lc = fusedLinear(xc, cpu(lm), { norm: { weight: cpu(finalNorm), eps }, outDType: 'float32' });
      const a = logits.toFloat32Array();
      const b = lc.toFloat32Array();
      let num = 0;
      let den = 0;
      for (let i = 0; i < a.length; i++) {
        num += (a[i] - b[i]) ** 2;
        den += b[i] ** 2;
      }
      expect(Math.sqrt(num / den), `m=${m} logits vs CPU`).toBeLessThan(2e-2);
    }
  }, 300_000);

  it('captured in a CUDA graph (norm + swiglu, then residual in place) and replayed on new inputs', () => {
    const [m, hidden, inter, eps] = [2, 1024, 1536, 1e-5];
    const rng = new Rng(61);
    const t = (shape: number[], lo = -1, hi = 1) => hostTensor(rng, shape, 'bfloat16', lo, hi).t.to(dev);
    const x = t([m, hidden], -2, 2);
    const h = t([m, hidden]);
    const norm = t([hidden], 0.5, 1.5);
    const wgu = t([2 * inter, hidden], -0.06, 0.06);
    const wd = t([hidden, inter], -0.05, 0.05);
    const act = Tensor.empty([m, inter], 'bfloat16', dev);
    const step = () => {
      fusedLinear(x, wgu, { norm: { weight: norm, eps }, swiglu: true, out: act });
      fusedLinear(act, wd, { residual: h, out: h });
    };
    step(); // warm: kernel attributes and allocator blocks exist before capture
    const graph = CudaGraph.capture(dev, step);
    for (let rep = 0; rep < 2; rep++) {
      const x2 = t([m, hidden], -2, 2);
      const h2 = t([m, hidden]);
      x.copy_(x2);
      h.copy_(h2);
      graph.replay();
      synchronize(dev);
      // Eager on the same inputs.
      const ae = fusedLinear(x2, wgu, { norm: { weight: norm, eps }, swiglu: true });
      const he = h2.clone();
      fusedLinear(ae, wd, { residual: he, out: he });
      expect(firstByteDifference(bytes(act), bytes(ae)), `replay ${rep}: act`).toBe(-1);
      expect(firstByteDifference(bytes(h), bytes(he)), `replay ${rep}: residual stream`).toBe(-1);
    }
    graph.destroy();
  }, 120_000);

  it('is deterministic: repeated calls give identical bits', () => {
    const p = makeProblem(new Rng(75), { m: 3, n: 4099, k: 4096, dtype: 'bfloat16', norm: true, bias: true });
    const g = on(p, dev);
    const first = bytes(runFused(g, p));
    for (let i = 0; i < 3; i++) expect(firstByteDifference(bytes(runFused(g, p)), first)).toBe(-1);
  }, 120_000);

  it('prefetchL2 is only a hint: the same bits with and without it', () => {
    for (const s of [
      { m: 1, n: 4096, k: 4096, dtype: 'bfloat16', residual: true },
      { m: 3, n: 1792, k: 4104, dtype: 'bfloat16', norm: true, swiglu: true, bias: true },
      { m: 2, n: 300, k: 264, dtype: 'float16', residual: true, outF32: true },
    ] as Spec[]) {
      const p = makeProblem(new Rng(s.n + s.k + 9), s);
      const g = on(p, dev);
      const plain = bytes(runFused(g, p));
      const hinted = (() => {
        const o = options(g, p);
        if (!g.residual) return fusedLinear(g.x, g.w, { ...o, prefetchL2: true });
        const h = g.residual.clone();
        return fusedLinear(g.x, g.w, { ...o, residual: h, out: h, prefetchL2: true });
      })();
      expect(firstByteDifference(bytes(hinted), plain), JSON.stringify(s)).toBe(-1);
    }
  }, 120_000);
});
