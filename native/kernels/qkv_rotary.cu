/*
 * qkv split + rotary on CUDA (see qkv_rotary.h).
 *
 * One block per token. The block computes the token's rot_dim/2 (cos, sin) pairs once into shared
 * memory (rotary::CosSin, as the rotary kernel does, but shared by q and k), then its threads stride
 * over items of V consecutive elements (16-byte vectors where the sizes and addresses allow, else
 * V = 1): a rotated item reads x[j..j+V) and x[j+half..j+half+V) of one q or k head and writes both
 * rotated vectors; a pass-through item (partial rotary) or a v item copies V elements.
 * The per-element arithmetic is rotary_math.h's, so q and k equal rotary()'s bit for bit.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

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

}  // namespace aerie
