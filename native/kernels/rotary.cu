/*
 * Rotary position embedding on CUDA (NeoX / Hugging Face rotate_half layout; see rotary.h).
 *
 * One block per token. The block first computes the token's rot_dim/2 (cos, sin) pairs into shared
 * memory (rotary::CosSin of rotary_math.h: the fp32 angle float(pos) * inv_freq[j], its cos and sin
 * correctly rounded from fp64, times attention_scaling), then
 * its threads stride over (head, pair) items: each item reads x[j] and x[j + rot/2] of one head and
 * writes both outputs, so out may alias x (each element is read and written by the same thread).
 * Elements past rot_dim (partial rotary) are copied by their own items. Forward and backward are the
 * same kernel: the backward pass rotates by the negative angle (sin negated).
 *
 * Every floating-point step is the CPU twin's (rotary_math.h): no library sincosf, whose last bit
 * differs from glibc's, and no a*b - c*d left for nvcc to contract into an FMA of its choosing, so
 * the outputs equal the twin's bit for bit in every dtype.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "rotary.h"
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

constexpr int kThreads = 256;

template <typename T>
__global__ void RotaryKernel(const T* x, T* out, const int32_t* positions, const float* inv_freq, int heads, int head_dim,
                             int rot_dim, float scaling, bool inverse) {
  extern __shared__ float smem[];  // cos[half], sin[half]
  const int half = rot_dim / 2;
  float* cs = smem;
  float* sn = smem + half;
  const int64_t t = blockIdx.x;
  const int32_t pos = positions[t];
  for (int j = threadIdx.x; j < half; j += blockDim.x) rotary::CosSin(pos, inv_freq[j], scaling, inverse, &cs[j], &sn[j]);
  __syncthreads();
  // Per head: `half` pair items then head_dim - rot_dim pass-through items.
  const int per_head = half + (head_dim - rot_dim);
  const int64_t row = t * heads * static_cast<int64_t>(head_dim);
  for (int item = threadIdx.x; item < heads * per_head; item += blockDim.x) {
    const int h = item / per_head, r = item - h * per_head;
    const int64_t base = row + static_cast<int64_t>(h) * head_dim;
    if (r < half) {
      const float x1 = ToF(x[base + r]), x2 = ToF(x[base + r + half]);
      out[base + r] = FromF<T>(rotary::RotateFirst(x1, x2, cs[r], sn[r]));
      out[base + r + half] = FromF<T>(rotary::RotateSecond(x1, x2, cs[r], sn[r]));
    } else {
      const int64_t i = base + rot_dim + (r - half);
      out[i] = x[i];
    }
  }
}

template <typename T>
void Launch(const RotaryArgs& a, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(a.rot_dim) * sizeof(float);
  RotaryKernel<T><<<static_cast<unsigned>(a.tokens), kThreads, smem, stream>>>(
      static_cast<const T*>(a.x), static_cast<T*>(a.out), a.positions, a.inv_freq, static_cast<int>(a.heads),
      static_cast<int>(a.head_dim), static_cast<int>(a.rot_dim), a.attention_scaling, a.inverse);
}

}  // namespace

void RotaryCuda(const RotaryArgs& a, cudaStream_t stream) {
  CheckRotaryArgs(a);
  if (a.tokens == 0 || a.heads == 0) return;
  if (a.tokens > 0x7fffffffLL) throw std::invalid_argument("rotary: too many tokens for one launch: " + std::to_string(a.tokens));
  if (a.heads * a.head_dim > 0x7fffffffLL || a.rot_dim > 48 * 1024 / 4)
    throw std::invalid_argument("rotary: heads*head_dim or rot_dim too large");
  switch (a.dtype) {
    case DType::F32: Launch<float>(a, stream); break;
    case DType::BF16: Launch<__nv_bfloat16>(a, stream); break;
    case DType::F16: Launch<__half>(a, stream); break;
    default: throw std::invalid_argument(std::string("rotary: unsupported dtype ") + DTypeName(a.dtype));
  }
}

}  // namespace aerie
