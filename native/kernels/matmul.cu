/*
 * The one CUDA kernel of the matmul family: an elementwise epilogue for the cases cuBLASLt does
 * not cover itself (the GEMM is cuBLASLt's, in matmul_cuda.cc):
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
#include <stdexcept>
#include <string>

#include "matmul.h"

namespace aerie {
namespace {

__device__ __forceinline__ float LoadAny(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void StoreAny(void* p, int64_t i, DType t, float v) {
  switch (t) {
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

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

}  // namespace

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
