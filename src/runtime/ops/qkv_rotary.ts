/**
 * The q/k/v split of a stacked projection, with the rotary embedding of q and k, in one pass:
 *
 *   qkv = linear(y, [Wq; Wk; Wv])                      [T, (heads + 2 kvHeads) * headDim]
 *   { q, k, v } = qkvRotary(qkv, positions, invFreq, { heads, kvHeads, headDim })
 *
 * equals q = rotary(qkv[:, q part]), k = rotary(qkv[:, k part]), v = qkv[:, v part] (rotary.ts: same
 * rotate_half layout, cos/sin and rounding, bit for bit) with q [T, heads, headDim] and k, v
 * [T, kvHeads, headDim] contiguous, as attention() takes them.
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, rankIs, sameDevice, shapeIs } from '../check.js';
import { Tensor } from '../tensor.js';

export interface QkvRotaryOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Multiplies cos and sin (ropeInvFreq's attentionScaling); 1 by default. */
  attentionScaling?: number;
}

export function qkvRotary(qkv: Tensor, positions: Tensor, invFreq: Tensor, opts: QkvRotaryOptions): { q: Tensor; k: Tensor; v: Tensor } {
  const op = 'qkvRotary';
  sameDevice(op, { qkv, positions, invFreq });
  floating(op, 'qkv', qkv);
  rankIs(op, 'qkv', qkv, 2);
  dtypeIn(op, 'positions', positions, ['int32']);
  dtypeIn(op, 'invFreq', invFreq, ['float32']);
  const { heads, kvHeads, headDim } = opts;
  for (const [n, val] of [['heads', heads], ['kvHeads', kvHeads], ['headDim', headDim]] as const) {
    if (!Number.isInteger(val) || val <= 0) fail(op, `${n} must be a positive integer, got ${val}`);
  }
  const [tokens, width] = qkv.shape;
  if (width !== (heads + 2 * kvHeads) * headDim) {
    fail(op, `qkv is ${qkv.describe()}; expected [T, ${(heads + 2 * kvHeads) * headDim}] for ${heads} + 2 x ${kvHeads} heads of ${headDim}`);
  }
  shapeIs(op, 'positions', positions, [tokens]);
  rankIs(op, 'invFreq', invFreq, 1);
  const rotDim = 2 * invFreq.shape[0];
  if (rotDim === 0 || rotDim > headDim) fail(op, `invFreq is ${invFreq.describe()}: 2 * its length must be in [2, headDim ${headDim}]`);
  const scaling = opts.attentionScaling ?? 1;
  if (!Number.isFinite(scaling)) fail(op, `attentionScaling must be finite, got ${scaling}`);
  const q = Tensor.empty([tokens, heads, headDim], qkv.dtype, qkv.device);
  const k = Tensor.empty([tokens, kvHeads, headDim], qkv.dtype, qkv.device);
  const v = Tensor.empty([tokens, kvHeads, headDim], qkv.dtype, qkv.device);
  try {
    native().qkvRotary(
      qkv.storage, q.storage, k.storage, v.storage, positions.storage, invFreq.storage, qkv.dtypeCode,
      tokens, heads, kvHeads, headDim, rotDim, scaling,
    );
  } catch (e) {
    q.dispose();
    k.dispose();
    v.dispose();
    throw e;
  }
  return { q, k, v };
}
