/**
 * Matrix products over Tensors: `matmul` (2-D or batched 3-D, optional transposes, bias, alpha/beta,
 * output dtype and in-place output) and `linear` (x @ weight^T + bias, the nn.Linear layout). All
 * accumulate in fp32; CUDA tensors go through cuBLASLt, except few-row (M <= 8) bf16/f16 x @ W^T
 * products -- decode's linear layers -- which run a memory-bound GEMV kernel (native matmul.cu).
 */
import { native } from '../binding.js';
import { fail, floating, sameDevice } from '../check.js';
import { DTYPE_CODE, type DType } from '../dtype.js';
import { type Shape, Tensor, shapeString } from '../tensor.js';

export interface MatmulOptions {
  /** a is stored [K, M] (or [batch, K, M]) and used transposed. */
  transA?: boolean;
  /** b is stored [N, K] (or [batch, N, K]) and used transposed: the nn.Linear weight layout. */
  transB?: boolean;
  /** [N], added to every row of the product. */
  bias?: Tensor;
  /** Output dtype; defaults to out's dtype, else a's dtype. */
  outDType?: DType;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Scale of out's previous values (default 0; nonzero needs `out`). */
  beta?: number;
  /** Written in place and returned; must have the output shape. */
  out?: Tensor;
}

interface Gemm {
  m: number;
  n: number;
  k: number;
  batch: number;
  strideA: number;
  strideB: number;
  strideC: number;
}

/** Checks the options shared by matmul and linear and calls the native GEMM. */
function runGemm(op: string, a: Tensor, b: Tensor, g: Gemm, outShape: Shape, opts: MatmulOptions): Tensor {
  const { bias, out } = opts;
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (!Number.isFinite(alpha) || !Number.isFinite(beta)) fail(op, `alpha and beta must be finite, got alpha=${alpha}, beta=${beta}`);
  sameDevice(op, { a, b, bias, out });
  floating(op, 'a', a);
  if (a.dtype !== b.dtype) fail(op, `a and b must share a dtype: a is ${a.describe()}, b is ${b.describe()}`);
  if (bias) {
    floating(op, 'bias', bias);
    if (bias.rank !== 1 || bias.shape[0] !== g.n) fail(op, `bias is ${bias.describe()}; expected shape [${g.n}] (N of the product)`);
  }
  const outDType = opts.outDType ?? out?.dtype ?? a.dtype;
  if (out) {
    if (out.dtype !== outDType) fail(op, `out is ${out.describe()} but outDType is ${outDType}`);
    const ok = out.rank === outShape.length && outShape.every((d, i) => d === out.shape[i]);
    if (!ok) fail(op, `out is ${out.describe()}; expected shape ${shapeString(outShape)}`);
  } else if (beta !== 0) {
    fail(op, `beta=${beta} scales out's previous values, so it needs an out tensor`);
  }
  const c = out ?? Tensor.empty(outShape, outDType, a.device);
  if (!['float32', 'bfloat16', 'float16'].includes(c.dtype)) {
    if (!out) c.dispose();
    fail(op, `output dtype ${c.dtype} is not floating`);
  }
  try {
    native().matmul(
      a.storage, b.storage, c.storage, bias?.storage ?? null,
      DTYPE_CODE[a.dtype], DTYPE_CODE[c.dtype], DTYPE_CODE[bias?.dtype ?? 'float32'],
      g.m, g.n, g.k, transA, transB, g.batch, g.strideA, g.strideB, g.strideC, alpha, beta,
    );
  } catch (e) {
    if (!out) c.dispose();
    throw e;
  }
  return c;
}

/**
 * alpha * op(a) @ op(b) + beta * out + bias, row-major, fp32 accumulation.
 * a: [M, K] or [batch, M, K] ([K, M] / [batch, K, M] with transA).
 * b: [K, N] or [batch, K, N] ([N, K] / [batch, N, K] with transB).
 * A 2-D operand (or a batch of 1) is broadcast over the other's batch. Returns [M, N], or
 * [batch, M, N] when either operand is 3-D.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const shapes = `a ${a.describe()}${transA ? ' (transA)' : ''}, b ${b.describe()}${transB ? ' (transB)' : ''}`;
  if (a.rank !== 2 && a.rank !== 3) fail(op, `a must be 2-D or 3-D; got ${shapes}`);
  if (b.rank !== 2 && b.rank !== 3) fail(op, `b must be 2-D or 3-D; got ${shapes}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, ka] = transA ? [ac, ar] : [ar, ac];
  const [kb, n] = transB ? [bc, br] : [br, bc];
  if (ka !== kb) fail(op, `inner dimensions differ (${ka} vs ${kb}): ${shapes}`);
  const batchA = a.rank === 3 ? a.shape[0] : 1;
  const batchB = b.rank === 3 ? b.shape[0] : 1;
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) fail(op, `batch sizes differ (${batchA} vs ${batchB}): ${shapes}`);
  const batch = Math.max(batchA, batchB);
  const batched = a.rank === 3 || b.rank === 3;
  const outShape = batched ? [batch, m, n] : [m, n];
  const g: Gemm = {
    m, n, k: ka, batch,
    strideA: batchA === 1 ? 0 : m * ka,
    strideB: batchB === 1 ? 0 : ka * n,
    strideC: m * n,
  };
  return runGemm(op, a, b, g, outShape, opts);
}

export interface LinearOptions {
  outDType?: DType;
  out?: Tensor;
}

/** x @ weight^T + bias: x [..., K], weight [N, K] (nn.Linear layout), bias [N]; returns [..., N]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, opts: LinearOptions = {}): Tensor {
  const op = 'linear';
  if (x.rank < 1) fail(op, `x is ${x.describe()}; expected [..., K]`);
  if (weight.rank !== 2) fail(op, `weight is ${weight.describe()}; expected [N, K]`);
  const k = x.shape[x.rank - 1];
  const [n, kw] = weight.shape;
  if (k !== kw) fail(op, `x is ${x.describe()} but weight is ${weight.describe()}: K differs (${k} vs ${kw})`);
  const rows = leadingRows(x.shape);
  const outShape = [...x.shape.slice(0, -1), n];
  const g: Gemm = { m: rows, n, k, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
  return runGemm(op, x, weight, g, outShape, { transB: true, bias, outDType: opts.outDType, out: opts.out });
}

/** Product of all but the last dimension (exact even when K is 0). */
function leadingRows(shape: Shape): number {
  let r = 1;
  for (let i = 0; i < shape.length - 1; i++) r *= shape[i];
  return r;
}
