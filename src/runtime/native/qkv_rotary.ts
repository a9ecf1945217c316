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
}
