// Decode attention over a paged KV cache (vLLM layout), with the writes that fill the cache.
//
// Cache: k_cache, v_cache (num_blocks, block_size, kv_heads, head_dim). Token slot s lives in block
// s / block_size at offset s % block_size. A sequence's blocks are listed in its row of
// block_table (batch, max_blocks).
//
// CacheWrite stores k[t], v[t] at slot_mapping[t]; slot -1 skips the token (padding).
//
// PagedAttention: for sequence b with L = seq_lens[b] cached tokens (the new ones already written)
// and Q query tokens per sequence, query t (t < Q) sits at position p = L - Q + t and attends keys
// [lo, p] where lo = max(0, p - window + 1) with a sliding window (window > 0) and 0 without one:
// causal among the Q queries, Q = 1 is plain decode. Query head h reads kv head h / (heads /
// kv_heads) (GQA). softmax(scale * q.k) weights the values in fp32; a query with no keys (p < 0,
// e.g. L = 0 for a padded batch entry) gives zeros.
//
// Early reads (CUDA, programmatic dependent launch, pdl.h): the split kernel reads seq_lens, the
// block table and the cache rows of every key but each sequence's newest `queries` before it waits
// for the kernel launched just before it. Only those newest rows (and q) may be written by that
// kernel; everything else must have been written by host copies or before an earlier kernel that
// was launched without PDL (cuBLAS, cacheWrite) or lets its dependents launch only after its own
// wait (the fused GEMV: decode's qkv projection). Every layer of the models has such a kernel. The
// combine kernel reads seq_lens before its wait too (which splits to read).
//
// Bad indices: the CPU twins throw (slot, block id or seq_len out of range, naming the position).
// The CUDA kernels cannot report without a host sync: a cache write with slot outside [0, capacity)
// is skipped, seq_len is clamped to [0, max_blocks * block_size], and keys whose block id is
// outside [0, num_blocks) are left out of the softmax.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

struct CacheWriteArgs {
  const void* k = nullptr;          // (tokens, kv_heads, head_dim)
  const void* v = nullptr;          // (tokens, kv_heads, head_dim)
  void* k_cache = nullptr;          // (num_blocks, block_size, kv_heads, head_dim)
  void* v_cache = nullptr;          // (num_blocks, block_size, kv_heads, head_dim)
  const int32_t* slot_mapping = nullptr;  // (tokens,)
  DType dtype = DType::F32;         // k, v and the caches: f32, bf16 or f16
  int64_t tokens = 0, num_blocks = 0, block_size = 0, kv_heads = 0, head_dim = 0;
};

struct PagedAttentionArgs {
  const void* q = nullptr;          // (batch, queries, heads, head_dim)
  const void* k_cache = nullptr;    // (num_blocks, block_size, kv_heads, head_dim)
  const void* v_cache = nullptr;    // (num_blocks, block_size, kv_heads, head_dim)
  const int32_t* block_table = nullptr;  // (batch, max_blocks)
  const int32_t* seq_lens = nullptr;     // (batch,)
  void* out = nullptr;              // (batch, queries, heads, head_dim), q's dtype
  // CUDA only, when num_splits > 1: per split partial results, float32
  // (batch, queries, heads, num_splits, head_dim + 2): acc[head_dim], max, sum.
  float* workspace = nullptr;
  DType dtype = DType::F32;         // q, out and the caches: f32, bf16 or f16
  int64_t batch = 0, queries = 1, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t num_blocks = 0, block_size = 0, max_blocks = 0;
  float scale = 1.0f;
  int64_t window = 0;               // 0: no sliding window
  int64_t num_splits = 1;           // CUDA: key partitions per sequence (the CPU ignores it)
};

void CheckCacheWriteArgs(const CacheWriteArgs& a);
void CheckPagedAttentionArgs(const PagedAttentionArgs& a);
// Floats of workspace PagedAttentionCuda needs (0 when num_splits == 1).
int64_t PagedAttentionWorkspaceElems(const PagedAttentionArgs& a);

void CacheWriteCpu(const CacheWriteArgs& args);
void CacheWriteCuda(const CacheWriteArgs& args, cudaStream_t stream);
void PagedAttentionCpu(const PagedAttentionArgs& args);
void PagedAttentionCuda(const PagedAttentionArgs& args, cudaStream_t stream);

}  // namespace aerie
