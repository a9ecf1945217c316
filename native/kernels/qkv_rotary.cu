/*
 * qkv split + rotary on CUDA (see qkv_rotary.h).
 *
 * One block per token. The block computes the token's rot_dim/2 (cos, sin) pairs once into shared
 * memory (rotary::CosSin, as the rotary kernel does, but shared by q and k), then its threads stride
 * over items of V consecutive elements (16-byte vectors where the sizes and addresses allow, else
 * V = 1): a rotated item reads x[j..j+V) and x[j+half..j+half+V) of one q or k head and writes both
 * rotated vectors; a pass-through item (partial rotary) or a v item copies V elements.
 * The per-element arithmetic is rotary_math.h's, so q and k equal rotary()'s bit for bit.
 *
 * qkv split + q/k norm + rotary + paged cache write (QkvRotaryCache), built for batch-1 decode,
 * where the whole op is a few microseconds of latency rather than bandwidth.
 *
 * A head row (q, k or v of one token) belongs to a group of G lanes of one warp, G a power of two
 * <= 32 (the q/k row's item count rounded up: 8 lanes for bf16 head_dim 128, 16 for f32), so a warp
 * holds 32 / G rows and a 128-thread block 128 / G rows of one token. Items are as above (a rotated
 * item is V elements at j and their partners at j + half, V = 16 bytes of elements where sizes and
 * addresses allow, else 1), lane m of the group taking items m, m + G, ...; a v row's items are plain
 * vectors copied to v_cache. Llama-8B decode (T = 1, 32 + 8 + 8 heads of 128, bf16) is 384 lanes in
 * 3 blocks, each lane one 16-byte pair (or two v vectors).
 *
 * Per block: PdlAllowDependents at once; the constants (the first inv_freq entry of this thread's
 * table slot, the first item's norm weights) are loaded before PdlWaitForPrimary, everything the
 * previous kernels produce (qkv, positions, slot_mapping) after it (plain loads, not the read-only
 * path), and every write comes after it. The slot gates only the stores, so the slot, position and
 * qkv loads are in flight together. The lane's q/k items (the first 16 floats' worth; longer rows are re-read) are loaded before the
 * token's (cos, sin) table is computed into shared memory (blocks with only v rows skip it), hiding
 * the load latency behind it. The norm's sum of squares is this lane's items in order (fp32 fmas),
 * then an xor-shuffle tree over the G lanes: norm.cu's formula and roundings, but not its order of
 * additions, so rstd may differ from rmsnorm's in the last bits (see qkv_rotary.h).
 *
 * Slots: -1 and any slot outside [0, num_blocks * block_size) skip the token's k and v rows (int64
 * addressing; nothing out of bounds is touched); its q rows are written regardless.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "pdl.h"
#include "qkv_rotary.h"
#include "rotary_math.h"

namespace aerie {
namespace {

template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

constexpr int kThreads = 256;

// Where item `item` of token row `src` reads and writes: a rotated pair (a at j0, b at j0 + half),
// a pass-through vector or a v vector (a only).
template <typename T>
struct Item {
  const T* a;
  const T* b;  // nullptr: a copy item
  T* d;        // destination of a (b's rotated partner goes to d + half)
  int j0;      // first pair index (rotated items)
};

template <typename T, int V>
__device__ __forceinline__ Item<T> Locate(int item, const T* src, T* q, T* k, T* v, int64_t t, int heads, int kv_heads,
                                          int head_dim, int half, int rot_items, int per_head, int qk_items) {
  const int rot_dim = 2 * half;
  if (item < qk_items) {
    const int h = item / per_head, r = item - h * per_head;
    const T* s = src + static_cast<int64_t>(h) * head_dim;
    T* d = h < heads ? q + (t * heads + h) * static_cast<int64_t>(head_dim)
                     : k + (t * kv_heads + (h - heads)) * static_cast<int64_t>(head_dim);
    if (r < rot_items) return {s + r * V, s + r * V + half, d + r * V, r * V};
    const int off = rot_dim + (r - rot_items) * V;
    return {s + off, nullptr, d + off, 0};
  }
  const int off = (item - qk_items) * V;
  return {src + static_cast<int64_t>(heads + kv_heads) * head_dim + off, nullptr,
          v + t * static_cast<int64_t>(kv_heads) * head_dim + off, 0};
}

template <typename T, int V>
__device__ __forceinline__ void Finish(const Item<T>& it, const Vec<T, V>& a, const Vec<T, V>& b, const float* cs,
                                       const float* sn, int half) {
  using Vt = Vec<T, V>;
  if (!it.b) {
    *reinterpret_cast<Vt*>(it.d) = a;
    return;
  }
  Vt oa, ob;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float x1 = ToF(a.v[i]), x2 = ToF(b.v[i]), c = cs[it.j0 + i], s = sn[it.j0 + i];
    oa.v[i] = FromF<T>(rotary::RotateFirst(x1, x2, c, s));
    ob.v[i] = FromF<T>(rotary::RotateSecond(x1, x2, c, s));
  }
  *reinterpret_cast<Vt*>(it.d) = oa;
  *reinterpret_cast<Vt*>(it.d + half) = ob;
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) QkvRotaryKernel(const T* __restrict__ qkv, T* __restrict__ q, T* __restrict__ k,
                                                            T* __restrict__ v, const int32_t* __restrict__ positions,
                                                            const float* __restrict__ inv_freq, int heads, int kv_heads,
                                                            int head_dim, int rot_dim, float scaling) {
  using Vt = Vec<T, V>;
  extern __shared__ float smem[];  // cos[half], sin[half]
  const int half = rot_dim / 2;
  float* cs = smem;
  float* sn = smem + half;
  const int64_t t = blockIdx.x;
  const int rot_items = half / V;                             // rotated vector pairs per head
  const int per_head = rot_items + (head_dim - rot_dim) / V;  // plus pass-through vectors
  const int qk_items = (heads + kv_heads) * per_head;
  const int total = qk_items + kv_heads * head_dim / V;
  const T* src = qkv + t * (static_cast<int64_t>(heads + 2 * kv_heads) * head_dim);
  // The first item's loads are issued before the (cos, sin) table is computed, hiding its latency.
  const int first = threadIdx.x;
  Item<T> it0{};
  Vt a0{}, b0{};
  if (first < total) {
    it0 = Locate<T, V>(first, src, q, k, v, t, heads, kv_heads, head_dim, half, rot_items, per_head, qk_items);
    a0 = *reinterpret_cast<const Vt*>(it0.a);
    if (it0.b) b0 = *reinterpret_cast<const Vt*>(it0.b);
  }
  const int32_t pos = positions[t];
  for (int j = threadIdx.x; j < half; j += blockDim.x) rotary::CosSin(pos, inv_freq[j], scaling, false, &cs[j], &sn[j]);
  __syncthreads();
  if (first < total) Finish<T, V>(it0, a0, b0, cs, sn, half);
  for (int item = first + blockDim.x; item < total; item += blockDim.x) {
    const Item<T> it = Locate<T, V>(item, src, q, k, v, t, heads, kv_heads, head_dim, half, rot_items, per_head, qk_items);
    const Vt a = *reinterpret_cast<const Vt*>(it.a);
    Vt b{};
    if (it.b) b = *reinterpret_cast<const Vt*>(it.b);
    Finish<T, V>(it, a, b, cs, sn, half);
  }
}

bool Aligned(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

template <typename T>
void Launch(const QkvRotaryArgs& a, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(a.rot_dim) * sizeof(float);
  constexpr int kV = static_cast<int>(16 / sizeof(T));
  const bool vec = (a.rot_dim / 2) % kV == 0 && a.head_dim % kV == 0 && Aligned(a.qkv, 16) && Aligned(a.q, 16) &&
                   Aligned(a.k, 16) && Aligned(a.v, 16);
  const unsigned grid = static_cast<unsigned>(a.tokens);
  const auto* x = static_cast<const T*>(a.qkv);
  auto* q = static_cast<T*>(a.q);
  auto* k = static_cast<T*>(a.k);
  auto* v = static_cast<T*>(a.v);
  const int heads = static_cast<int>(a.heads), kv = static_cast<int>(a.kv_heads), hd = static_cast<int>(a.head_dim),
            rot = static_cast<int>(a.rot_dim);
  if (vec) {
    QkvRotaryKernel<T, kV><<<grid, kThreads, smem, stream>>>(x, q, k, v, a.positions, a.inv_freq, heads, kv, hd, rot,
                                                             a.attention_scaling);
  } else {
    QkvRotaryKernel<T, 1><<<grid, kThreads, smem, stream>>>(x, q, k, v, a.positions, a.inv_freq, heads, kv, hd, rot,
                                                            a.attention_scaling);
  }
}

// ---- QkvRotaryCache ------------------------------------------------------------------------------

constexpr int kCacheThreads = 128;

struct CacheParams {
  int heads, kv_heads, head_dim, rot_dim;
  int group;             // lanes per head row: a power of two <= 32, so groups never straddle warps
  int rows_per_block;    // kCacheThreads / group
  int blocks_per_token;  // ceil((heads + 2 kv_heads) / rows_per_block)
  int64_t capacity;      // num_blocks * block_size: valid slots are [0, capacity)
  float scaling, eps;
};

// V elements of T (16 bytes or one element) widened to fp32.
template <typename T, int V>
__device__ __forceinline__ void LoadVec(const T* p, float (&out)[V]) {
  const Vec<T, V> v = *reinterpret_cast<const Vec<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = ToF(v.v[i]);
}

// V norm weights in chunks of at most 16 bytes (f32 weights beside bf16 activations are 32 bytes).
template <typename TW, int V>
__device__ __forceinline__ void LoadW(const TW* p, float (&out)[V]) {
  constexpr int kChunk = sizeof(TW) * V > 16 ? static_cast<int>(16 / sizeof(TW)) : V;
#pragma unroll
  for (int c = 0; c < V / kChunk; ++c) {
    const Vec<TW, kChunk> v = *reinterpret_cast<const Vec<TW, kChunk>*>(p + c * kChunk);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) out[c * kChunk + i] = ToF(v.v[i]);
  }
}

template <typename T, int V>
__device__ __forceinline__ void StoreVec(T* p, const float (&in)[V]) {
  Vec<T, V> v;
#pragma unroll
  for (int i = 0; i < V; ++i) v.v[i] = FromF<T>(in[i]);
  *reinterpret_cast<Vec<T, V>*>(p) = v;
}

// Item i of a q/k row: pair items first (a at i V, b at half + i V), then the pass-through vectors
// (a at rot_dim + (i - n_pairs) V). Returns a's offset in the row.
__device__ __forceinline__ int ItemA(int i, int n_pairs, int rot_dim, int v) { return i < n_pairs ? i * v : rot_dim + (i - n_pairs) * v; }

// Loads q/k item i of the row at src (b only for a pair).
template <typename T, int V>
__device__ __forceinline__ void LoadItem(const T* src, int i, int n_pairs, int half, float (&a)[V], float (&b)[V]) {
  LoadVec<T, V>(src + ItemA(i, n_pairs, 2 * half, V), a);
  if (i < n_pairs) LoadVec<T, V>(src + half + i * V, b);
}

// The norm weights of q/k item i (wb only for a pair).
template <typename TW, int V>
__device__ __forceinline__ void LoadItemW(const TW* w, int i, int n_pairs, int half, float (&wa)[V], float (&wb)[V]) {
  LoadW<TW, V>(w + ItemA(i, n_pairs, 2 * half, V), wa);
  if (i < n_pairs) LoadW<TW, V>(w + half + i * V, wb);
}

// Norms (when `norm`) and rotates q/k item i, storing it into the row at dst.
template <typename T, int V>
__device__ __forceinline__ void EmitItem(T* dst, int i, int n_pairs, int half, float (&a)[V], float (&b)[V], bool norm, float r,
                                         const float (&wa)[V], const float (&wb)[V], const float* cs, const float* sn) {
  const bool pair = i < n_pairs;
  if (norm) {
    // norm.cu's y = h * rstd * w rounded to T: the rotation sees what rmsnorm would have stored.
#pragma unroll
    for (int e = 0; e < V; ++e) {
      a[e] = ToF(FromF<T>(rotary::MulF(rotary::MulF(a[e], r), wa[e])));
      if (pair) b[e] = ToF(FromF<T>(rotary::MulF(rotary::MulF(b[e], r), wb[e])));
    }
  }
  const int j = ItemA(i, n_pairs, 2 * half, V);
  if (!pair) {
    StoreVec<T, V>(dst + j, a);
    return;
  }
  float oa[V], ob[V];
#pragma unroll
  for (int e = 0; e < V; ++e) {
    oa[e] = rotary::RotateFirst(a[e], b[e], cs[j + e], sn[j + e]);
    ob[e] = rotary::RotateSecond(a[e], b[e], cs[j + e], sn[j + e]);
  }
  StoreVec<T, V>(dst + j, oa);
  StoreVec<T, V>(dst + half + j, ob);
}

// qkv, positions and slot_mapping are not __restrict__: that would let nvcc read them through the
// non-coherent read-only path (ld.global.nc), which is only for data nothing writes while the kernel
// runs, and under PDL the previous kernel may still be writing them until PdlWaitForPrimary. The
// constants (inv_freq, the norm weights) are.
template <typename T, typename TW, int V>
__global__ void __launch_bounds__(kCacheThreads)
    QkvRotaryCacheKernel(const T* qkv, T* __restrict__ q, T* __restrict__ k_cache, T* __restrict__ v_cache, const int32_t* positions,
                         const int32_t* slot_mapping, const float* __restrict__ inv_freq, const TW* __restrict__ q_norm,
                         const TW* __restrict__ k_norm, CacheParams p) {
  // Items a lane keeps in registers between the norm's two passes: 16 floats of a and b.
  constexpr int kCached = V >= 8 ? 1 : 8 / V;
  extern __shared__ float smem[];  // cos[half], sin[half]
  const int half = p.rot_dim / 2, hd = p.head_dim;
  float* cs = smem;
  float* sn = smem + half;
  const int qk_rows = p.heads + p.kv_heads, rows = qk_rows + p.kv_heads;
  const int64_t t = blockIdx.x / p.blocks_per_token;
  const int first_row = static_cast<int>(blockIdx.x % p.blocks_per_token) * p.rows_per_block;
  const int row = first_row + static_cast<int>(threadIdx.x) / p.group;
  const int member = static_cast<int>(threadIdx.x) % p.group;  // groups are aligned lane ranges of a warp
  const bool live = row < rows;
  const bool is_q = row < p.heads, is_k = !is_q && row < qk_rows, is_v = live && row >= qk_rows;
  const bool rotates = first_row < qk_rows;  // the block has q/k rows, so it needs the table (block-uniform)
  const bool any_norm = q_norm != nullptr || k_norm != nullptr;  // kernel-uniform: every lane joins the shuffles
  const int n_pairs = half / V;
  const int n_items = !live ? 0 : is_v ? hd / V : n_pairs + (hd - p.rot_dim) / V;
  const TW* w = is_q ? q_norm : is_k ? k_norm : nullptr;

  PdlAllowDependents();
  // Constants, read while the previous kernel may still run: this thread's first table entry's
  // frequency and its first item's norm weights.
  float f0 = 0.f;
  if (rotates && static_cast<int>(threadIdx.x) < half) f0 = inv_freq[threadIdx.x];
  float wa0[V], wb0[V];
#pragma unroll
  for (int e = 0; e < V; ++e) wa0[e] = wb0[e] = 0.f;
  if (w && member < n_items) LoadItemW<TW, V>(w, member, n_pairs, half, wa0, wb0);

  PdlWaitForPrimary();
  // The loads below are independent of each other (the slot gates only the stores), so a lane's
  // slot, position and qkv loads are all in flight at once.
  const int32_t slot = slot_mapping[t];
  const int32_t pos = rotates ? positions[t] : 0;
  const bool to_cache = slot >= 0 && static_cast<int64_t>(slot) < p.capacity;
  const T* src = qkv + (t * rows + (live ? row : 0)) * static_cast<int64_t>(hd);
  if (is_v) {
    T* dst = v_cache + (static_cast<int64_t>(to_cache ? slot : 0) * p.kv_heads + (row - qk_rows)) * hd;
    // Two vectors loaded before either is stored (qkv may alias the cache as far as nvcc knows).
    for (int i = member; i < n_items; i += 2 * p.group) {
      const bool two = i + p.group < n_items;
      const Vec<T, V> x0 = *reinterpret_cast<const Vec<T, V>*>(src + i * V);
      Vec<T, V> x1{};
      if (two) x1 = *reinterpret_cast<const Vec<T, V>*>(src + (i + p.group) * V);
      if (to_cache) {
        *reinterpret_cast<Vec<T, V>*>(dst + i * V) = x0;
        if (two) *reinterpret_cast<Vec<T, V>*>(dst + (i + p.group) * V) = x1;
      }
    }
  }
  // q and k rows are read whatever the slot (a padded token's k row is read and dropped).
  const bool qk = is_q || is_k;
  const bool norm = qk && w != nullptr;
  // This lane's first items, loaded before the table so that their latency hides behind it.
  float a[kCached][V], b[kCached][V];
#pragma unroll
  for (int c = 0; c < kCached; ++c) {
    const int i = member + c * p.group;
    if (qk && i < n_items) LoadItem<T, V>(src, i, n_pairs, half, a[c], b[c]);
  }
  if (rotates) {
    for (int j = threadIdx.x; j < half; j += blockDim.x)
      rotary::CosSin(pos, j == static_cast<int>(threadIdx.x) ? f0 : inv_freq[j], p.scaling, false, &cs[j], &sn[j]);
    __syncthreads();
  }

  float r = 1.f;
  if (any_norm) {
    float ss = 0.f;
    if (norm) {
#pragma unroll
      for (int c = 0; c < kCached; ++c) {
        const int i = member + c * p.group;
        if (i < n_items) {
#pragma unroll
          for (int e = 0; e < V; ++e) ss = __fmaf_rn(a[c][e], a[c][e], ss);
          if (i < n_pairs) {
#pragma unroll
            for (int e = 0; e < V; ++e) ss = __fmaf_rn(b[c][e], b[c][e], ss);
          }
        }
      }
      for (int i = member + kCached * p.group; i < n_items; i += p.group) {  // rows longer than the registers hold
        float x[V], y[V];
        LoadItem<T, V>(src, i, n_pairs, half, x, y);
#pragma unroll
        for (int e = 0; e < V; ++e) ss = __fmaf_rn(x[e], x[e], ss);
        if (i < n_pairs) {
#pragma unroll
          for (int e = 0; e < V; ++e) ss = __fmaf_rn(y[e], y[e], ss);
        }
      }
    }
    for (int o = p.group >> 1; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    r = 1.0f / sqrtf(ss / static_cast<float>(hd) + p.eps);  // norm.cu's rstd expression
  }

  // q rows always; k rows only when the token has a slot in the cache.
  if (is_q || (is_k && to_cache)) {
    T* dst = is_q ? q + (t * p.heads + row) * static_cast<int64_t>(hd)
                  : k_cache + (static_cast<int64_t>(slot) * p.kv_heads + (row - p.heads)) * hd;
#pragma unroll
    for (int c = 0; c < kCached; ++c) {
      const int i = member + c * p.group;
      if (i < n_items) {
        if (c == 0) {
          EmitItem<T, V>(dst, i, n_pairs, half, a[c], b[c], norm, r, wa0, wb0, cs, sn);
        } else {
          float wa[V], wb[V];
          if (norm) LoadItemW<TW, V>(w, i, n_pairs, half, wa, wb);
          EmitItem<T, V>(dst, i, n_pairs, half, a[c], b[c], norm, r, wa, wb, cs, sn);
        }
      }
    }
    for (int i = member + kCached * p.group; i < n_items; i += p.group) {
      float x[V], y[V], wa[V], wb[V];
      LoadItem<T, V>(src, i, n_pairs, half, x, y);
      if (norm) LoadItemW<TW, V>(w, i, n_pairs, half, wa, wb);
      EmitItem<T, V>(dst, i, n_pairs, half, x, y, norm, r, wa, wb, cs, sn);
    }
  }
}

template <typename T, typename TW>
void LaunchCache(const QkvRotaryCacheArgs& a, cudaStream_t stream) {
  constexpr int kV = static_cast<int>(16 / sizeof(T));
  const bool vec = (a.rot_dim / 2) % kV == 0 && a.head_dim % kV == 0 && Aligned(a.qkv, 16) && Aligned(a.q, 16) &&
                   Aligned(a.k_cache, 16) && Aligned(a.v_cache, 16) && Aligned(a.q_norm, 16) && Aligned(a.k_norm, 16);
  const int v = vec ? kV : 1;
  const int64_t items = a.rot_dim / 2 / v + (a.head_dim - a.rot_dim) / v;  // of a q/k row
  int group = 1;
  while (group < items && group < 32) group *= 2;
  CacheParams p;
  p.heads = static_cast<int>(a.heads);
  p.kv_heads = static_cast<int>(a.kv_heads);
  p.head_dim = static_cast<int>(a.head_dim);
  p.rot_dim = static_cast<int>(a.rot_dim);
  p.group = group;
  p.rows_per_block = kCacheThreads / group;
  p.blocks_per_token = static_cast<int>((a.heads + 2 * a.kv_heads + p.rows_per_block - 1) / p.rows_per_block);
  p.capacity = a.num_blocks * a.block_size;
  p.scaling = a.attention_scaling;
  p.eps = a.eps;
  const int64_t grid = a.tokens * p.blocks_per_token;
  if (grid > 0x7fffffffLL) throw std::invalid_argument("qkvRotaryCache: too many tokens for one launch: " + std::to_string(a.tokens));
  const size_t smem = static_cast<size_t>(a.rot_dim) * sizeof(float);
  const auto* x = static_cast<const T*>(a.qkv);
  auto* q = static_cast<T*>(a.q);
  auto* kc = static_cast<T*>(a.k_cache);
  auto* vc = static_cast<T*>(a.v_cache);
  const auto* qn = static_cast<const TW*>(a.q_norm);
  const auto* kn = static_cast<const TW*>(a.k_norm);
  const dim3 blocks(static_cast<unsigned>(grid)), threads(kCacheThreads);
  if (vec) {
    LaunchPdl(QkvRotaryCacheKernel<T, TW, kV>, blocks, threads, smem, stream, x, q, kc, vc, a.positions, a.slot_mapping, a.inv_freq,
              qn, kn, p);
  } else {
    LaunchPdl(QkvRotaryCacheKernel<T, TW, 1>, blocks, threads, smem, stream, x, q, kc, vc, a.positions, a.slot_mapping, a.inv_freq,
              qn, kn, p);
  }
}

}  // namespace

void QkvRotaryCuda(const QkvRotaryArgs& a, cudaStream_t stream) {
  CheckQkvRotaryArgs(a);
  if (a.tokens == 0) return;
  if (a.tokens > 0x7fffffffLL) throw std::invalid_argument("qkvRotary: too many tokens for one launch: " + std::to_string(a.tokens));
  if ((a.heads + 2 * a.kv_heads) * a.head_dim > 0x7fffffffLL || a.rot_dim > 48 * 1024 / 4)
    throw std::invalid_argument("qkvRotary: (heads + 2 kv_heads) * head_dim or rot_dim too large");
  switch (a.dtype) {
    case DType::F32: Launch<float>(a, stream); break;
    case DType::BF16: Launch<__nv_bfloat16>(a, stream); break;
    case DType::F16: Launch<__half>(a, stream); break;
    default: throw std::invalid_argument(std::string("qkvRotary: unsupported dtype ") + DTypeName(a.dtype));
  }
}

void QkvRotaryCacheCuda(const QkvRotaryCacheArgs& a, cudaStream_t stream) {
  CheckQkvRotaryCacheArgs(a);
  if (a.tokens == 0) return;
  if ((a.heads + 2 * a.kv_heads) * a.head_dim > 0x7fffffffLL || a.rot_dim > 48 * 1024 / 4)
    throw std::invalid_argument("qkvRotaryCache: (heads + 2 kv_heads) * head_dim or rot_dim too large");
  const bool norm = a.q_norm || a.k_norm;
  switch (a.dtype) {
    case DType::F32: LaunchCache<float, float>(a, stream); break;
    case DType::BF16:
      if (norm && a.w_dtype == DType::F32) LaunchCache<__nv_bfloat16, float>(a, stream);
      else LaunchCache<__nv_bfloat16, __nv_bfloat16>(a, stream);
      break;
    case DType::F16: LaunchCache<__half, __half>(a, stream); break;  // never with a norm (CheckQkvRotaryCacheArgs)
    default: throw std::invalid_argument(std::string("qkvRotaryCache: unsupported dtype ") + DTypeName(a.dtype));
  }
}

}  // namespace aerie
