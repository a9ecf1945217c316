/** Native surface of the loss kernel family (native/kernels/bind_loss.cc; semantics in native/kernels/loss.h). */
import type { NativeStorage } from './storage.js';

export interface LossNative {
  /** y (rows, cols) = softmax(x) or log_softmax(x) (log) along rows; x (rows, cols). Dtype codes: floating. */
  softmax(x: NativeStorage, xDType: number, y: NativeStorage, yDType: number, rows: number, cols: number, log: boolean): void;
  /**
   * dx (rows, cols) from the forward output y (rows, cols) and dy (rows, cols): softmax y*(dy - sum(dy*y)),
   * log-softmax dy - exp(y)*sum(dy). dy and dx share gradDType; dx may be dy.
   */
  softmaxBackward(
    y: NativeStorage,
    yDType: number,
    dy: NativeStorage,
    dx: NativeStorage,
    gradDType: number,
    rows: number,
    cols: number,
    log: boolean,
  ): void;
  /**
   * Chunked h (T, H) @ w (V, H)^T + cross-entropy against targets int32 (T) with weights float32 (T):
   * writes lossSum float32 () and tokenLoss float32 (T); with dh (T, H) and dw float32 (V, H) also
   * dh = dz @ w (written) and dw += dz^T @ h, dz = weight * gradScale * (softmax - onehot).
   */
  fusedLinearCrossEntropy(
    h: NativeStorage,
    w: NativeStorage,
    hDType: number,
    targets: NativeStorage,
    weights: NativeStorage,
    lossSum: NativeStorage,
    tokenLoss: NativeStorage,
    dh: NativeStorage | null,
    dhDType: number,
    dw: NativeStorage | null,
    gradScale: number,
    tokens: number,
    vocab: number,
    hidden: number,
    chunkRows: number,
  ): void;
  /**
   * Chunked forward KL(p || q), p = softmax(ht (T, Ht) @ wt (V, Ht)^T), q = softmax(h (T, H) @ w (V, H)^T),
   * weights float32 (T): writes lossSum float32 (), tokenLoss float32 (T), argmaxMatch uint8 (T) when
   * given; with dh (T, H) and dw float32 (V, H) the gradients as for cross-entropy with dz = weight *
   * gradScale * (q - p).
   */
  fusedLinearKl(
    h: NativeStorage,
    w: NativeStorage,
    hDType: number,
    ht: NativeStorage,
    wt: NativeStorage,
    htDType: number,
    weights: NativeStorage,
    lossSum: NativeStorage,
    tokenLoss: NativeStorage,
    argmaxMatch: NativeStorage | null,
    dh: NativeStorage | null,
    dhDType: number,
    dw: NativeStorage | null,
    gradScale: number,
    tokens: number,
    vocab: number,
    hidden: number,
    targetHidden: number,
    chunkRows: number,
  ): void;
}
