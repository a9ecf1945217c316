/**
 * RMSNorm ops over the last dimension, plain and fused with the residual add before it, with
 * explicit backward functions. x [..., C] is float32 or bfloat16; w [C] is x's dtype or float32;
 * the saved rstd [...] and the weight gradient dw [C] are float32. Qwen3's q/k-norm is rmsnorm on
 * [tokens, heads, head_dim] with w [head_dim].
 */
import { native } from '../binding.js';
import { dtypeIn, fail, sameDevice, shapeIs } from '../check.js';
import { Tensor } from '../tensor.js';

export interface RmsNormOutput {
  y: Tensor;
  /** float32 [...]: 1 / sqrt(mean(h^2) + eps) per row, for the backward. */
  rstd: Tensor;
}

export interface AddRmsNormOutput extends RmsNormOutput {
  /** x + residual in x's dtype: the new residual stream (and what the backward needs). */
  h: Tensor;
}

export interface RmsNormGrads {
  /** Gradient of x (and, for the fused op, of residual too). */
  dx: Tensor;
  /** float32 [C]. */
  dw: Tensor;
}

/** Rows and cols of x [..., C] after checking x, w and eps. */
function checkInputs(op: string, x: Tensor, w: Tensor): { rows: number; cols: number } {
  dtypeIn(op, 'x', x, ['float32', 'bfloat16']);
  if (x.rank < 1) fail(op, `x is ${x.describe()}; expected at least one dimension`);
  const cols = x.shape[x.rank - 1];
  if (cols === 0) fail(op, `x is ${x.describe()}; the normalised dimension is empty`);
  shapeIs(op, 'w', w, [cols]);
  if (w.dtype !== x.dtype && w.dtype !== 'float32') fail(op, `w is ${w.describe()}; expected ${x.dtype} or float32 for x ${x.describe()}`);
  return { rows: x.numel / cols, cols };
}

function checkEps(op: string, eps: number): void {
  if (!(Number.isFinite(eps) && eps >= 0)) fail(op, `eps must be finite and >= 0, got ${eps}`);
}

function allocate<T extends Record<string, Tensor>>(make: () => T, run: (t: T) => void): T {
  const made: Tensor[] = [];
  try {
    const t = make();
    made.push(...Object.values(t));
    run(t);
    return t;
  } catch (e) {
    for (const m of made) m.dispose();
    throw e;
  }
}

/** y = x * rsqrt(mean(x^2, -1) + eps) * w. */
export function rmsnorm(x: Tensor, w: Tensor, eps = 1e-6): RmsNormOutput {
  const op = 'rmsnorm';
  sameDevice(op, { x, w });
  const { rows, cols } = checkInputs(op, x, w);
  checkEps(op, eps);
  return allocate(
    () => ({ y: Tensor.empty(x.shape, x.dtype, x.device), rstd: Tensor.empty(x.shape.slice(0, -1), 'float32', x.device) }),
    ({ y, rstd }) => native().rmsnorm(x.storage, null, null, w.storage, y.storage, rstd.storage, x.dtypeCode, w.dtypeCode, rows, cols, eps),
  );
}

/** h = x + residual (the new residual stream), y = rmsnorm(h) in one pass. */
export function addRmsnorm(x: Tensor, residual: Tensor, w: Tensor, eps = 1e-6): AddRmsNormOutput {
  const op = 'addRmsnorm';
  sameDevice(op, { x, residual, w });
  const { rows, cols } = checkInputs(op, x, w);
  checkEps(op, eps);
  if (residual.dtype !== x.dtype) fail(op, `residual is ${residual.describe()}; expected x's dtype ${x.dtype}`);
  shapeIs(op, 'residual', residual, x.shape);
  return allocate(
    () => ({
      y: Tensor.empty(x.shape, x.dtype, x.device),
      h: Tensor.empty(x.shape, x.dtype, x.device),
      rstd: Tensor.empty(x.shape.slice(0, -1), 'float32', x.device),
    }),
    ({ y, h, rstd }) =>
      native().rmsnorm(x.storage, residual.storage, h.storage, w.storage, y.storage, rstd.storage, x.dtypeCode, w.dtypeCode, rows, cols, eps),
  );
}

function backward(op: string, dy: Tensor, dhIn: Tensor | undefined, h: Tensor, w: Tensor, rstd: Tensor): RmsNormGrads {
  sameDevice(op, { dy, dhIn, h, w, rstd });
  const { rows, cols } = checkInputs(op, h, w);
  for (const [name, t] of [['dy', dy], ['dhIn', dhIn]] as const) {
    if (!t) continue;
    if (t.dtype !== h.dtype) fail(op, `${name} is ${t.describe()}; expected ${h.dtype} like the forward input`);
    shapeIs(op, name, t, h.shape);
  }
  dtypeIn(op, 'rstd', rstd, ['float32']);
  if (rstd.numel !== rows) fail(op, `rstd is ${rstd.describe()}; expected ${rows} values (one per row)`);
  return allocate(
    () => ({ dx: Tensor.empty(h.shape, h.dtype, h.device), dw: Tensor.empty([cols], 'float32', h.device) }),
    ({ dx, dw }) =>
      native().rmsnormBackward(dy.storage, dhIn?.storage ?? null, h.storage, w.storage, rstd.storage, dx.storage, dw.storage, h.dtypeCode,
        w.dtypeCode, rows, cols),
  );
}

/** Gradients of rmsnorm(x, w) given dy and the forward's rstd. dw is float32 [C]. */
export function rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): RmsNormGrads {
  return backward('rmsnormBackward', dy, undefined, x, w, rstd);
}

/**
 * Gradients of addRmsnorm given dy (on y), dhIn (the gradient reaching h from later layers through
 * the residual stream, or null) and the forward's h and rstd. dx is the gradient of both x and
 * residual.
 */
export function addRmsnormBackward(dy: Tensor, dhIn: Tensor | null | undefined, h: Tensor, w: Tensor, rstd: Tensor): RmsNormGrads {
  return backward('addRmsnormBackward', dy, dhIn ?? undefined, h, w, rstd);
}
