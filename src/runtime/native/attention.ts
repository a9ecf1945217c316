/** Native surface of the attention kernel family (native/kernels/bind_attention.cc; semantics in attention.h). */
import type { NativeStorage } from './storage.js';

export interface AttentionNative {
  /**
   * Flash attention forward over packed documents. q [T, nH, hd], k and v [Tk, nKV, hd] (dtype
   * code `dtype`), cuSeqlens int32 [batch + 1]; writes out [T, nH, hd] (dtype) and lse float32
   * [nH, T]. mask: 0 causal, 1 sliding (window), 2 TTT (tttStep, Tk = (tttStep + 1) T).
   * impl: 0 auto, 1 the CUDA SIMT reference kernels, 2 mma.sync (no wgmma forward).
   */
  attentionForward(
    q: NativeStorage,
    k: NativeStorage,
    v: NativeStorage,
    cuSeqlens: NativeStorage,
    out: NativeStorage,
    lse: NativeStorage,
    dtype: number,
    tokens: number,
    keys: number,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    batch: number,
    mask: number,
    window: number,
    tttStep: number,
    scale: number,
    impl: number,
  ): void;
  /**
   * Backward of attentionForward. dout, q, out [T, nH, hd]; k, v [Tk, nKV, hd]; lse float32 [nH, T];
   * writes dq [T, nH, hd], dk and dv [Tk, nKV, hd], and the workspace delta float32 [nH, T]
   * (rowsum(dout * out)). dqAccum float32 [T, nH, hd] is a workspace the CUDA path requires (null
   * on the CPU).
   */
  attentionBackward(
    dout: NativeStorage,
    q: NativeStorage,
    k: NativeStorage,
    v: NativeStorage,
    out: NativeStorage,
    lse: NativeStorage,
    cuSeqlens: NativeStorage,
    dq: NativeStorage,
    dk: NativeStorage,
    dv: NativeStorage,
    delta: NativeStorage,
    dqAccum: NativeStorage | null,
    dtype: number,
    tokens: number,
    keys: number,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    batch: number,
    mask: number,
    window: number,
    tttStep: number,
    scale: number,
    impl: number,
  ): void;
}
