/**
 * fusedLinear: a linear layer with its decode-time neighbours fused in,
 *   out = residual + epilogue(rmsnorm(x) @ weight^T + bias),
 * each part optional, with the rounding points of the unfused ops, so the result equals
 *   rmsnorm(x, w, eps).y -> linear(., weight, bias, {outDType}) -> swigluFused -> add(residual, .)
 * bit for bit. On CUDA, few-row bf16/f16 products (decode: M <= 8) run as one memory-bound kernel
 * (native fused_gemv.cu); whatever that kernel does not cover (float32, more rows, K % 8 != 0,
 * misaligned views, normalised rows too large for shared memory) runs as exactly that composition.
 * The CPU runs its twin (fused_gemv_cpu.cc), which is that composition too.
 */
import { native } from '../binding.js';
import { fail, floating, sameDevice, shapeIs } from '../check.js';
import { DTYPE_CODE, type DType, isFloating } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { type GateUpLayout, swigluFused } from './activation.js';
import { linear } from './matmul.js';
import { rmsnorm } from './norm.js';

export interface FusedLinearOptions {
  /** RMSNorm prologue on x: weight [K] of x's dtype or float32 (x float32 or bfloat16, as rmsnorm). */
  norm?: { weight: Tensor; eps: number };
  /** [N_w], added before any rounding, as linear's bias. */
  bias?: Tensor;
  /** weight holds 2I rows of gate and up (laid out as gateUpLayout says): out = silu(gate) * up, [..., I]. */
  swiglu?: boolean;
  /**
   * With swiglu: `halves` (default) gate rows [0, I) then up rows [I, 2I); `pairs` gate i at row 2i
   * and up i at row 2i + 1 (a decode GEMV then streams each pair's rows as one 2K run).
   */
  gateUpLayout?: GateUpLayout;
  /** [..., N] of the output dtype, added last: out = residual + value (one rounding). May be `out`. */
  residual?: Tensor;
  /** Written and returned; [..., N] of the output dtype. May be `residual` (in place). */
  out?: Tensor;
  /** Defaults to out's dtype, else x's. float32 skips every intermediate rounding (logits). */
  outDType?: DType;
  /**
   * CUDA hint, same result: the kernel asks L2 for its weight rows while the kernels before it run.
   * Worth it behind kernels that leave memory idle (decode's o projection behind attention), not
   * behind another weight stream.
   */
  prefetchL2?: boolean;
}

/**
 * x [..., K] @ weight [N_w, K]^T with the options' fusions; returns [..., N] (N = N_w, or N_w / 2
 * with swiglu). See the file comment for the exact semantics.
 */
export function fusedLinear(x: Tensor, weight: Tensor, opts: FusedLinearOptions = {}): Tensor {
  const op = 'fusedLinear';
  const { norm, bias, residual, out } = opts;
  const swiglu = opts.swiglu ?? false;
  const layout = opts.gateUpLayout ?? 'halves';
  if (layout !== 'halves' && layout !== 'pairs') fail(op, `gateUpLayout must be 'halves' or 'pairs', got ${String(layout)}`);
  sameDevice(op, { x, weight, bias, normWeight: norm?.weight, residual, out });
  floating(op, 'x', x);
  if (x.rank < 1) fail(op, `x is ${x.describe()}; expected [..., K]`);
  if (weight.rank !== 2) fail(op, `weight is ${weight.describe()}; expected [N, K]`);
  if (weight.dtype !== x.dtype) fail(op, `x and weight must share a dtype: x is ${x.describe()}, weight is ${weight.describe()}`);
  const k = x.shape[x.rank - 1];
  const [nW, kw] = weight.shape;
  if (kw !== k) fail(op, `x is ${x.describe()} but weight is ${weight.describe()}: K differs (${k} vs ${kw})`);
  if (bias) {
    floating(op, 'bias', bias);
    shapeIs(op, 'bias', bias, [nW]);
  }
  if (norm) {
    if (x.dtype !== 'float32' && x.dtype !== 'bfloat16') fail(op, `the norm prologue needs x float32 or bfloat16 (as rmsnorm); x is ${x.describe()}`);
    shapeIs(op, 'norm.weight', norm.weight, [k]);
    if (norm.weight.dtype !== x.dtype && norm.weight.dtype !== 'float32') {
      fail(op, `norm.weight is ${norm.weight.describe()}; expected ${x.dtype} or float32 for x ${x.describe()}`);
    }
    if (!(Number.isFinite(norm.eps) && norm.eps >= 0)) fail(op, `norm.eps must be finite and >= 0, got ${norm.eps}`);
    if (k === 0) fail(op, `x is ${x.describe()}; the norm prologue needs K > 0`);
  }
  if (swiglu && nW % 2 !== 0) fail(op, `swiglu needs an even number of weight rows (gate | up); weight is ${weight.describe()}`);
  const n = swiglu ? nW / 2 : nW;
  const outShape = [...x.shape.slice(0, -1), n];
  const outDType = opts.outDType ?? out?.dtype ?? x.dtype;
  if (!isFloating(outDType)) fail(op, `output dtype ${outDType} is not floating`);
  if (out) {
    if (out.dtype !== outDType) fail(op, `out is ${out.describe()} but the output dtype is ${outDType}`);
    shapeIs(op, 'out', out, outShape);
  }
  if (residual) {
    if (residual.dtype !== outDType) fail(op, `residual is ${residual.describe()}; expected the output dtype ${outDType}`);
    shapeIs(op, 'residual', residual, outShape);
  }

  let m = 1; // rows: the product of x's leading dims (exact even when K is 0)
  for (let i = 0; i < x.rank - 1; i++) m *= x.shape[i];
  const o = out ?? Tensor.empty(outShape, outDType, x.device);
  if (m === 0 || n === 0) return o;
  try {
    const done = native().fusedGemv(
      x.storage, weight.storage, o.storage, bias?.storage ?? null, norm?.weight.storage ?? null, residual?.storage ?? null,
      x.dtypeCode, DTYPE_CODE[outDType], DTYPE_CODE[bias?.dtype ?? 'float32'], DTYPE_CODE[norm?.weight.dtype ?? 'float32'],
      m, nW, k, norm?.eps ?? 0, swiglu, opts.prefetchL2 ?? false, swiglu && layout === 'pairs',
    );
    if (!done) composeUnfused(x, weight, o, opts, outDType);
  } catch (e) {
    if (!out) o.dispose();
    throw e;
  }
  return o;
}

/** The same result from the unfused ops, written to o (CUDA calls the fused kernel does not take). */
function composeUnfused(x: Tensor, weight: Tensor, o: Tensor, opts: FusedLinearOptions, outDType: DType): void {
  const temps: Tensor[] = [];
  try {
    let y = x;
    if (opts.norm) {
      const r = rmsnorm(x, opts.norm.weight, opts.norm.eps);
      temps.push(r.y, r.rstd);
      y = r.y;
    }
    if (!opts.swiglu && !opts.residual) {
      linear(y, weight, opts.bias, { outDType, out: o });
      return;
    }
    let v = linear(y, weight, opts.bias, { outDType });
    temps.push(v);
    if (opts.swiglu) {
      v = swigluFused(v, opts.gateUpLayout ?? 'halves');
      temps.push(v);
    }
    if (opts.residual) add(opts.residual, v, o);
    else o.copy_(v);
  } finally {
    for (const t of temps) t.dispose();
  }
}
