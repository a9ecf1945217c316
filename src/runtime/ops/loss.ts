/**
 * Losses over a vocabulary: softmax / log-softmax along the last dimension (with explicit backward),
 * and the fused output projection + loss of a draft model (cross-entropy against hard targets, or
 * forward KL against the softmax of a second projection, the EAGLE-3 loss). The fused ops run rows in
 * chunks so that the [tokens, vocab] fp32 logits are never held whole, and can return the gradients
 * of the same pass: dh (written) and dW (accumulated into a float32 tensor the caller owns).
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, sameDevice, shapeIs } from '../check.js';
import { DTYPE_CODE, FLOAT_DTYPES, type DType } from '../dtype.js';
import { Tensor } from '../tensor.js';

/** Default scratch budget of the fused losses: fp32 logits of one chunk (and its companions). */
export const DEFAULT_LOSS_BUDGET_BYTES = 256 * 1024 * 1024;

function rowsCols(x: Tensor): { rows: number; cols: number } {
  const cols = x.shape[x.rank - 1];
  return { rows: cols === 0 ? 0 : x.numel / cols, cols };
}

function softmaxForward(op: string, x: Tensor, log: boolean, dtype?: DType): Tensor {
  sameDevice(op, { x });
  floating(op, 'x', x);
  if (x.rank < 1) fail(op, `x is ${x.describe()}; expected rank >= 1 (softmax runs along the last dimension)`);
  const outDType = dtype ?? x.dtype;
  if (!FLOAT_DTYPES.includes(outDType)) fail(op, `output dtype ${outDType} is not floating`);
  const { rows, cols } = rowsCols(x);
  const y = Tensor.empty(x.shape, outDType, x.device);
  try {
    native().softmax(x.storage, DTYPE_CODE[x.dtype], y.storage, DTYPE_CODE[outDType], rows, cols, log);
  } catch (e) {
    y.dispose();
    throw e;
  }
  return y;
}

