/*
 * Paged KV-cache writes and split-K decode attention (FlashDecoding) on CUDA; semantics in
 * paged_attention.h.
 *
 * CacheWriteKernel: one block per token copies its k and v rows (kv_heads * head_dim contiguous
 * elements) to the slot's row of each cache, in 16-byte units when sizes and alignment allow.
 *
 * PagedAttentionSplitKernel: grid (num_splits, kv_heads, batch), 4 warps per block. Split s of a
 * sequence owns key tokens [s * split_len, (s + 1) * split_len), split_len = ceil(max_blocks *
 * block_size / num_splits): the launch shape depends only on host-known sizes, never on seq_lens
 * (which live on the device), so the kernels can be captured in a CUDA graph. A block serves the
 * queries * (heads / kv_heads) query rows that share its kv head (GQA); each warp takes whole rows.
 * Within a warp, a group of L lanes (a power of two, L * NV * VEC >= head_dim) handles one key:
 * each lane holds NV 16-byte vectors of q (pre-scaled by scale * log2 e), loads the matching
 * vectors of k and v, and the group reduces the dot product with xor shuffles (so every lane of the
 * group gets the bit-identical score). 32 / L groups run side by side and each unrolls U keys per
 * step to keep loads in flight. Each group keeps its own online-softmax state (max m and sum l in
 * the log2 domain, acc[] over its lanes' dimensions); at the end the groups are merged with xor
 * shuffles. With one split the warp writes acc / l to out; otherwise it writes (acc, m, l) to the
 * float32 workspace and PagedAttentionCombineKernel (one block per query row) rescales the splits:
 * out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s. Only the splits that hold keys of the
 * sequence (ActiveSplits: from its first query's window start to its length) run and write partials,
 * and the combine reads only those, so a table sized for growth costs nothing for the keys not yet
 * there; within them, a split writes its partial even for a row that has no keys in it (m = -inf,
 * l = 0, acc = 0), so the combine never reads stale values.
 *
 * Both kernels are launched with programmatic dependent launch (pdl.h): at decode sizes they run a
 * few microseconds, about what a launch costs, so overlapping the launches matters. The split
 * kernel reads seq_lens, the table and the keys cached before this step (all but the newest
 * `queries` of each sequence) before waiting for the kernel before it (the contract in
 * paged_attention.h); the combine kernel reads only seq_lens (which splits to read) before its wait.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "paged_attention.h"
#include "pdl.h"

namespace aerie {
namespace {

// ---- 16-byte vectors of T <-> float ------------------------------------------------------------

template <typename T> struct Vec16;
template <> struct Vec16<float> {
  static constexpr int N = 4;
  __device__ static void ToFloat(const uint4& u, float* f) {
    f[0] = __uint_as_float(u.x); f[1] = __uint_as_float(u.y); f[2] = __uint_as_float(u.z); f[3] = __uint_as_float(u.w);
  }
  __device__ static uint4 FromFloat(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};
template <> struct Vec16<__nv_bfloat16> {
  static constexpr int N = 8;
  __device__ static void ToFloat(const uint4& u, float* f) {
    const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __bfloat1622float2(p[i]);
      f[2 * i] = x.x;
      f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 FromFloat(const float* f) {
    uint4 u;
    __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return u;
  }
};
template <> struct Vec16<__half> {
  static constexpr int N = 8;
  __device__ static void ToFloat(const uint4& u, float* f) {
    const __half2* p = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __half22float2(p[i]);
      f[2 * i] = x.x;
      f[2 * i + 1] = x.y;
    }
  }
  __device__ static uint4 FromFloat(const float* f) {
    uint4 u;
    __half2* p = reinterpret_cast<__half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
    return u;
  }
};

// ---- cache write ------------------------------------------------------------------------------

template <typename V>
__global__ void CacheWriteKernel(const V* k, const V* v, V* k_cache, V* v_cache, const int32_t* slot_mapping, int64_t capacity,
                                 int64_t units_per_row) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= capacity) return;  // -1: padding; anything else out of range is skipped too
  const V* ks = k + t * units_per_row;
  const V* vs = v + t * units_per_row;
  V* kd = k_cache + slot * units_per_row;
  V* vd = v_cache + slot * units_per_row;
  for (int64_t u = threadIdx.x; u < units_per_row; u += blockDim.x) {
    kd[u] = ks[u];
    vd[u] = vs[u];
  }
}

// ---- split-K attention ------------------------------------------------------------------------

constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;

struct SplitParams {
  const int32_t* block_table;
  const int32_t* seq_lens;
  float* workspace;
  int queries, heads, kv_heads, head_dim;
  int num_blocks, block_size, max_blocks;
  int window;
  int num_splits, split_len;
  int lanes_per_key;  // L
  float scale_log2;   // scale * log2(e)
};

// The splits [first, last) of a sequence of len tokens (clamped to the table) that hold keys some
// query sees: the keys [window start of the first query, len). Both kernels use it, so the combine
// reads exactly the partials the split kernel wrote. With one split there is no combine and split 0
// writes out itself, keys or not.
struct SplitRange {
  int first, last;
};
__device__ __forceinline__ SplitRange ActiveSplits(int len, int queries, int window, int split_len, int num_splits) {
  if (num_splits == 1) return {0, 1};
  if (len <= 0) return {0, 0};
  const int lo = window > 0 ? max(0, len - queries - window + 1) : 0;
  return {min(lo / split_len, num_splits - 1), min((len - 1) / split_len, num_splits - 1) + 1};
}

template <typename T, int NV, int U>
__global__ void __launch_bounds__(kWarps * 32) PagedAttentionSplitKernel(const T* __restrict__ q, const T* __restrict__ k_cache,
                                                                           const T* __restrict__ v_cache, T* __restrict__ out,
                                                                           SplitParams p) {
  constexpr int VEC = Vec16<T>::N;
  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  PdlAllowDependents();
  // Before the wait (paged_attention.h): seq_lens, the table and the cache rows of the keys before
  // len - queries, so the split's first keys load under the previous kernel's tail; q and the
  // newest `queries` keys come from the kernel before this one and are read after the wait.
  // Measured: 4.226 against 4.304 ms a decode step (Llama-3.1-8B shapes, context 256, H200).
  bool waited = false;
  const int L = p.lanes_per_key, groups = 32 / L;
  const int li = lane % L, gi = lane / L;
  const int nvec = p.head_dim / VEC;
  const int group = p.heads / p.kv_heads, rows = p.queries * group;
  const int capacity = p.max_blocks * p.block_size;
  const int len = min(max(p.seq_lens[b], 0), capacity);
  const SplitRange active = ActiveSplits(len, p.queries, p.window, p.split_len, p.num_splits);
  if (split < active.first || split >= active.last) {
    // No key of this sequence here, and the combine skips this split. One block of the grid still
    // waits, so that this grid completing implies the kernel before it completed (pdl.h).
    if (split == 0 && kvh == 0 && b == 0) PdlWaitForPrimary();
    return;
  }
  const int old_end = len - p.queries;  // keys [0, old_end) were cached before this step
  const int split_lo = split * p.split_len;
  const int split_hi = min(split_lo + p.split_len, len);
  const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks;
  const int64_t token_stride = static_cast<int64_t>(p.kv_heads) * p.head_dim;  // elements between slots

  for (int r = warp; r < rows; r += kWarps) {  // warp-uniform
    const int t = r / group, h = kvh * group + r % group;
    const int pos = len - p.queries + t;  // this query's position; < 0 means no keys
    const int lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
    const int kstart = max(split_lo, lo), kend = min(split_hi, pos + 1);
    const int64_t row = (static_cast<int64_t>(b) * p.queries + t) * p.heads + h;

    uint4 kv[U][NV], vv[U][NV];
    bool valid[U];
    // Loads the keys base + gi + u * groups (u < U) of [.., kend) into kv, vv; `which`: 0 all, 1 only
    // the old ones, 2 only the new ones (the others are left as they are).
    auto load = [&](int base, int which) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int tok = base + gi + u * groups;
        const bool old = tok < old_end;
        if ((which == 1 && !old) || (which == 2 && old)) {
          if (which == 1) valid[u] = false;
          continue;
        }
        int blk = -1;
        if (tok < kend) blk = table[tok / p.block_size];
        valid[u] = blk >= 0 && blk < p.num_blocks;
        const int64_t off = (static_cast<int64_t>(valid[u] ? blk : 0) * p.block_size + tok % p.block_size) * token_stride +
                            static_cast<int64_t>(kvh) * p.head_dim;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          const int v = li + i * L;
          if (valid[u] && v < nvec) {
            kv[u][i] = *reinterpret_cast<const uint4*>(k_cache + off + v * VEC);
            vv[u][i] = *reinterpret_cast<const uint4*>(v_cache + off + v * VEC);
          } else {
            kv[u][i] = make_uint4(0, 0, 0, 0);
            vv[u][i] = make_uint4(0, 0, 0, 0);
          }
        }
      }
    };
    const bool early = !waited && kstart < kend;  // warp-uniform: the first row of this warp
    if (early) load(kstart, 1);
    if (!waited) {
      PdlWaitForPrimary();
      waited = true;
    }
    if (early) load(kstart, 2);

    float qf[NV][VEC], acc[NV][VEC];
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const int v = li + i * L;
      if (v < nvec) {
        Vec16<T>::ToFloat(*reinterpret_cast<const uint4*>(q + row * p.head_dim + v * VEC), qf[i]);
      } else {
#pragma unroll
        for (int e = 0; e < VEC; ++e) qf[i][e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        qf[i][e] *= p.scale_log2;
        acc[i][e] = 0.f;
      }
    }
    float m = -INFINITY, l = 0.f;

    for (int base = kstart; base < kend; base += groups * U) {  // warp-uniform bounds
      if (!(early && base == kstart)) load(base, 0);
      float s[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          float kf[VEC];
          Vec16<T>::ToFloat(kv[u][i], kf);
#pragma unroll
          for (int e = 0; e < VEC; ++e) dot += qf[i][e] * kf[e];
        }
        for (int off = L / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[u] = valid[u] ? dot : -INFINITY;
      }
      float m_new = m;
#pragma unroll
      for (int u = 0; u < U; ++u) m_new = fmaxf(m_new, s[u]);
      if (m_new == -INFINITY) continue;  // this group had no valid key yet (group-uniform; no shuffles below)
      const float c = exp2f(m - m_new);  // 0 while m is -inf
      l *= c;
#pragma unroll
      for (int i = 0; i < NV; ++i)
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[i][e] *= c;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const float w = exp2f(s[u] - m_new);  // 0 for invalid keys (s = -inf)
        l += w;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          float vf[VEC];
          Vec16<T>::ToFloat(vv[u][i], vf);
#pragma unroll
          for (int e = 0; e < VEC; ++e) acc[i][e] += w * vf[e];
        }
      }
      m = m_new;
    }

    // Merge the groups' states: lane li of group gi meets lane li of group gi ^ (off / L).
    for (int off = L; off < 32; off *= 2) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
      const float l2 = __shfl_xor_sync(0xffffffffu, l, off);
      const float m_new = fmaxf(m, m2);
      const float c1 = m == -INFINITY ? 0.f : exp2f(m - m_new);
      const float c2 = m2 == -INFINITY ? 0.f : exp2f(m2 - m_new);
      l = l * c1 + l2 * c2;
#pragma unroll
      for (int i = 0; i < NV; ++i)
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[i][e] = acc[i][e] * c1 + __shfl_xor_sync(0xffffffffu, acc[i][e], off) * c2;
      m = m_new;
    }

    if (gi == 0) {
      if (p.num_splits == 1) {
        const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          const int v = li + i * L;
          if (v >= nvec) continue;
          float o[VEC];
#pragma unroll
          for (int e = 0; e < VEC; ++e) o[e] = acc[i][e] * inv;
          *reinterpret_cast<uint4*>(out + row * p.head_dim + v * VEC) = Vec16<T>::FromFloat(o);
        }
      } else {
        float* ws = p.workspace + (row * p.num_splits + split) * static_cast<int64_t>(p.head_dim + 2);
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          const int v = li + i * L;
          if (v >= nvec) continue;
#pragma unroll
          for (int e = 0; e < VEC; ++e) ws[v * VEC + e] = acc[i][e];
        }
        if (li == 0) {
          ws[p.head_dim] = m;
          ws[p.head_dim + 1] = l;
        }
      }
    }
  }
}

constexpr int kCombineThreads = 128;

// Block-wide reduction of v (max or sum by `op`) over kCombineThreads threads; every thread gets the
// result. red: shared, kCombineThreads / 32 floats; the caller's barriers separate two uses.
template <typename Op>
__device__ __forceinline__ float CombineBlockReduce(float v, Op op, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kCombineThreads / 32; ++w) r = op(r, red[w]);
  return r;
}

// One block per query row. The max and the normaliser over the splits are block-parallel (a thread
// per split), so a row costs about three round trips to L2 whatever the split count: a serial loop
// over 34 splits in every thread took 8 us a layer at batch-1 decode (ncu, H200). It reads only the
// sequence's active splits (ActiveSplits, as the split kernel).
struct CombineParams {
  const int32_t* seq_lens;
  int queries, heads, window, capacity;
  int num_splits, split_len, head_dim;
};

template <typename T>
__global__ void __launch_bounds__(kCombineThreads) PagedAttentionCombineKernel(const float* __restrict__ workspace, T* __restrict__ out,
                                                                                CombineParams p) {
  extern __shared__ float weight[];  // [num_splits]
  __shared__ float red[2][kCombineThreads / 32];
  PdlAllowDependents();
  const int64_t row = blockIdx.x;
  const int b = static_cast<int>(row / (static_cast<int64_t>(p.queries) * p.heads));
  // seq_lens before the wait: the split kernel reads it before its own, so no kernel in reach writes it.
  const int len = min(max(p.seq_lens[b], 0), p.capacity);
  const SplitRange active = ActiveSplits(len, p.queries, p.window, p.split_len, p.num_splits);
  const int n = active.last - active.first, head_dim = p.head_dim, stride = head_dim + 2;
  PdlWaitForPrimary();  // the split kernel's partials
  const float* ws = workspace + (row * p.num_splits + active.first) * static_cast<int64_t>(stride);
  float m_loc = -INFINITY;
  for (int s = threadIdx.x; s < n; s += kCombineThreads) m_loc = fmaxf(m_loc, ws[s * stride + head_dim]);
  const float m_max = CombineBlockReduce(m_loc, [](float a, float b) { return fmaxf(a, b); }, red[0]);
  float t_loc = 0.f;
  if (m_max != -INFINITY)
    for (int s = threadIdx.x; s < n; s += kCombineThreads) {
      const float m = ws[s * stride + head_dim];
      if (m != -INFINITY) t_loc += exp2f(m - m_max) * ws[s * stride + head_dim + 1];
    }
  const float total = CombineBlockReduce(t_loc, [](float a, float b) { return a + b; }, red[1]);
  for (int s = threadIdx.x; s < n; s += kCombineThreads) {
    const float m = ws[s * stride + head_dim];
    weight[s] = (total > 0.f && m != -INFINITY) ? exp2f(m - m_max) / total : 0.f;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += kCombineThreads) {
    float o = 0.f;
#pragma unroll 8
    for (int s = 0; s < n; ++s) {
      const float w = weight[s], v = ws[s * stride + d];
      o = w != 0.f ? o + w * v : o;  // a select, so the loads need not wait for the weights
    }
    out[row * head_dim + d] = static_cast<T>(o);
  }
}

// ---- launchers --------------------------------------------------------------------------------

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, int NV>
void LaunchSplit(const PagedAttentionArgs& a, const SplitParams& p, cudaStream_t stream) {
  constexpr int U = NV >= 4 ? 1 : 4 / NV;
  dim3 grid(static_cast<unsigned>(a.num_splits), static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(a.batch));
  LaunchPdl(PagedAttentionSplitKernel<T, NV, U>, grid, dim3(kWarps * 32), 0, stream, static_cast<const T*>(a.q),
            static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache), static_cast<T*>(a.out), p);
}

template <typename T>
void LaunchAttention(const PagedAttentionArgs& a, cudaStream_t stream) {
  constexpr int VEC = Vec16<T>::N;
  if (a.head_dim % VEC != 0)
    throw std::invalid_argument("pagedAttention: head_dim " + std::to_string(a.head_dim) + " must be a multiple of " +
                                std::to_string(VEC) + " for " + std::to_string(sizeof(T)) + "-byte elements on CUDA");
  const int nvec = static_cast<int>(a.head_dim / VEC);
  int lanes = 1;
  while (lanes < nvec && lanes < 32) lanes *= 2;
  const int nv = (nvec + lanes - 1) / lanes;
  if (nv > 4)
    throw std::invalid_argument("pagedAttention: head_dim " + std::to_string(a.head_dim) + " is too large for the CUDA kernel (max " +
                                std::to_string(32 * 4 * VEC) + ")");
  const int64_t capacity = a.max_blocks * a.block_size;
  SplitParams p;
  p.block_table = a.block_table;
  p.seq_lens = a.seq_lens;
  p.workspace = a.workspace;
  p.queries = static_cast<int>(a.queries);
  p.heads = static_cast<int>(a.heads);
  p.kv_heads = static_cast<int>(a.kv_heads);
  p.head_dim = static_cast<int>(a.head_dim);
  p.num_blocks = static_cast<int>(a.num_blocks);
  p.block_size = static_cast<int>(a.block_size);
  p.max_blocks = static_cast<int>(a.max_blocks);
  p.window = static_cast<int>(a.window);
  p.num_splits = static_cast<int>(a.num_splits);
  p.split_len = static_cast<int>((capacity + a.num_splits - 1) / a.num_splits);
  p.lanes_per_key = lanes;
  p.scale_log2 = a.scale * kLog2e;
  switch (nv) {
    case 1: LaunchSplit<T, 1>(a, p, stream); break;
    case 2: LaunchSplit<T, 2>(a, p, stream); break;
    default: LaunchSplit<T, 4>(a, p, stream); break;
  }
  if (a.num_splits > 1) {
    const int64_t rows = a.batch * a.queries * a.heads;
    CombineParams c;
    c.seq_lens = a.seq_lens;
    c.queries = p.queries;
    c.heads = p.heads;
    c.window = p.window;
    c.capacity = static_cast<int>(capacity);
    c.num_splits = p.num_splits;
    c.split_len = p.split_len;
    c.head_dim = p.head_dim;
    LaunchPdl(PagedAttentionCombineKernel<T>, dim3(static_cast<unsigned>(rows)), dim3(kCombineThreads), a.num_splits * sizeof(float),
              stream, static_cast<const float*>(a.workspace), static_cast<T*>(a.out), c);
  }
}

template <typename V>
void LaunchCacheWrite(const CacheWriteArgs& a, size_t row_bytes, cudaStream_t stream) {
  CacheWriteKernel<V><<<static_cast<unsigned>(a.tokens), 128, 0, stream>>>(
      static_cast<const V*>(a.k), static_cast<const V*>(a.v), static_cast<V*>(a.k_cache), static_cast<V*>(a.v_cache),
      a.slot_mapping, a.num_blocks * a.block_size, static_cast<int64_t>(row_bytes / sizeof(V)));
}

}  // namespace

void CacheWriteCuda(const CacheWriteArgs& a, cudaStream_t stream) {
  CheckCacheWriteArgs(a);
  if (a.tokens == 0) return;
  if (a.tokens > 0x7fffffffLL) throw std::invalid_argument("cacheWrite: too many tokens for one launch");
  const size_t row = static_cast<size_t>(a.kv_heads * a.head_dim) * DTypeSize(a.dtype);
  const bool a16 = Aligned16(a.k) && Aligned16(a.v) && Aligned16(a.k_cache) && Aligned16(a.v_cache);
  if (row % 16 == 0 && a16) LaunchCacheWrite<uint4>(a, row, stream);
  else if (DTypeSize(a.dtype) == 4) LaunchCacheWrite<uint32_t>(a, row, stream);
  else LaunchCacheWrite<uint16_t>(a, row, stream);
}

void PagedAttentionCuda(const PagedAttentionArgs& a, cudaStream_t stream) {
  CheckPagedAttentionArgs(a);
  if (a.batch == 0) return;
  if (a.batch > 65535 || a.kv_heads > 65535)
    throw std::invalid_argument("pagedAttention: batch and kv_heads must be <= 65535 on CUDA");
  if (a.num_splits > 1024) throw std::invalid_argument("pagedAttention: num_splits must be <= 1024");
  const int64_t capacity = a.max_blocks * a.block_size;
  if (capacity > 0x7fffffffLL || a.num_blocks > 0x7fffffffLL || a.heads * a.queries > 0x7fffffffLL)
    throw std::invalid_argument("pagedAttention: sizes exceed the CUDA kernel's 32-bit indices");
  if (!Aligned16(a.q) || !Aligned16(a.out) || !Aligned16(a.k_cache) || !Aligned16(a.v_cache))
    throw std::invalid_argument("pagedAttention: q, out and the caches must be 16-byte aligned on CUDA");
  if (a.num_splits > 1 && a.workspace == nullptr)
    throw std::invalid_argument("pagedAttention: num_splits > 1 needs a workspace");
  switch (a.dtype) {
    case DType::F32: LaunchAttention<float>(a, stream); break;
    case DType::BF16: LaunchAttention<__nv_bfloat16>(a, stream); break;
    case DType::F16: LaunchAttention<__half>(a, stream); break;
    default: throw std::invalid_argument(std::string("pagedAttention: unsupported dtype ") + DTypeName(a.dtype));
  }
}

}  // namespace aerie
