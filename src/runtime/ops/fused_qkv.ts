/**
 * fusedQkvRotaryCache: a decode step's attention inputs straight from the residual stream,
 *
 *   q = qkvRotaryCache(fusedLinear(x, weight, { norm, bias }), positions, invFreq, rotary)
 *
 * (q returned; k and v written to the paged caches). On CUDA, where it applies -- bf16/f16, up to 4
 * tokens, no q/k norms, full rotary (2 * invFreq.length = headDim) -- the qkv GEMV's epilogue rotates
 * the pairs and writes q and the caches itself (native fused_gemv.h FusedGemvRotary), one launch
 * instead of two; elsewhere the two ops run in turn, and the CPU's twin is that composition. The
 * result is the composition's, bit for bit, either way; invalid inputs get the component ops' errors.
 * AERIE_NO_FUSED_QKV=1 always composes (A/B timing).
 */
import { native } from '../binding.js';
import { DTYPE_CODE } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { fusedLinear, type FusedLinearOptions } from './fused_linear.js';
import { qkvRotaryCache, type QkvRotaryCacheOptions } from './qkv_rotary.js';

const same = (t: Tensor, shape: readonly number[]) => t.rank === shape.length && t.shape.every((d, i) => d === shape[i]);

export function fusedQkvRotaryCache(
  x: Tensor,
  weight: Tensor,
  linear: Pick<FusedLinearOptions, 'norm' | 'bias'>,
  positions: Tensor,
  invFreq: Tensor,
  rotary: QkvRotaryCacheOptions,
): Tensor {
  const compose = (): Tensor => {
    const qkv = fusedLinear(x, weight, linear);
    try {
      return qkvRotaryCache(qkv, positions, invFreq, rotary);
    } finally {
      qkv.dispose();
    }
  };
  const { heads, kvHeads, headDim, kCache, vCache, slotMapping, out } = rotary;
  const { norm, bias } = linear;
  const T = x.shape[0];
  const K = x.shape[x.rank - 1];
  const nW = (heads + 2 * kvHeads) * headDim;
  const fusable =
    (x.dtype === 'bfloat16' || x.dtype === 'float16') &&
    x.rank === 2 &&
    weight.dtype === x.dtype &&
    same(weight, [nW, K]) &&
    !rotary.qNorm &&
    !rotary.kNorm &&
    Number.isInteger(headDim) && headDim > 0 && headDim % 2 === 0 &&
    same(invFreq, [headDim / 2]) && invFreq.dtype === 'float32' &&
    positions.dtype === 'int32' && same(positions, [T]) &&
    slotMapping.dtype === 'int32' && same(slotMapping, [T]) &&
    kCache.dtype === x.dtype && vCache.dtype === x.dtype && kCache.rank === 4 && same(kCache, [kCache.shape[0], kCache.shape[1], kvHeads, headDim]) &&
    same(vCache, kCache.shape) &&
    (!bias || same(bias, [nW])) &&
    (!norm || (x.dtype === 'bfloat16' && same(norm.weight, [K]) && (norm.weight.dtype === x.dtype || norm.weight.dtype === 'float32'))) &&
    (!out || (out.dtype === x.dtype && same(out, [T, heads, headDim]))) &&
    Number.isFinite(rotary.attentionScaling ?? 1) &&
    [x, weight, positions, invFreq, kCache, vCache, slotMapping, bias, norm?.weight, out].every((t) => !t || t.device === x.device);
  if (!fusable || T === 0 || process.env.AERIE_NO_FUSED_QKV === '1') return compose();
  const q = out ?? Tensor.empty([T, heads, headDim], x.dtype, x.device);
  let done = false;
  try {
    done = native().fusedGemvRotaryCache(
      x.storage, weight.storage, q.storage, bias?.storage ?? null, norm?.weight.storage ?? null, kCache.storage, vCache.storage,
      positions.storage, slotMapping.storage, invFreq.storage, x.dtypeCode, DTYPE_CODE[bias?.dtype ?? 'float32'],
      DTYPE_CODE[norm?.weight.dtype ?? 'float32'], T, K, heads, kvHeads, headDim, kCache.shape[0], kCache.shape[1],
      norm?.eps ?? 0, rotary.attentionScaling ?? 1,
    );
  } finally {
    if (!done && !out) q.dispose();
  }
  return done ? q : compose();
}