function softmaxGrad(op: string, dy: Tensor, y: Tensor, log: boolean): Tensor {
  sameDevice(op, { dy, y });
  floating(op, 'dy', dy);
  floating(op, 'y', y);
  if (y.rank < 1) fail(op, `y is ${y.describe()}; expected rank >= 1`);
  shapeIs(op, 'dy', dy, y.shape);
  const { rows, cols } = rowsCols(y);
  const dx = Tensor.empty(y.shape, dy.dtype, y.device);
  try {
    native().softmaxBackward(y.storage, DTYPE_CODE[y.dtype], dy.storage, dx.storage, DTYPE_CODE[dy.dtype], rows, cols, log);
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}

/** softmax along the last dimension, fp32 math; output in `dtype` (default x's). */
export function softmax(x: Tensor, dtype?: DType): Tensor {
  return softmaxForward('softmax', x, false, dtype);
}

/** log_softmax along the last dimension, fp32 math; output in `dtype` (default x's). */
export function logSoftmax(x: Tensor, dtype?: DType): Tensor {
  return softmaxForward('logSoftmax', x, true, dtype);
}

/** dx = y * (dy - sum(dy * y)) from the softmax output y; dx has dy's dtype. */
export function softmaxBackward(dy: Tensor, y: Tensor): Tensor {
  return softmaxGrad('softmaxBackward', dy, y, false);
}

/** dx = dy - exp(y) * sum(dy) from the log-softmax output y; dx has dy's dtype. */
export function logSoftmaxBackward(dy: Tensor, y: Tensor): Tensor {
  return softmaxGrad('logSoftmaxBackward', dy, y, true);
}

/** Gradients of the fused losses, computed in the same pass. */
export interface FusedLossBackward {
  /** float32 [V, H]: dW += dz^T @ h (zero it before the first accumulation). */
  dW: Tensor;
  /** Multiplies every gradient (e.g. 1 / normaliser); the losses themselves are not scaled. */
  gradScale: number;
  /** dtype of dh (default float32). */
  dhDType?: DType;
}

export interface FusedLossOptions {
  /** Scratch budget in bytes for one chunk of rows (default 256 MiB); see fusedLossScratchBytesPerRow. */
  budgetBytes?: number;
  /** Rows per chunk; overrides budgetBytes. */
  chunkRows?: number;
  /** Also compute dh and accumulate dW. */
  backward?: FusedLossBackward;
}

export interface FusedLossResult {
  /** float32 []: sum over tokens with weight != 0 of weight * loss. */
  lossSum: Tensor;
  /** float32 [T]: the unweighted per-token loss (cross-entropy: 0 where the weight is 0). */
  tokenLoss: Tensor;
  /** [T, H] in backward.dhDType, when backward was asked for. */
  dh?: Tensor;
}

export interface FusedKlResult extends FusedLossResult {
  /** uint8 [T]: 1 where argmax of the target distribution == argmax of the draft's (first index on ties). */
  argmaxMatch: Tensor;
}

/**
 * Scratch bytes per chunk row: fp32 draft logits (V*4), fp32 target logits for KL (V*4), and the
 * logits gradient rounded to h's dtype when h is 16-bit and gradients are asked for (V*2).
 */
export function fusedLossScratchBytesPerRow(vocab: number, hDType: DType, kl: boolean, backward: boolean): number {
  return vocab * 4 + (kl ? vocab * 4 : 0) + (backward && hDType !== 'float32' ? vocab * 2 : 0);
}

/** Rows per chunk for a scratch budget (at least 1). */
export function fusedLossChunkRows(budgetBytes: number, bytesPerRow: number): number {
  return Math.max(1, Math.floor(budgetBytes / bytesPerRow));
}

interface Common {
  tokens: number;
  vocab: number;
  hidden: number;
  chunkRows: number;
  dhDType: DType;
}

function checkCommon(op: string, h: Tensor, w: Tensor, weights: Tensor, kl: boolean, options: FusedLossOptions): Common {
  floating(op, 'h', h);
  if (h.rank !== 2) fail(op, `h is ${h.describe()}; expected rank 2 [T, H]`);
  if (w.rank !== 2) fail(op, `w is ${w.describe()}; expected rank 2 [V, H]`);
  const [tokens, hidden] = h.shape;
  const vocab = w.shape[0];
  if (w.dtype !== h.dtype) fail(op, `h and w must share a dtype: h is ${h.describe()}, w is ${w.describe()}`);
  shapeIs(op, 'w', w, [-1, hidden]);
  if (vocab < 1 || hidden < 1) fail(op, `w is ${w.describe()}; vocab and hidden must be >= 1`);
  dtypeIn(op, 'weights', weights, ['float32']);
  shapeIs(op, 'weights', weights, [tokens]);
  const back = options.backward;
  let dhDType: DType = 'float32';
  if (back) {
    dtypeIn(op, 'backward.dW', back.dW, ['float32']);
    shapeIs(op, 'backward.dW', back.dW, [vocab, hidden]);
    if (!Number.isFinite(back.gradScale)) fail(op, `backward.gradScale must be finite, got ${back.gradScale}`);
    dhDType = back.dhDType ?? 'float32';
    if (!FLOAT_DTYPES.includes(dhDType)) fail(op, `backward.dhDType ${dhDType} is not floating`);
  }
  let chunkRows: number;
  if (options.chunkRows !== undefined) {
    if (!Number.isInteger(options.chunkRows) || options.chunkRows < 1) fail(op, `chunkRows must be a positive integer, got ${options.chunkRows}`);
    chunkRows = options.chunkRows;
  } else {
    const budget = options.budgetBytes ?? DEFAULT_LOSS_BUDGET_BYTES;
    if (!(budget > 0)) fail(op, `budgetBytes must be positive, got ${budget}`);
    chunkRows = fusedLossChunkRows(budget, fusedLossScratchBytesPerRow(vocab, h.dtype, kl, back !== undefined));
  }
  return { tokens, vocab, hidden, chunkRows, dhDType };
}

/** Disposes `outs` and rethrows when the native call fails. */
function guarded<T>(outs: (Tensor | undefined)[], fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    for (const t of outs) t?.dispose();
    throw e;
  }
}

