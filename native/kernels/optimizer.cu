/*
 * Optimizer kernels (see optimizer.h).
 *
 * AdamW is bandwidth-bound: per element it reads p, g, m, v and writes p, m, v and the 16-bit copy
 * (28 bytes with bf16 grads and copy). Each thread handles 4 consecutive elements per iteration with
 * 16-byte loads of p/m/v and 8-byte loads of 16-bit g when every pointer is aligned for it (the
 * caching allocator's blocks are); otherwise, and for the last n % 4 elements, one element at a
 * time. The grid is a few waves of resident blocks that stride over the array. The clip
 * coefficient is read from device memory by each thread, so clipping needs no host sync.
 *
 * Sum of squares: one pass of blocks writing fp64 partial sums to scratch, then one block adding
 * them in a fixed order into the fp32 accumulator: deterministic for a given n and grid.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "allocator.h"
#include "optimizer.h"

namespace aerie {
namespace {

__device__ __forceinline__ float ToF(float v) { return v; }
__device__ __forceinline__ float ToF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToF(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }

// Four consecutive elements, loaded and stored as one access.
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

constexpr int kThreads = 256;

template <typename G, typename C, bool kVec>
__global__ void __launch_bounds__(kThreads) AdamWKernel(float* __restrict__ param,       // (n,)
                                                        const G* __restrict__ grad,      // (n,)
                                                        float* __restrict__ exp_avg,     // (n,)
                                                        float* __restrict__ exp_avg_sq,  // (n,)
                                                        C* __restrict__ copy,            // (n,) or nullptr
                                                        const float* __restrict__ clip_coef,  // () or nullptr
                                                        int64_t n, AdamWConsts c) {
  const float coef = clip_coef ? *clip_coef : 1.0f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;  // elements handled by the vector loop
  if (kVec) {
    const int64_t n4 = n / 4;
    for (int64_t i = tid; i < n4; i += stride) {
      Vec4<float> p = reinterpret_cast<Vec4<float>*>(param)[i];
      Vec4<float> m = reinterpret_cast<Vec4<float>*>(exp_avg)[i];
      Vec4<float> v = reinterpret_cast<Vec4<float>*>(exp_avg_sq)[i];
      const Vec4<G> g = reinterpret_cast<const Vec4<G>*>(grad)[i];
#pragma unroll
      for (int k = 0; k < 4; ++k) AdamWUpdate(c, ToF(g.v[k]) * coef, p.v[k], m.v[k], v.v[k]);
      reinterpret_cast<Vec4<float>*>(param)[i] = p;
      reinterpret_cast<Vec4<float>*>(exp_avg)[i] = m;
      reinterpret_cast<Vec4<float>*>(exp_avg_sq)[i] = v;
      if (copy) {
        Vec4<C> out;
#pragma unroll
        for (int k = 0; k < 4; ++k) out.v[k] = FromF<C>(p.v[k]);
        reinterpret_cast<Vec4<C>*>(copy)[i] = out;
      }
    }
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) {
    float p = param[i], m = exp_avg[i], v = exp_avg_sq[i];
    AdamWUpdate(c, ToF(grad[i]) * coef, p, m, v);
    param[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (copy) copy[i] = FromF<C>(p);
  }
}

// Block-wide fp64 sum; blockDim.x == kThreads. Only thread 0's result is used.
__device__ double BlockSum(double v) {
  __shared__ double partial[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) s += partial[w];
  return s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) SumSquaresPartialKernel(const T* __restrict__ x, int64_t n,
                                                                    double* __restrict__ partial) {
  double s = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = ToF(x[i]);
    s += v * v;
  }
  s = BlockSum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kThreads) SumPartialsKernel(const double* __restrict__ partial, int blocks, float* acc) {
  double s = 0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) s += partial[b];
  s = BlockSum(s);
  if (threadIdx.x == 0) *acc = static_cast<float>(*acc + s);
}

__global__ void GradNormFinishKernel(const float* sum_squares, float* norm) { *norm = sqrtf(*sum_squares); }

__global__ void ClipCoefficientKernel(const float* norm, float max_norm, float* coef) {
  const float c = max_norm / (*norm + 1e-6f);
  *coef = c > 1.0f ? 1.0f : c;  // a NaN norm stays NaN
}

template <typename F>
void DispatchFloat(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::BF16: f(__nv_bfloat16{}); return;
    case DType::F16: f(__half{}); return;
    default: throw std::invalid_argument(std::string(what) + ": expected a floating dtype, got " + DTypeName(t));
  }
}

bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// A few waves of resident blocks on the current device.
int GridFor(int64_t work) {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms <= 0) sms = 132;
  const int64_t needed = (work + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(needed, static_cast<int64_t>(sms) * 16)));
}

}  // namespace

void AdamWStepCuda(const AdamWArgs& a, cudaStream_t stream) {
  CheckAdamWArgs(a);
  if (a.n == 0) return;
  const AdamWConsts c = MakeAdamWConsts(a);
  DispatchFloat(a.grad_type, "adamwStep", [&](auto gt) {
    DispatchFloat(a.model_copy ? a.copy_type : DType::BF16, "adamwStep", [&](auto ct) {
      using G = decltype(gt);
      using C = decltype(ct);
      const bool vec = Aligned(a.param, 16) && Aligned(a.exp_avg, 16) && Aligned(a.exp_avg_sq, 16) &&
                       Aligned(a.grad, 4 * sizeof(G)) && (!a.model_copy || Aligned(a.model_copy, 4 * sizeof(C)));
      const int grid = GridFor(vec ? a.n / 4 + 1 : a.n);
      auto launch = [&](auto kernel) {
        kernel<<<grid, kThreads, 0, stream>>>(a.param, static_cast<const G*>(a.grad), a.exp_avg, a.exp_avg_sq,
                                              static_cast<C*>(a.model_copy), a.clip_coef, a.n, c);
      };
      if (vec) launch(AdamWKernel<G, C, true>);
      else launch(AdamWKernel<G, C, false>);
    });
  });
}

void SumSquaresAccumulateCuda(const void* x, DType x_type, int64_t n, float* acc, int device, cudaStream_t stream) {
  if (n == 0) {
    // Nothing to add, but validate the dtype as the CPU twin does.
    DispatchFloat(x_type, "sumSquares", [](auto) {});
    return;
  }
  const int blocks = GridFor(n);
  DispatchFloat(x_type, "sumSquares", [&](auto xt) {
    using T = decltype(xt);
    double* partial = static_cast<double*>(DeviceAlloc(device, static_cast<size_t>(blocks) * sizeof(double)));
    SumSquaresPartialKernel<T><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(x), n, partial);
    SumPartialsKernel<<<1, kThreads, 0, stream>>>(partial, blocks, acc);
    DeviceFree(device, partial);  // stream-ordered: reused only by later work on this stream
  });
}

void GradNormFinishCuda(const float* sum_squares, float* norm, cudaStream_t stream) {
  GradNormFinishKernel<<<1, 1, 0, stream>>>(sum_squares, norm);
}

void ClipCoefficientCuda(const float* norm, float max_norm, float* coef, cudaStream_t stream) {
  ClipCoefficientKernel<<<1, 1, 0, stream>>>(norm, max_norm, coef);
}

}  // namespace aerie
