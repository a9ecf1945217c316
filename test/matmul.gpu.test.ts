import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Tensor } from '../src/runtime/tensor.js';
import type { DType } from '../src/runtime/dtype.js';
import { CudaGraph, synchronize } from '../src/runtime/cuda.js';
import { linear, matmul, type MatmulOptions } from '../src/runtime/ops/matmul.js';
import { OUT_REL, gemmTolerance, refMatmul, worstError, type RefGemm } from './helpers/ref_matmul.js';
import { Rng, roundBf16 } from './helpers/random.js';
import { firstByteDifference } from './helpers/compare.js';

const dev = 'cuda:0' as const;

/**
 * Tolerances. The CPU twin is held to the round-to-nearest fp32 bound (k + 4) * 2^-24 * sum|terms|
 * (helpers/ref_matmul.ts) plus one ulp of the output dtype. cuBLASLt is held to twice that
 * accumulation bound: tensor-core MMAs add several products at once and may truncate rather than
 * round when aligning them, which at worst doubles the per-addition error; f32 inputs run with
 * CUBLAS_COMPUTE_32F (plain fp32, no TF32), so a TF32 path would fail this by ~2^13. CUDA vs the
 * CPU twin may differ by the sum of both bounds. Any layout, transpose or stride bug gives errors
 * of the order of sum|terms|.
 */
function check(label: string, gpu: Tensor, cpu: Tensor, g: RefGemm, outRel: number): void {
  const got = gpu.toFloat32Array();
  const twin = cpu.toFloat32Array();
  const r = refMatmul(g);
  const tolCpu = gemmTolerance(r.out, r.mag, g.k, outRel, 1);
  const tolGpu = gemmTolerance(r.out, r.mag, g.k, outRel, 2);
  const vsRef = worstError(got, r.out, tolGpu);
  expect(vsRef.ratio, `${label} vs float64: element ${vsRef.index} is ${vsRef.got}, reference ${vsRef.want}`).toBeLessThanOrEqual(1);
  const both = tolCpu.map((t, i) => t + tolGpu[i]);
  const vsTwin = worstError(got, twin, both);
  expect(vsTwin.ratio, `${label} vs CPU twin: element ${vsTwin.index} is ${vsTwin.got}, CPU ${vsTwin.want}`).toBeLessThanOrEqual(1);
}

function input(rng: Rng, shape: number[], dtype: DType): { cpu: Tensor; gpu: Tensor; v: Float32Array } {
  const n = shape.reduce((x, y) => x * y, 1);
  const cpu = Tensor.fromArray(rng.uniform(n), shape, { dtype });
  return { cpu, gpu: cpu.to(dev), v: cpu.toFloat32Array() as Float32Array };
}

/** Runs matmul on both devices with the same inputs and options (tensors in opts are CPU ones). */
function both(a: { cpu: Tensor; gpu: Tensor }, b: { cpu: Tensor; gpu: Tensor }, opts: MatmulOptions) {
  const cpu = matmul(a.cpu, b.cpu, opts);
  const gpu = matmul(a.gpu, b.gpu, { ...opts, bias: opts.bias?.to(dev), out: opts.out?.to(dev) });
  return { cpu, gpu };
}