/**
 * Cross-entropy of logits = h [T, H] @ w [V, H]^T against targets int32 [T], per-token weights
 * float32 [T] (0 = ignore: the target is not read and may be anything, e.g. -100). A target outside
 * [0, V) on a weighted token is an error on the CPU and a NaN loss on CUDA (checking would need a
 * host sync).
 */
export function fusedLinearCrossEntropy(
  h: Tensor,
  w: Tensor,
  targets: Tensor,
  weights: Tensor,
  options: FusedLossOptions = {},
): FusedLossResult {
  const op = 'fusedLinearCrossEntropy';
  const back = options.backward;
  const device = sameDevice(op, { h, w, targets, weights, dW: back?.dW });
  const c = checkCommon(op, h, w, weights, false, options);
  dtypeIn(op, 'targets', targets, ['int32']);
  shapeIs(op, 'targets', targets, [c.tokens]);
  const lossSum = Tensor.empty([], 'float32', device);
  const tokenLoss = Tensor.empty([c.tokens], 'float32', device);
  const dh = back ? Tensor.empty([c.tokens, c.hidden], c.dhDType, device) : undefined;
  guarded([lossSum, tokenLoss, dh], () =>
    native().fusedLinearCrossEntropy(
      h.storage, w.storage, DTYPE_CODE[h.dtype], targets.storage, weights.storage, lossSum.storage, tokenLoss.storage,
      dh?.storage ?? null, DTYPE_CODE[c.dhDType], back?.dW.storage ?? null, back?.gradScale ?? 1,
      c.tokens, c.vocab, c.hidden, c.chunkRows,
    ),
  );
  return dh ? { lossSum, tokenLoss, dh } : { lossSum, tokenLoss };
}

/**
 * Forward KL(p || q) per token, p = softmax(ht [T, Ht] @ wt [V, Ht]^T) (the target: no gradient),
 * q = softmax(h [T, H] @ w [V, H]^T) (the draft), weighted by weights float32 [T]. tokenLoss holds
 * the KL of every token, weighted or not; argmaxMatch compares the two argmaxes.
 */
export function fusedLinearKl(
  h: Tensor,
  w: Tensor,
  ht: Tensor,
  wt: Tensor,
  weights: Tensor,
  options: FusedLossOptions = {},
): FusedKlResult {
  const op = 'fusedLinearKl';
  const back = options.backward;
  const device = sameDevice(op, { h, w, ht, wt, weights, dW: back?.dW });
  const c = checkCommon(op, h, w, weights, true, options);
  floating(op, 'ht', ht);
  if (ht.rank !== 2) fail(op, `ht is ${ht.describe()}; expected rank 2 [T, Ht]`);
  shapeIs(op, 'ht', ht, [c.tokens, -1]);
  const targetHidden = ht.shape[1];
  if (targetHidden < 1) fail(op, `ht is ${ht.describe()}; Ht must be >= 1`);
  if (wt.dtype !== ht.dtype) fail(op, `ht and wt must share a dtype: ht is ${ht.describe()}, wt is ${wt.describe()}`);
  shapeIs(op, 'wt', wt, [c.vocab, targetHidden]);
  const lossSum = Tensor.empty([], 'float32', device);
  const tokenLoss = Tensor.empty([c.tokens], 'float32', device);
  const argmaxMatch = Tensor.empty([c.tokens], 'uint8', device);
  const dh = back ? Tensor.empty([c.tokens, c.hidden], c.dhDType, device) : undefined;
  guarded([lossSum, tokenLoss, argmaxMatch, dh], () =>
    native().fusedLinearKl(
      h.storage, w.storage, DTYPE_CODE[h.dtype], ht.storage, wt.storage, DTYPE_CODE[ht.dtype], weights.storage,
      lossSum.storage, tokenLoss.storage, argmaxMatch.storage, dh?.storage ?? null, DTYPE_CODE[c.dhDType],
      back?.dW.storage ?? null, back?.gradScale ?? 1, c.tokens, c.vocab, c.hidden, targetHidden, c.chunkRows,
    ),
  );
  return dh ? { lossSum, tokenLoss, argmaxMatch, dh } : { lossSum, tokenLoss, argmaxMatch };
}
