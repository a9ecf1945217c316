/**
 * The q/k/v split of a stacked projection, with the rotary embedding of q and k, in one pass:
 *
 *   qkv = linear(y, [Wq; Wk; Wv])                      [T, (heads + 2 kvHeads) * headDim]
 *   { q, k, v } = qkvRotary(qkv, positions, invFreq, { heads, kvHeads, headDim })
 *
 * equals q = rotary(qkv[:, q part]), k = rotary(qkv[:, k part]), v = qkv[:, v part] (rotary.ts: same
 * rotate_half layout, cos/sin and rounding, bit for bit) with q [T, heads, headDim] and k, v
 * [T, kvHeads, headDim] contiguous, as attention() takes them.
 *
 * qkvRotaryCache is the decode form: q/k norm (Qwen3), rotary and the paged cache write of k and v
 * in the same pass, returning q alone.
 */
import { native } from '../binding.js';
import { dtypeIn, fail, floating, positiveInt, rankIs, sameDevice, sameDType, shapeIs } from '../check.js';
import { DTYPE_CODE } from '../dtype.js';
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

export interface QkvRotaryCacheOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Multiplies cos and sin (ropeInvFreq's attentionScaling); 1 by default. */
  attentionScaling?: number;
  /** Qwen3's per-head norms [headDim], applied before the rotation: qkv's dtype, or float32. */
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** The norms' epsilon; 1e-6 by default (rmsnorm's). */
  eps?: number;
  /** The paged caches [numBlocks, blockSize, kvHeads, headDim], qkv's dtype, written in place. */
  kCache: Tensor;
  vCache: Tensor;
  /** int32 [T]: the cache slot of each token (block * blockSize + offset); -1 skips a token. */
  slotMapping: Tensor;
  /** Write q into this tensor ([T, heads, headDim], qkv's dtype; not overlapping qkv) instead of a new one: for CUDA graphs. */
  out?: Tensor;
}

/**
 * The attention inputs of a decode (or draft-verification) step from the stacked projection, in one
 * pass (one CUDA launch):
 *
 *   q = qkvRotaryCache(qkv, positions, invFreq, { heads, kvHeads, headDim, qNorm, kNorm, kCache, vCache, slotMapping })
 *
 * equals, for qkv [T, (heads + 2 kvHeads) * headDim] split into q [T, heads, headDim] and k, v
 * [T, kvHeads, headDim]:
 *
 *   q = rotary(rmsnorm(q, qNorm, eps).y), k = rotary(rmsnorm(k, kNorm, eps).y)  (each norm only when given)
 *   cacheWrite(kCache, vCache, k, v, slotMapping)
 *
 * and returns q (or `out`). Slot -1 skips a token's cache rows (padding) but its q is still
 * produced; other slots outside the cache throw on the CPU and are skipped on CUDA, as cacheWrite.
 * Bits: the CPU equals that composition of the CPU ops exactly; CUDA equals it exactly without the
 * norms, and with them may differ by the norm's fp32 sum order (one ulp of a normed value, rarely).
 */
export function qkvRotaryCache(qkv: Tensor, positions: Tensor, invFreq: Tensor, opts: QkvRotaryCacheOptions): Tensor {
  const op = 'qkvRotaryCache';
  const { kCache, vCache, slotMapping, qNorm, kNorm, out } = opts;
  const device = sameDevice(op, { qkv, positions, invFreq, kCache, vCache, slotMapping, qNorm, kNorm, out });
  floating(op, 'qkv', qkv);
  rankIs(op, 'qkv', qkv, 2);
  dtypeIn(op, 'positions', positions, ['int32']);
  dtypeIn(op, 'invFreq', invFreq, ['float32']);
  dtypeIn(op, 'slotMapping', slotMapping, ['int32']);
  const { heads, kvHeads, headDim } = opts;
  for (const [n, val] of [['heads', heads], ['kvHeads', kvHeads], ['headDim', headDim]] as const) positiveInt(op, n, val);
  const [tokens, width] = qkv.shape;
  if (width !== (heads + 2 * kvHeads) * headDim) {
    fail(op, `qkv is ${qkv.describe()}; expected [T, ${(heads + 2 * kvHeads) * headDim}] for ${heads} + 2 x ${kvHeads} heads of ${headDim}`);
  }
  shapeIs(op, 'positions', positions, [tokens]);
  shapeIs(op, 'slotMapping', slotMapping, [tokens]);
  rankIs(op, 'invFreq', invFreq, 1);
  const rotDim = 2 * invFreq.shape[0];
  if (rotDim === 0 || rotDim > headDim) fail(op, `invFreq is ${invFreq.describe()}: 2 * its length must be in [2, headDim ${headDim}]`);
  const scaling = opts.attentionScaling ?? 1;
  if (!Number.isFinite(scaling)) fail(op, `attentionScaling must be finite, got ${scaling}`);

  sameDType(op, { qkv, kCache, vCache, out });
  rankIs(op, 'kCache', kCache, 4);
  shapeIs(op, 'kCache', kCache, [-1, -1, kvHeads, headDim]);
  shapeIs(op, 'vCache', vCache, kCache.shape);
  const [numBlocks, blockSize] = kCache.shape;
  if (numBlocks === 0 || blockSize === 0) fail(op, `kCache ${kCache.describe()} is empty`);

  // The norms: rmsnorm's dtypes (qkv float32 with float32 weights, bfloat16 with bfloat16 or float32).
  const norms = [['qNorm', qNorm], ['kNorm', kNorm]] as const;
  let wDType = qkv.dtype;
  for (const [name, w] of norms) {
    if (!w) continue;
    if (qkv.dtype !== 'float32' && qkv.dtype !== 'bfloat16') fail(op, `${name} needs qkv float32 or bfloat16 (as rmsnorm), got ${qkv.describe()}`);
    shapeIs(op, name, w, [headDim]);
    if (w.dtype !== qkv.dtype && w.dtype !== 'float32') fail(op, `${name} is ${w.describe()}; expected ${qkv.dtype} or float32 for qkv ${qkv.describe()}`);
    wDType = w.dtype;
  }
  if (qNorm && kNorm && qNorm.dtype !== kNorm.dtype) fail(op, `qNorm is ${qNorm.describe()} but kNorm is ${kNorm.describe()}; expected one dtype`);
  const eps = opts.eps ?? 1e-6;
  if (!(Number.isFinite(eps) && eps >= 0)) fail(op, `eps must be finite and >= 0, got ${eps}`);

  if (out) shapeIs(op, 'out', out, [tokens, heads, headDim]);
  const q = out ?? Tensor.empty([tokens, heads, headDim], qkv.dtype, device);
  try {
    native().qkvRotaryCache(
      qkv.storage, q.storage, kCache.storage, vCache.storage, positions.storage, slotMapping.storage, invFreq.storage,
      qNorm?.storage ?? null, kNorm?.storage ?? null, qkv.dtypeCode, DTYPE_CODE[wDType],
      tokens, heads, kvHeads, headDim, rotDim, numBlocks, blockSize, scaling, eps,
    );
  } catch (e) {
    if (!out) q.dispose();
    throw e;
  }
  return q;
}
