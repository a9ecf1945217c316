/*
 * The CUDA kernels of the matmul family (the general GEMM is cuBLASLt's, in matmul_cuda.cc).
 *
 * 1. MatmulGemvCuda: the few-rows x @ W^T of decode (M <= 8 rows of A, B stored [N, K], bf16 or
 *    f16 operands, no transA, one GEMM). Memory-bound: every byte of W is read once, and cuBLASLt's
 *    tiled kernels waste most of their tile at M = 1. One warp per output column n computes all M
 *    rows: its lanes stream W's row n in 16-byte loads (8 elements; L1::no_allocate, since W is
 *    read once) with kUnroll loads in flight each, take the matching 16 bytes of every row of A
 *    through the read-only cache (A is a few KiB, reused by every warp), accumulate in fp32 (FMA),
 *    then reduce across the warp with shuffles; lane r writes row r: C = alpha*acc + beta*C + bias,
 *    rounded once to C's dtype. Needs K % 8 == 0 and 16-byte aligned A and B (then every row of
 *    both is aligned); anything else falls back to cuBLASLt. beta == 0 never reads C.
 *
 * 2. An elementwise epilogue for the cases cuBLASLt does not cover itself:
 *   - k == 0: C = beta * C + bias (the product is an empty sum);
 *   - a bias whose dtype or alignment the BIAS epilogue does not take: cuBLASLt writes C, then
 *     C = C + bias here (tmp = null, beta = 1);
 *   - dtype combinations cuBLASLt lacks (e.g. f32 inputs to a bf16 output): cuBLASLt writes
 *     alpha * A @ B to an fp32 buffer tmp, then C = tmp + beta * C + bias here.
 * One thread per element, grid-stride, 64-bit indices. beta == 0 never reads C.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "gemv_dot.cuh"
#include "matmul.h"

namespace aerie {
namespace {

using gemv::LoadAny;
using gemv::StoreAny;

__global__ void MatmulEpilogueKernel(const float* __restrict__ tmp,  // (batch, m, n) dense, or null
                                     void* c,                        // (batch, m, n), batch stride stride_c
                                     DType c_type, const void* bias,  // (n,) or null
                                     DType bias_type, float beta, int64_t mn, int64_t n, int64_t stride_c,
                                     int64_t total) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / mn, r = idx - b * mn;
    const int64_t ci = b * stride_c + r;
    float v = tmp ? tmp[idx] : 0.f;
    if (beta != 0.f) v += beta * LoadAny(c, ci, c_type);
    if (bias) v += LoadAny(bias, r % n, bias_type);
    StoreAny(c, ci, c_type, v);
  }
}

// ---- few-rows GEMV (1.) ----

constexpr int kGemvWarps = 8;  // warps (output columns) per block
constexpr int kGemvThreads = kGemvWarps * 32;

// 16 bytes of W, read once: bypass L1 so the rows of A stay cached there. volatile: the compiler
// must not speculate it out of the `if` that guards the pipeline's last prefetch (it would read
// past the end of W).
__device__ __forceinline__ uint4 LoadStreaming(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

using gemv::Dot8;
using gemv::Unpack2;

// C[r, n] = alpha * sum_k A[r, k] * W[n, k] + beta * C[r, n] + bias[n] for r < M, one warp per n.
// A: [M, K] dense, W: [N, K] dense, both 16-byte aligned; K = 8 * k8; C: [M, N] dense.
template <typename T, int M>
__global__ void __launch_bounds__(kGemvThreads) GemvKernel(const T* __restrict__ a, const T* __restrict__ w,
                                                           void* c, DType c_type, const void* bias, DType bias_type,
                                                           float alpha, float beta, int64_t n_total, int64_t k8) {
  constexpr int kUnroll = M <= 4 ? 8 : 4;  // 16-byte loads of W in flight per lane
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (n >= n_total) return;  // whole warps only: no barrier or shuffle below involves them
  const uint4* wrow = reinterpret_cast<const uint4*>(w) + n * k8;
  const uint4* x = reinterpret_cast<const uint4*>(a);  // row r at x + r * k8

  float acc[M];
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = 0.f;

  // Full groups of 32 * kUnroll chunks (16 bytes each), software-pipelined: the next group's loads
  // of W are issued before the current group's math, so they stay in flight (the loaded values
  // cross the loop's back edge, which the compiler cannot reorder loads over).
  constexpr int kGroup = 32 * kUnroll;
  const int64_t groups = k8 / kGroup;  // the same for every lane
  if (groups > 0) {
    uint4 cur[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur[u] = LoadStreaming(wrow + lane + 32 * u);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t base = g * kGroup + lane;
      uint4 nxt[kUnroll];
      if (g + 1 < groups) {  // warp-uniform
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) nxt[u] = LoadStreaming(wrow + base + kGroup + 32 * u);
      } else {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) nxt[u] = make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int r = 0; r < M; ++r) Dot8<T>(acc[r], cur[u], __ldg(x + r * k8 + base + 32 * u));
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) cur[u] = nxt[u];
    }
  }
  // The rest (fewer than kGroup chunks): one at a time.
  for (int64_t i = groups * kGroup + lane; i < k8; i += 32) {
    const uint4 wv = LoadStreaming(wrow + i);
#pragma unroll
    for (int r = 0; r < M; ++r) Dot8<T>(acc[r], wv, __ldg(x + r * k8 + i));
  }

#pragma unroll
  for (int r = 0; r < M; ++r) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
  }
  // Every lane now holds every sum; lane r stores row r (static indices: acc stays in registers).
#pragma unroll
  for (int r = 0; r < M; ++r) {
    if (lane == r) {
      const int64_t ci = r * n_total + n;
      float v = alpha * acc[r];
      if (beta != 0.f) v += beta * LoadAny(c, ci, c_type);
      if (bias) v += LoadAny(bias, n, bias_type);
      StoreAny(c, ci, c_type, v);
    }
  }
}

template <typename T, int M>
void LaunchGemvM(const MatmulArgs& p, cudaStream_t stream) {
  const int64_t blocks = (p.n + kGemvWarps - 1) / kGemvWarps;
  GemvKernel<T, M><<<static_cast<unsigned>(blocks), kGemvThreads, 0, stream>>>(
      static_cast<const T*>(p.a), static_cast<const T*>(p.b), p.c, p.c_type, p.bias, p.bias_type, p.alpha, p.beta, p.n,
      p.k / 8);
}

template <typename T>
void LaunchGemv(const MatmulArgs& p, int64_t m, cudaStream_t stream) {
  static_assert(kGemvMaxRows == 8, "one case per row count");
  switch (m) {
    case 1: LaunchGemvM<T, 1>(p, stream); break;
    case 2: LaunchGemvM<T, 2>(p, stream); break;
    case 3: LaunchGemvM<T, 3>(p, stream); break;
    case 4: LaunchGemvM<T, 4>(p, stream); break;
    case 5: LaunchGemvM<T, 5>(p, stream); break;
    case 6: LaunchGemvM<T, 6>(p, stream); break;
    case 7: LaunchGemvM<T, 7>(p, stream); break;
    default: LaunchGemvM<T, 8>(p, stream); break;  // m == 8 (the caller checked m <= 8)
  }
}

bool GemvDisabled() {
  static const bool off = [] {
    const char* e = std::getenv("AERIE_NO_GEMV");
    return e && *e && std::string(e) != "0";
  }();
  return off;
}

}  // namespace

bool MatmulGemvCuda(const MatmulArgs& p, cudaStream_t stream) {
  if (GemvDisabled()) return false;
  if (p.trans_a || !p.trans_b) return false;
  if (p.ab_type != DType::BF16 && p.ab_type != DType::F16) return false;
  if (!IsFloating(p.c_type) || (p.bias && !IsFloating(p.bias_type))) return false;
  // One GEMM of m rows; a dense batch sharing one B is the same GEMM over batch*m rows.
  int64_t m = p.m;
  if (p.batch != 1) {
    if (!(p.batch > 1 && p.stride_b == 0 && p.stride_a == p.m * p.k && p.stride_c == p.m * p.n)) return false;
    m = p.batch * p.m;
  }
  if (m < 1 || m > kGemvMaxRows || p.n < 1 || p.k < 8 || p.k % 8 != 0) return false;
  if (p.n > 0x7fffffffLL * kGemvWarps / 2) return false;  // grid.x limit, far beyond any real N
  if ((reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b)) % 16 != 0) return false;
  if (p.ab_type == DType::BF16) LaunchGemv<__nv_bfloat16>(p, m, stream);
  else LaunchGemv<__half>(p, m, stream);
  return true;
}

void MatmulEpilogueCuda(const float* tmp, void* c, DType c_type, const void* bias, DType bias_type, float beta,
                        int64_t batch, int64_t m, int64_t n, int64_t stride_c, cudaStream_t stream) {
  if (!IsFloating(c_type) || (bias && !IsFloating(bias_type)))
    throw std::invalid_argument("matmul epilogue: c and bias must have floating dtypes");
  if (batch < 0 || m < 0 || n < 0 || (batch > 1 && stride_c < m * n))
    throw std::invalid_argument("matmul epilogue: bad sizes or C stride");
  const int64_t total = batch * m * n;
  if (total == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65536);
  MatmulEpilogueKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(tmp, c, c_type, bias, bias_type, beta,
                                                                                m * n, n, stride_c, total);
}

}  // namespace aerie
