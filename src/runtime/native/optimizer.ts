/** Native surface of the optimizer kernel family (native/kernels/bind_optimizer.cc; semantics in native/kernels/optimizer.h). */
import type { NativeStorage } from './storage.js';

export interface OptimizerNative {
  /**
   * One AdamW step in place over n elements: param, expAvg, expAvgSq float32 (n); grad (n) of
   * gradDType, multiplied by clipCoef float32 () when given; modelCopy (n) of copyDType, written
   * with the updated param when given. step is 1 on the first step.
   */
  adamwStep(
    param: NativeStorage,
    grad: NativeStorage,
    gradDType: number,
    expAvg: NativeStorage,
    expAvgSq: NativeStorage,
    modelCopy: NativeStorage | null,
    copyDType: number,
    clipCoef: NativeStorage | null,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  /** acc float32 () += sum of squares of x (n) (fp64 inside). */
  sumSquaresAccumulate(x: NativeStorage, xDType: number, n: number, acc: NativeStorage): void;
  /** norm float32 () = sqrt(sumSquares float32 ()); may be the same storage. */
  gradNormFinish(sumSquares: NativeStorage, norm: NativeStorage): void;
  /** coef float32 () = min(1, maxNorm / (norm float32 () + 1e-6)). */
  clipCoefficient(norm: NativeStorage, coef: NativeStorage, maxNorm: number): void;
}
