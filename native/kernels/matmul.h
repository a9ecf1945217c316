// Matrix multiply, row-major: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] (+ bias broadcast over
// rows). op(A) is [M, K]: A is stored [M, K], or [K, M] when trans_a. op(B) is [K, N]: B is stored
// [K, N], or [N, K] when trans_b (the nn.Linear weight layout). Strides are in elements between
// consecutive batch entries (0 broadcasts one matrix over the batch). fp32 accumulation always.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

struct MatmulArgs {
  const void* a = nullptr;     // (batch, M, K) or (batch, K, M) when trans_a
  const void* b = nullptr;     // (batch, K, N) or (batch, N, K) when trans_b
  void* c = nullptr;           // (batch, M, N)
  const void* bias = nullptr;  // (N,) or nullptr
  DType ab_type = DType::F32;  // A and B share a dtype: f32, bf16 or f16
  DType c_type = DType::F32;   // f32, bf16 or f16
  DType bias_type = DType::F32;
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements; defaults filled by the op layer
  float alpha = 1.0f, beta = 0.0f;
};

// Plain C++ twin (matmul_cpu.cc): packed, cache-blocked, threaded; fp32 math on any float storage.
// beta == 0 never reads C.
void MatmulCpu(const MatmulArgs& args);
// cuBLASLt (matmul_cuda.cc; the library is opened at the first call, which throws a clear error
// when it is missing) on `stream` of `device`, which must be current. Enqueues only: no host sync.
// CUBLAS_COMPUTE_32F, so f32 inputs are multiplied in fp32 (no TF32).
void MatmulCuda(const MatmulArgs& args, int device, cudaStream_t stream);

// Part of MatmulCuda (matmul.cu): the few-rows GEMV of decode, C = alpha * A @ B^T + beta * C + bias
// for A [m, K] (or a dense batch sharing B, as batch*m rows) with m <= kGemvMaxRows, B stored [N, K]
// (trans_b, no trans_a), bf16 or f16 operands, K % 8 == 0, A and B 16-byte aligned; any floating C
// and bias dtype. Enqueues one kernel on `stream` and returns true, or returns false without doing
// anything when the problem is outside that set (then cuBLASLt runs it). Set AERIE_NO_GEMV=1 to
// always return false. No allocation, no host sync: capturable in a CUDA graph.
constexpr int64_t kGemvMaxRows = 8;
bool MatmulGemvCuda(const MatmulArgs& args, cudaStream_t stream);

// Part of MatmulCuda (matmul.cu), for what cuBLASLt does not do itself:
// c[b] = (tmp ? tmp[b] : 0) + beta * c[b] + bias for every batch entry b; beta == 0 never reads c.
void MatmulEpilogueCuda(const float* tmp,  // (batch, m, n) dense, or nullptr
                        void* c,           // (batch, m, n), entries stride_c elements apart
                        DType c_type,
                        const void* bias,  // (n,) or nullptr
                        DType bias_type, float beta, int64_t batch, int64_t m, int64_t n, int64_t stride_c,
                        cudaStream_t stream);

}  // namespace aerie
