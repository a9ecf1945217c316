/** Native surface of the fused_gemv kernel family (native/kernels/bind_fused_gemv.cc, kernels/fused_gemv.h). */
import type { NativeStorage } from './storage.js';

export interface FusedGemvNative {
  /**
   * out (m, nOut) = epilogue(rmsnorm?(x) @ w^T + bias), fp32 accumulation; nOut = nW / 2 with swiglu,
   * else nW. x: (m, k) and w: (nW, k) of xDType; bias: (nW) or null; normW: (k) of normWDType (xDType
   * or float32, x float32/bfloat16 only) or null for no norm prologue; residual: (m, nOut) of outDType
   * or null, and may be out itself. The epilogue rounds to outDType where linear would, applies
   * silu(gate) * up to the rounded halves [gate | up] with swiglu (with swigluPairs: to the rounded
   * rows 2i and 2i + 1), then adds residual (one rounding).
   * Dtype arguments are DTYPE_CODE numbers. Returns true when done: always on the CPU; on CUDA false
   * means the fused kernel does not cover this call (dtype, m > 8, k % 8, alignment) and nothing ran.
   */
  fusedGemv(
    x: NativeStorage,
    w: NativeStorage,
    out: NativeStorage,
    bias: NativeStorage | null,
    normW: NativeStorage | null,
    residual: NativeStorage | null,
    xDType: number,
    outDType: number,
    biasDType: number,
    normWDType: number,
    m: number,
    nW: number,
    k: number,
    eps: number,
    swiglu: boolean,
    prefetchL2?: boolean,
    swigluPairs?: boolean,
  ): boolean;
  /**
   * The stacked projection qkv = rmsnorm?(x) @ w^T + bias (w: ((heads + 2 kvHeads) headDim, k)) with
   * qkvRotaryCache's work as its epilogue (no q/k norms, full rotary: invFreq (headDim / 2)): q (m,
   * heads, headDim) written, k and v written to the caches (numBlocks, blockSize, kvHeads, headDim)
   * at slotMapping (m) (-1 skips a token). Everything of xDType but positions/slotMapping (int32),
   * invFreq (float32) and normW (normWDType). Equals fusedGemv followed by qkvRotaryCache bit for
   * bit. Returns true when done (always on the CPU); false on CUDA when the kernel does not cover the
   * call (then nothing ran).
   */
  fusedGemvRotaryCache(
    x: NativeStorage,
    w: NativeStorage,
    q: NativeStorage,
    bias: NativeStorage | null,
    normW: NativeStorage | null,
    kCache: NativeStorage,
    vCache: NativeStorage,
    positions: NativeStorage,
    slotMapping: NativeStorage,
    invFreq: NativeStorage,
    xDType: number,
    biasDType: number,
    normWDType: number,
    m: number,
    k: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    numBlocks: number,
    blockSize: number,
    eps: number,
    attentionScaling: number,
  ): boolean;
}