describe.skipIf(!hasGpu)('matmul on CUDA (cuBLASLt) vs the CPU twin', () => {
  // Sizes off every tile multiple (16/64/128/256), a K above the split-K range, and degenerate ones.
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [7, 5, 3],
    [33, 65, 17],
    [1, 300, 129], // a decode-like single row
    [100, 130, 300],
    [129, 257, 65],
    [64, 128, 4096],
  ];
  const pairs: [DType, DType][] = [
    ['float32', 'float32'],
    ['bfloat16', 'bfloat16'],
    ['bfloat16', 'float32'],
    ['float16', 'float16'],
  ];
  for (const [abType, outType] of pairs) {
    for (const [m, n, k] of sizes) {
      it(`${abType}->${outType} m=${m} n=${n} k=${k}, all transposes`, () => {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const rng = new Rng(m * 7919 + n * 31 + k + (transA ? 1 : 0) + (transB ? 2 : 0));
            const a = input(rng, transA ? [k, m] : [m, k], abType);
            const b = input(rng, transB ? [n, k] : [k, n], abType);
            const { cpu, gpu } = both(a, b, { transA, transB, outDType: outType });
            expect(gpu.dtype).toBe(outType);
            check(`transA=${transA} transB=${transB}`, gpu, cpu, { a: a.v, b: b.v, m, n, k, transA, transB }, OUT_REL[outType]);
          }
        }
      });
    }
  }

  it('a larger bf16 projection (x @ W^T) with bias, as linear', () => {
    const [rows, n, k] = [300, 1000, 2048];
    const rng = new Rng(3);
    const x = input(rng, [3, 100, k], 'bfloat16');
    const w = input(rng, [n, k], 'bfloat16');
    const bias = input(rng, [n], 'bfloat16');
    const cpu = linear(x.cpu, w.cpu, bias.cpu);
    const gpu = linear(x.gpu, w.gpu, bias.gpu);
    expect(gpu.shape).toEqual([3, 100, n]);
    check('linear', gpu, cpu, { a: x.v, b: w.v, m: rows, n, k, transB: true, bias: bias.v }, OUT_REL.bfloat16);
  });

  for (const abType of ['float32', 'bfloat16'] as DType[]) {
    it(`${abType} batched: dense, B broadcast (folded into one GEMM), B broadcast with transA, A broadcast`, () => {
      const [batch, m, n, k] = [5, 37, 70, 45];
      const rng = new Rng(11);
      const a3 = input(rng, [batch, m, k], abType);
      const b3 = input(rng, [batch, k, n], abType);
      const b2 = input(rng, [n, k], abType);
      const a3t = input(rng, [batch, k, m], abType);
      const a2 = input(rng, [m, k], abType);
      const out = OUT_REL[abType];
      let r = both(a3, b3, {});
      check('dense', r.gpu, r.cpu, { a: a3.v, b: b3.v, m, n, k, batch }, out);
      r = both(a3, b2, { transB: true });
      check('B broadcast', r.gpu, r.cpu, { a: a3.v, b: b2.v, m, n, k, batch, transB: true, strideB: 0 }, out);
      r = both(a3t, b2, { transA: true, transB: true });
      check('B broadcast, transA', r.gpu, r.cpu, { a: a3t.v, b: b2.v, m, n, k, batch, transA: true, transB: true, strideB: 0 }, out);
      r = both(a2, b3, {});
      check('A broadcast', r.gpu, r.cpu, { a: a2.v, b: b3.v, m, n, k, batch, strideA: 0 }, out);
    });
  }

  // Bias paths: the fused BIAS epilogue (bias dtype = output dtype, 16-byte aligned), and the
  // separate epilogue kernel (another bias dtype, or a misaligned bias view).
  const biasCases: [DType, DType, DType, boolean][] = [
    ['bfloat16', 'bfloat16', 'bfloat16', false],
    ['bfloat16', 'bfloat16', 'float32', false],
    ['float32', 'float32', 'float32', false],
    ['bfloat16', 'float32', 'float32', false],
    ['bfloat16', 'bfloat16', 'bfloat16', true],
  ];
  for (const [abType, outType, biasType, misaligned] of biasCases) {
    it(`bias ${biasType}${misaligned ? ' (misaligned view)' : ''} on ${abType}->${outType}, batched, with alpha and beta`, () => {
      const [batch, m, n, k] = [3, 50, 96, 72];
      const rng = new Rng(21);
      const a = input(rng, [batch, m, k], abType);
      const b = input(rng, [batch, k, n], abType);
      // A view starting one element in is only 2- or 4-byte aligned.
      const biasHost = Tensor.fromArray(rng.uniform(n + 1), [n + 1], { dtype: biasType });
      const biasCpu = misaligned ? biasHost.rows(1, n + 1) : biasHost.rows(0, n);
      const biasGpuBase = biasHost.to(dev);
      const biasGpu = misaligned ? biasGpuBase.rows(1, n + 1) : biasGpuBase.rows(0, n);
      const prev = Tensor.fromArray(rng.uniform(batch * m * n), [batch, m, n], { dtype: outType });
      const cpu = matmul(a.cpu, b.cpu, { bias: biasCpu, alpha: 0.5, beta: -1.5, out: prev.clone() });
      const gpu = matmul(a.gpu, b.gpu, { bias: biasGpu, alpha: 0.5, beta: -1.5, out: prev.to(dev) });
      const g: RefGemm = { a: a.v, b: b.v, m, n, k, batch, alpha: 0.5, beta: -1.5, c: prev.toFloat32Array() as Float32Array, bias: biasCpu.toFloat32Array() as Float32Array };
      check('bias', gpu, cpu, g, OUT_REL[outType]);
    });
  }

  // Dtype pairs cuBLASLt has no kernel for go through an fp32 buffer and the epilogue kernel.
  const fallbackPairs: [DType, DType][] = [
    ['float32', 'bfloat16'],
    ['float32', 'float16'],
    ['bfloat16', 'float16'],
    ['float16', 'bfloat16'],
  ];
  for (const [abType, outType] of fallbackPairs) {
    it(`${abType}->${outType} (via fp32) with bias, alpha, beta and a batch`, () => {
      const [batch, m, n, k] = [2, 33, 65, 129];
      const rng = new Rng(31);
      const a = input(rng, [batch, m, k], abType);
      const b = input(rng, [n, k], abType);
      const bias = input(rng, [n], 'float32');
      const prev = Tensor.fromArray(rng.uniform(batch * m * n), [batch, m, n], { dtype: outType });
      const cpu = matmul(a.cpu, b.cpu, { transB: true, bias: bias.cpu, alpha: 2, beta: 0.25, out: prev.clone() });
      const gpu = matmul(a.gpu, b.gpu, { transB: true, bias: bias.gpu, alpha: 2, beta: 0.25, out: prev.to(dev) });
      const g: RefGemm = { a: a.v, b: b.v, m, n, k, batch, strideB: 0, transB: true, alpha: 2, beta: 0.25, c: prev.toFloat32Array() as Float32Array, bias: bias.v };
      check('fallback', gpu, cpu, g, OUT_REL[outType]);
    });
  }

  it('misaligned operands (views at odd element offsets) still run', () => {
    const [m, n, k] = [20, 24, 7]; // rows of 7 bf16 = 14 bytes: only 2-byte aligned
    const rng = new Rng(41);
    const aBig = input(rng, [m + 1, k], 'bfloat16');
    const b = input(rng, [k, n], 'bfloat16');
    const aCpu = aBig.cpu.rows(1, m + 1);
    const aGpu = aBig.gpu.rows(1, m + 1);
    const cpu = matmul(aCpu, b.cpu);
    const gpu = matmul(aGpu, b.gpu);
    check('misaligned', gpu, cpu, { a: aCpu.toFloat32Array() as Float32Array, b: b.v, m, n, k }, OUT_REL.bfloat16);
  });

  it('k = 0 gives beta * out + bias; beta = 0 ignores NaN in out', () => {
    const bias = Tensor.fromArray([1.5, -2, 3], [3], { device: dev });
    const out = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device: dev });
    matmul(Tensor.empty([2, 0], 'float32', dev), Tensor.empty([0, 3], 'float32', dev), { bias, beta: 2, out });
    expect(Array.from(out.toFloat32Array())).toEqual([3.5, 2, 9, 9.5, 8, 15]);
    const nan = Tensor.fromArray(new Float32Array(6).fill(NaN), [2, 3], { device: dev });
    const a = Tensor.fromArray([1, 2, 3, 4], [2, 2], { device: dev });
    const b = Tensor.fromArray([1, 0, 1, 0, 1, 1], [2, 3], { device: dev });
    matmul(a, b, { out: nan });
    expect(Array.from(nan.toFloat32Array())).toEqual([1, 2, 3, 3, 4, 7]);
  });

  it('repeated calls reuse the cached plan and give identical results', () => {
    const rng = new Rng(51);
    const a = input(rng, [64, 200], 'bfloat16');
    const b = input(rng, [96, 200], 'bfloat16');
    const first = matmul(a.gpu, b.gpu, { transB: true }).toFloat32Array();
    for (let i = 0; i < 3; i++) expect(matmul(a.gpu, b.gpu, { transB: true }).toFloat32Array()).toEqual(first);
  });

  it('runs inside a captured CUDA graph and replays on new inputs', () => {
    const rng = new Rng(61);
    const x = input(rng, [16, 256], 'bfloat16');
    const w = input(rng, [384, 256], 'bfloat16');
    const bias = input(rng, [384], 'bfloat16');
    const y = Tensor.empty([16, 384], 'bfloat16', dev);
    linear(x.gpu, w.gpu, bias.gpu, { out: y }); // warm: plan and workspace exist before capture
    const graph = CudaGraph.capture(dev, () => {
      linear(x.gpu, w.gpu, bias.gpu, { out: y });
    });
    const x2 = input(rng, [16, 256], 'bfloat16');
    x.gpu.copy_(x2.gpu);
    graph.replay();
    synchronize(dev);
    const cpu = linear(x2.cpu, w.cpu, bias.cpu);
    check('graph replay', y, cpu, { a: x2.v, b: w.v, m: 16, n: 384, k: 256, transB: true, bias: bias.v }, OUT_REL.bfloat16);
    graph.destroy();
  });
});

