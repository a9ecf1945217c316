/** Native surface of the qkv_rotary kernel family (native/kernels/bind_qkv_rotary.cc). */
import type { NativeStorage } from './storage.js';

export interface QkvRotaryNative {
  /**
   * Splits qkv [tokens, (heads + 2 kvHeads) * headDim] into q [tokens, heads, headDim], k and v
   * [tokens, kvHeads, headDim] (distinct buffers, same dtype), rotating q and k exactly as rotary()
   * does (positions int32 [tokens], invFreq float32 [rotDim / 2]; elements past rotDim pass through).
   */
  qkvRotary(
    qkv: NativeStorage,
    q: NativeStorage,
    k: NativeStorage,
    v: NativeStorage,
    positions: NativeStorage,
    invFreq: NativeStorage,
    dtype: number,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    rotDim: number,
    attentionScaling: number,
  ): void;
  /**
   * The q part of qkv [tokens, (heads + 2 kvHeads) * headDim], normed per head by qNorm [headDim]
   * when given, rotated, into q [tokens, heads, headDim]; the k part (normed by kNorm when given,
   * rotated) and the v part into kCache, vCache [numBlocks, blockSize, kvHeads, headDim] at slot
   * slotMapping[t] (int32 [tokens]; -1 skips the token's cache rows; other slots outside the cache:
   * the CPU throws, CUDA skips). positions int32 [tokens], invFreq float32 [rotDim / 2]; the norm
   * weights are of wDType (float32 with float32 qkv; bfloat16 or float32 with bfloat16 qkv) and use
   * eps. Bits: the CPU equals views -> rmsnorm -> rotary -> cacheWrite of the CPU ops.
   */
  qkvRotaryCache(
    qkv: NativeStorage,
    q: NativeStorage,
    kCache: NativeStorage,
    vCache: NativeStorage,
    positions: NativeStorage,
    slotMapping: NativeStorage,
    invFreq: NativeStorage,
    qNorm: NativeStorage | null,
    kNorm: NativeStorage | null,
    dtype: number,
    wDType: number,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    rotDim: number,
    numBlocks: number,
    blockSize: number,
    attentionScaling: number,
    eps: number,
  ): void;
}
