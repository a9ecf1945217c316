/** Float64 reference of the matmul family (native/kernels/matmul.h semantics). */

export interface RefGemm {
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  batch?: number;
  /** Elements between batch entries; 0 broadcasts. Defaults: dense. */
  strideA?: number;
  strideB?: number;
  alpha?: number;
  beta?: number;
  /** Previous C (batch*m*n), scaled by beta. */
  c?: ArrayLike<number>;
  bias?: ArrayLike<number>;
}

/**
 * Returns `out` = alpha * op(A) @ op(B) + beta * C + bias and `mag` = |alpha| * |op(A)| @ |op(B)|
 * + |beta * C| + |bias| per element: the scale that floating-point error bounds are relative to.
 */
export function refMatmul(g: RefGemm): { out: Float64Array; mag: Float64Array } {
  const { a, b, m, n, k } = g;
  const batch = g.batch ?? 1;
  const sa = g.strideA ?? m * k;
  const sb = g.strideB ?? k * n;
  const alpha = g.alpha ?? 1;
  const beta = g.beta ?? 0;
  const out = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let sAbs = 0;
        for (let l = 0; l < k; l++) {
          const av = a[p * sa + (g.transA ? l * m + i : i * k + l)];
          const bv = b[p * sb + (g.transB ? j * k + l : l * n + j)];
          s += av * bv;
          sAbs += Math.abs(av * bv);
        }
        const o = p * m * n + i * n + j;
        let v = alpha * s;
        let mg = Math.abs(alpha) * sAbs;
        if (beta !== 0 && g.c) {
          v += beta * g.c[o];
          mg += Math.abs(beta * g.c[o]);
        }
        if (g.bias) {
          v += g.bias[j];
          mg += Math.abs(g.bias[j]);
        }
        out[o] = v;
        mag[o] = mg;
      }
    }
  }
  return { out, mag };
}

const U = 2 ** -24; // fp32 unit roundoff

/** Rounding of a stored output relative to its value: one ulp at 8 (bf16) / 11 (f16) significant bits. */
export const OUT_REL: Record<string, number> = { float32: 0, bfloat16: 2 ** -8, float16: 2 ** -10 };

/**
 * Per-element error bound of a GEMM computed with fp32 accumulation: accFactor * (k + 4) * 2^-24 * mag
 * (the textbook bound for an fp32 sum of k products; mag = sum of |terms|) plus outRel * |ref| for the
 * rounding of the stored output. accFactor 1 is round-to-nearest fp32 arithmetic (the CPU twin).
 */
export function gemmTolerance(ref: Float64Array, mag: Float64Array, k: number, outRel: number, accFactor = 1): Float64Array {
  const tol = new Float64Array(ref.length);
  for (let i = 0; i < ref.length; i++) tol[i] = accFactor * (k + 4) * U * mag[i] + outRel * Math.abs(ref[i]) + 1e-30;
  return tol;
}

/** The largest |got - want| / tol and where it is (Infinity for non-finite values). */
export function worstError(got: ArrayLike<number>, want: ArrayLike<number>, tol: Float64Array): { ratio: number; index: number; got: number; want: number } {
  if (got.length !== want.length) throw new Error(`worstError: lengths differ (${got.length} vs ${want.length})`);
  let ratio = 0;
  let index = 0;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const r = Number.isFinite(err) ? err / tol[i] : Infinity;
    if (r > ratio || (r === Infinity && ratio !== Infinity)) {
      ratio = r;
      index = i;
    }
  }
  return { ratio, index, got: got[index], want: want[index] };
}
