/** Native surface of the rotary kernel family (native/kernels/bind_rotary.cc). */
import type { NativeStorage } from './storage.js';

export interface RotaryNative {
  /**
   * NeoX ("rotate_half") rotary embedding of x [tokens, heads, headDim] into out (same shape and
   * dtype; may be x itself). positions int32 [tokens]; invFreq float32 [rotDim / 2]; elements at and
   * past rotDim pass through. inverse rotates by the negative angle (the backward pass).
   */
  rotary(
    x: NativeStorage,
    out: NativeStorage,
    positions: NativeStorage,
    invFreq: NativeStorage,
    dtype: number,
    tokens: number,
    heads: number,
    headDim: number,
    rotDim: number,
    attentionScaling: number,
    inverse: boolean,
  ): void;
}