/**
 * Prefill-sized products (>= 2^36 FLOP) are autotuned on their first call (matmul_cuda.cc,
 * PickFastest): every candidate the heuristic offers is run into a scratch output and timed, and the
 * fastest is kept. These check what that must never change: the caller's out (with beta = 1 it is an
 * input) and the result, on sampled elements against float64; and that a first call inside a CUDA
 * graph capture (where timing would need a forbidden synchronisation) still captures and replays.
 */
describe.skipIf(!hasGpu)('autotuned prefill-sized GEMMs on CUDA', () => {
  const [m, n, k] = [4096, 4096, 2048]; // 2 m n k = 2^36 FLOP: the smallest tuned product

  /** Checks sampled elements of got [m, n] against c0 + a [m, k] @ w [n, k]^T in float64. */
  function checkSampled(label: string, got: Float32Array, a: Float32Array, w: Float32Array, c0: Float32Array | null, outRel: number): void {
    const rng = new Rng(7);
    const samples = 512;
    const want = new Float64Array(samples);
    const mag = new Float64Array(samples);
    const seen = new Float64Array(samples);
    for (let s = 0; s < samples; s++) {
      const i = Math.floor(rng.next() * m);
      const j = Math.floor(rng.next() * n);
      let v = c0 ? c0[i * n + j] : 0;
      let mg = Math.abs(v);
      for (let l = 0; l < k; l++) {
        const t = a[i * k + l] * w[j * k + l];
        v += t;
        mg += Math.abs(t);
      }
      want[s] = v;
      mag[s] = mg;
      seen[s] = got[i * n + j];
    }
    const e = worstError(seen, want, gemmTolerance(want, mag, k, outRel, 2));
    expect(e.ratio, `${label}: sample ${e.index} is ${e.got}, float64 ${e.want}`).toBeLessThanOrEqual(1);
  }

  it('beta = 1 into out (the residual GEMMs of prefill): tuning leaves out intact, the result is right and repeatable', () => {
    const rng = new Rng(71);
    const a = roundBf16(rng.uniform(m * k));
    const w = roundBf16(rng.uniform(n * k));
    const c0 = roundBf16(rng.uniform(m * n, -4, 4));
    const ag = Tensor.fromArray(a, [m, k], { dtype: 'bfloat16', device: dev });
    const wg = Tensor.fromArray(w, [n, k], { dtype: 'bfloat16', device: dev });
    const out = Tensor.fromArray(c0, [m, n], { dtype: 'bfloat16', device: dev });
    matmul(ag, wg, { transB: true, beta: 1, out }); // first call of this shape: tuned here
    const first = out.toFloat32Array() as Float32Array;
    checkSampled('first (tuned) call', first, a, w, c0, OUT_REL.bfloat16);
    out.copy_(Tensor.fromArray(c0, [m, n], { dtype: 'bfloat16', device: dev }));
    matmul(ag, wg, { transB: true, beta: 1, out }); // the cached, tuned plan
    // (a byte comparison: toEqual on 16M-element arrays exhausts the JS heap)
    expect(firstByteDifference(out.toFloat32Array(), first), 'second call vs first: first differing byte').toBe(-1);
    for (const t of [ag, wg, out]) t.dispose();
  });

  it('a first call inside a CUDA graph capture is not tuned (no synchronisation) and replays correctly', () => {
    const rng = new Rng(73);
    const a = rng.uniform(m * k);
    const w = rng.uniform(n * k);
    // float16 operands: a plan key no other test has made, so the capture is the shape's first call.
    const f16 = (v: Float32Array) => Tensor.fromArray(v, [v.length], { dtype: 'float16' }).toFloat32Array() as Float32Array;
    const a16 = f16(a);
    const w16 = f16(w);
    const ag = Tensor.fromArray(a16, [m, k], { dtype: 'float16', device: dev });
    const wg = Tensor.fromArray(w16, [n, k], { dtype: 'float16', device: dev });
    const out = Tensor.empty([m, n], 'float16', dev);
    const graph = CudaGraph.capture(dev, () => {
      matmul(ag, wg, { transB: true, out });
    });
    graph.replay();
    synchronize(dev);
    checkSampled('graph replay', out.toFloat32Array() as Float32Array, a16, w16, null, OUT_REL.float16);
    graph.destroy();
    for (const t of [ag, wg, out]) t.dispose();
  });
});

