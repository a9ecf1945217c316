/**
 * Native surface of the norm kernel family (native/kernels/bind_norm.cc). x-like tensors are
 * (rows, cols) of xDType (float32, or bfloat16); w is (cols) of wDType (xDType or float32); rstd and
 * dw are float32.
 */
import type { NativeStorage } from './storage.js';

export interface NormNative {
  /**
   * RMSNorm: y (rows, cols) = h * rstd * w, rstd (rows) = 1 / sqrt(mean(h^2) + eps), where h = x
   * (rows, cols), or, for the fused residual add, h = x + residual (rows, cols) rounded to xDType and
   * written to hOut (rows, cols). residual and hOut are both null or both given.
   */
  rmsnorm(
    x: NativeStorage, residual: NativeStorage | null, hOut: NativeStorage | null, w: NativeStorage,
    y: NativeStorage, rstd: NativeStorage, xDType: number, wDType: number, rows: number, cols: number, eps: number,
  ): void;
  /**
   * Backward of rmsnorm given dy (rows, cols), the forward's h (rows, cols) and rstd (rows):
   * dx (rows, cols) = d(loss)/dh (+ dhIn (rows, cols) when given: the gradient reaching h directly,
   * for the fused op), dw (cols, float32) overwritten with the sum over rows.
   */
  rmsnormBackward(
    dy: NativeStorage, dhIn: NativeStorage | null, h: NativeStorage, w: NativeStorage, rstd: NativeStorage,
    dx: NativeStorage, dw: NativeStorage, xDType: number, wDType: number, rows: number, cols: number,
  ): void;
}
