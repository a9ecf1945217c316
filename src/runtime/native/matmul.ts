/** Native surface of the matmul kernel family (native/kernels/bind_matmul.cc, kernels/matmul.h). */
import type { NativeStorage } from './storage.js';

export interface MatmulNative {
  /**
   * Row-major batched GEMM: C[i] = alpha * op(A[i]) @ op(B[i]) + beta * C[i] + bias, fp32 accumulation.
   * a: (batch, m, k), or (batch, k, m) when transA; b: (batch, k, n), or (batch, n, k) when transB;
   * c: (batch, m, n), read only when beta != 0; bias: (n,) or null. Strides are elements between
   * consecutive batch entries (0 broadcasts one matrix). Dtype arguments are DTYPE_CODE numbers:
   * a and b share abDType (f32/bf16/f16); cDType and biasDType are floating too. CPU or CUDA
   * (cuBLASLt, loaded at first use).
   */
  matmul(
    a: NativeStorage,
    b: NativeStorage,
    c: NativeStorage,
    bias: NativeStorage | null,
    abDType: number,
    cDType: number,
    biasDType: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    batch: number,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    beta: number,
  ): void;
}