/**
 * The few-rows GEMV (native/kernels/matmul.cu, MatmulGemvCuda): x @ W^T with M <= 8 rows, W stored
 * [N, K], bf16/f16 operands, K % 8 == 0 and 16-byte aligned operands; everything else goes to
 * cuBLASLt. Tolerances as above (check): the kernel accumulates in fp32 with FMAs, each lane over
 * its K/256 chunks of 8 and then a 5-level shuffle tree -- another summation order than the CPU
 * twin's, but the round-to-nearest bound (k - 1) * 2^-24 * sum|terms| holds for every order, and
 * alpha, beta * C and the bias add at most 3 more roundings (inside the "+ 4"); one output rounding
 * (OUT_REL). check() allows twice that accumulation bound, and the sum of both bounds vs the twin.
 * An indexing bug (wrong row of W or x, a lost or doubled 16-byte chunk, the tail of K) gives errors
 * of the order of sum|terms|, thousands of times the bound.
 */
describe.skipIf(!hasGpu)('few-rows GEMV (x @ W^T, M <= 8) on CUDA vs the CPU twin', () => {
  // [M, N, K]: N = 1, 7, 128, 4096 + 3 (off the 8-warp block); K = 8 (only the tail loop), 4096
  // (whole pipelined groups), 14336 + 8 and 2048 + 8 (groups plus a one-chunk tail) and 4096 + 264
  // (a tail on several lanes).
  const shapes: [number, number, number][] = [
    [1, 1, 8],
    [1, 4099, 4096],
    [1, 128, 14344],
    [1, 7, 4360],
    [2, 7, 14344],
    [2, 4099, 2056],
    [3, 128, 4096],
    [5, 4099, 8],
    [5, 7, 4096],
    [8, 1, 4096],
    [8, 128, 14344],
  ];
  const pairs: [DType, DType][] = [
    ['bfloat16', 'bfloat16'],
    ['bfloat16', 'float32'],
    ['float16', 'bfloat16'],
    ['float16', 'float32'],
    ['float16', 'float16'],
  ];
  for (const [abType, outType] of pairs) {
    for (const [m, n, k] of shapes) {
      it(`${abType}->${outType} m=${m} n=${n} k=${k}: plain, then bias + alpha + beta = 1`, () => {
        const rng = new Rng(m * 131 + n * 17 + k + (abType === 'float16' ? 7 : 0) + (outType === 'float32' ? 3 : 0));
        const x = input(rng, [m, k], abType);
        const w = input(rng, [n, k], abType);
        // Plain: y = x @ W^T.
        let r = both(x, w, { transB: true, outDType: outType });
        expect(r.gpu.dtype).toBe(outType);
        check('plain', r.gpu, r.cpu, { a: x.v, b: w.v, m, n, k, transB: true }, OUT_REL[outType]);
        // bias (bf16, or f32 for an f32 output), alpha 0.75, beta 1 into a previous output.
        const biasType: DType = outType === 'float32' ? 'float32' : 'bfloat16';
        const bias = Tensor.fromArray(rng.uniform(n), [n], { dtype: biasType });
        const prev = Tensor.fromArray(rng.uniform(m * n, -4, 4), [m, n], { dtype: outType });
        // (not through both(): the CPU call would overwrite `out` before the GPU copy is made)
        const opts: MatmulOptions = { transB: true, bias, alpha: 0.75, beta: 1 };
        r = {
          cpu: matmul(x.cpu, w.cpu, { ...opts, out: prev.clone() }),
          gpu: matmul(x.gpu, w.gpu, { ...opts, bias: bias.to(dev), out: prev.to(dev) }),
        };
        const g: RefGemm = { a: x.v, b: w.v, m, n, k, transB: true, alpha: 0.75, beta: 1, c: prev.toFloat32Array() as Float32Array, bias: bias.toFloat32Array() as Float32Array };
        check('bias+beta', r.gpu, r.cpu, g, OUT_REL[outType]);
      }, 60_000);
    }
  }

  it('linear (the decode call): bf16 rows of a 3-D x, f16 bias into a bf16 output, beta = 0 ignores NaN in out', () => {
    const [n, k] = [300, 1024];
    const rng = new Rng(71);
    const x = input(rng, [2, 3, k], 'bfloat16'); // 6 rows
    const w = input(rng, [n, k], 'bfloat16');
    const bias = input(rng, [n], 'float16');
    const out = Tensor.fromArray(new Float32Array(6 * n).fill(NaN), [2, 3, n], { dtype: 'bfloat16', device: dev });
    linear(x.gpu, w.gpu, bias.gpu, { out });
    const cpu = linear(x.cpu, w.cpu, bias.cpu);
    check('linear', out, cpu, { a: x.v, b: w.v, m: 6, n, k, transB: true, bias: bias.v }, OUT_REL.bfloat16);
  });

  it('a batch of x sharing W (folded into batch*M rows), and one of 9 rows (cuBLASLt)', () => {
    const [n, k] = [100, 512];
    const rng = new Rng(72);
    const w = input(rng, [n, k], 'bfloat16');
    for (const [batch, m] of [[3, 2], [4, 2], [3, 3], [9, 1]]) {
      const x = input(rng, [batch, m, k], 'bfloat16');
      const r = both(x, w, { transB: true });
      expect(r.gpu.shape).toEqual([batch, m, n]);
      check(`batch=${batch} m=${m}`, r.gpu, r.cpu, { a: x.v, b: w.v, m, n, k, batch, transB: true, strideB: 0 }, OUT_REL.bfloat16);
    }
  });

  it('shapes outside the fast path still run (cuBLASLt): 9 rows, K % 8 != 0, misaligned x or W, f32 operands, W not transposed', () => {
    const rng = new Rng(73);
    const cases: { m: number; n: number; k: number; dtype: DType; misalignX?: boolean; misalignW?: boolean; transB?: boolean }[] = [
      { m: 9, n: 130, k: 256, dtype: 'bfloat16' },
      { m: 1, n: 130, k: 12, dtype: 'bfloat16' },
      { m: 2, n: 130, k: 4, dtype: 'float16' },
      { m: 1, n: 130, k: 256, dtype: 'bfloat16', misalignX: true },
      { m: 3, n: 130, k: 256, dtype: 'bfloat16', misalignW: true },
      { m: 1, n: 130, k: 256, dtype: 'float32' },
      { m: 1, n: 130, k: 256, dtype: 'bfloat16', transB: false },
    ];
    for (const cs of cases) {
      const { m, n, k, dtype } = cs;
      const transB = cs.transB ?? true;
      // A misaligned operand: a view starting one element (2 bytes) into a flat buffer.
      const make = (rows: number, cols: number, misaligned: boolean) => {
        const flat = Tensor.fromArray(rng.uniform(rows * cols + 1), [rows * cols + 1], { dtype });
        const cpu = (misaligned ? flat.rows(1, rows * cols + 1) : flat.rows(0, rows * cols)).reshape([rows, cols]);
        const gflat = flat.to(dev);
        const gpu = (misaligned ? gflat.rows(1, rows * cols + 1) : gflat.rows(0, rows * cols)).reshape([rows, cols]);
        return { cpu, gpu, v: cpu.toFloat32Array() as Float32Array };
      };
      const x = make(m, k, cs.misalignX ?? false);
      const w = transB ? make(n, k, cs.misalignW ?? false) : make(k, n, false);
      const r = both(x, w, { transB });
      check(`${JSON.stringify(cs)}`, r.gpu, r.cpu, { a: x.v, b: w.v, m, n, k, transB }, OUT_REL[dtype]);
    }
  });

  it('captured in a CUDA graph (a decode step: lm_head-like, f32 logits) and replayed on new inputs', () => {
    const [n, k] = [1000, 4096];
    const rng = new Rng(74);
    const x = input(rng, [1, k], 'bfloat16');
    const w = input(rng, [n, k], 'bfloat16');
    const y = Tensor.empty([1, n], 'float32', dev);
    linear(x.gpu, w.gpu, undefined, { outDType: 'float32', out: y });
    const graph = CudaGraph.capture(dev, () => {
      linear(x.gpu, w.gpu, undefined, { outDType: 'float32', out: y });
    });
    for (let rep = 0; rep < 2; rep++) {
      const x2 = input(rng, [1, k], 'bfloat16');
      x.gpu.copy_(x2.gpu);
      graph.replay();
      synchronize(dev);
      const cpu = linear(x2.cpu, w.cpu, undefined, { outDType: 'float32' });
      check(`graph replay ${rep}`, y, cpu, { a: x2.v, b: w.v, m: 1, n, k, transB: true }, OUT_REL.float32);
    }
    graph.destroy();
  });

  it('is deterministic: repeated calls give identical bits', () => {
    const rng = new Rng(75);
    const x = input(rng, [3, 4096], 'bfloat16');
    const w = input(rng, [4099, 4096], 'bfloat16');
    const first = linear(x.gpu, w.gpu).toFloat32Array();
    for (let i = 0; i < 3; i++) expect(linear(x.gpu, w.gpu).toFloat32Array()).toEqual(first);
  });
});
