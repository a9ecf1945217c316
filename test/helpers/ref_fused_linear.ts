/** The float64 reference of fusedLinear (test/fused_linear*.test.ts) with its error bound. */
import type { DType } from '../../src/runtime/dtype.js';
import { OUT_REL } from './ref_matmul.js';
import { rmsnormRef } from './ref_norm.js';
import { roundBf16 } from './random.js';

const U = 2 ** -24; // fp32 unit roundoff

/** The problem as the op sees it: every array holds the exact (already rounded) stored values. */
export interface RefCase {
  m: number;
  k: number;
  nW: number;
  x: Float32Array;
  w: Float32Array;
  bias?: Float32Array;
  norm?: { w: Float32Array; eps: number };
  swiglu?: boolean;
  residual?: Float32Array;
  xDType: DType;
  outDType: DType;
}

/**
 * Float64 reference and a per-element bound on |op - reference|, built step by step:
 *   y: rmsnorm in float64, rounded to x's dtype like the op. The op's y may still differ by one ulp
 *      of x's dtype where its fp32 value (rstd rounded, two products) and the float64 one round
 *      differently: yRel = 2^-7 for bf16 (one ulp at 8 significant bits), 6 * 2^-24 for f32.
 *   acc = y @ W^T + bias: accFactor * (k + 4) * 2^-24 * sum|terms| for any fp32 summation order (1 for a plain
 *      fp32 sum; 2 for CUDA, whose FMAs and shuffle trees may round less favourably) (the bias add
 *      inside the + 4), plus yRel * sum|terms| for y.
 *   each rounding to the output dtype (after acc, after swiglu, after the residual add) adds
 *      OUT_REL * (|value| + bound so far);
 *   swiglu: |silu'| <= 1.1, so silu(g)u moves by at most 1.1 |dg| (|u| + |du|) + |silu(g)| |du|,
 *      plus 8 * 2^-24 relative for its fp32 evaluation (activation_math.h: each step within an ulp).
 * An indexing or layout bug gives errors of the order of sum|terms| itself, far above this.
 */
export function fusedLinearReference(c: RefCase, yRel: number, accFactor: number): { out: Float64Array; tol: Float64Array } {
  const { m, k, nW } = c;
  let y: ArrayLike<number> = c.x;
  if (c.norm) {
    const exact = Float32Array.from(rmsnormRef(c.x, c.norm.w, m, k, c.norm.eps).y);
    y = c.xDType === 'bfloat16' ? roundBf16(exact) : exact;
  }
  const acc = new Float64Array(m * nW);
  const tAcc = new Float64Array(m * nW);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < nW; j++) {
      let s = 0;
      let mag = 0;
      const xo = i * k;
      const wo = j * k;
      for (let l = 0; l < k; l++) {
        const t = y[xo + l] * c.w[wo + l];
        s += t;
        mag += Math.abs(t);
      }
      if (c.bias) {
        s += c.bias[j];
        mag += Math.abs(c.bias[j]);
      }
      acc[i * nW + j] = s;
      tAcc[i * nW + j] = accFactor * (k + 4) * U * mag + yRel * mag;
    }
  }
  const rel = OUT_REL[c.outDType];
  const n = c.swiglu ? nW / 2 : nW;
  const out = new Float64Array(m * n);
  const tol = new Float64Array(m * n);
  const rounded = (idx: number) => ({ v: acc[idx], t: tAcc[idx] + rel * (Math.abs(acc[idx]) + tAcc[idx]) });
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let { v, t } = rounded(i * nW + j);
      if (c.swiglu) {
        const u = rounded(i * nW + n + j);
        const silu = v / (1 + Math.exp(-v));
        const gt = t;
        v = silu * u.v;
        t = 1.1 * gt * (Math.abs(u.v) + u.t) + Math.abs(silu) * u.t + 8 * U * Math.abs(v);
        t += rel * (Math.abs(v) + t);
      }
      if (c.residual) {
        v += c.residual[i * n + j];
        t += rel * (Math.abs(v) + t);
      }
      out[i * n + j] = v;
      tol[i * n + j] = t + 1e-30;
    }
  }
  return { out, tol };
}
