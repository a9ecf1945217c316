/** Native surface of the paged_attention kernel family (native/kernels/bind_paged_attention.cc). */
import type { NativeStorage } from './storage.js';

export interface PagedAttentionNative {
  /**
   * Stores k, v [tokens, kvHeads, headDim] into kCache, vCache [numBlocks, blockSize, kvHeads,
   * headDim] at slotMapping int32 [tokens] (slot s: block s / blockSize, offset s % blockSize; -1
   * skips). CPU: other out-of-range slots throw; CUDA: they are skipped.
   */
  cacheWrite(
    k: NativeStorage,
    v: NativeStorage,
    kCache: NativeStorage,
    vCache: NativeStorage,
    slotMapping: NativeStorage,
    dtype: number,
    tokens: number,
    numBlocks: number,
    blockSize: number,
    kvHeads: number,
    headDim: number,
  ): void;
  /**
   * out [batch, queries, heads, headDim] = attention of q [batch, queries, heads, headDim] over each
   * sequence's seqLens[b] cached tokens (blockTable int32 [batch, maxBlocks], seqLens int32 [batch]);
   * query t sits at position seqLens[b] - queries + t (causal, optional sliding window; window 0:
   * none). CUDA splits each sequence's keys into numSplits partitions and, when numSplits > 1, needs
   * workspace float32 [batch * queries * heads * numSplits * (headDim + 2)]; the CPU ignores both.
   */
  pagedAttention(
    q: NativeStorage,
    kCache: NativeStorage,
    vCache: NativeStorage,
    blockTable: NativeStorage,
    seqLens: NativeStorage,
    out: NativeStorage,
    workspace: NativeStorage | null,
    dtype: number,
    batch: number,
    queries: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    numBlocks: number,
    blockSize: number,
    maxBlocks: number,
    scale: number,
    window: number,
    numSplits: number,
  ): void;
}
