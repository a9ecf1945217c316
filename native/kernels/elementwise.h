// Elementwise family: casts, fills, add/mul (same shape or a trailing vector broadcast), scale,
// axpy (gradient accumulation) and sum/max reductions, over flat contiguous storage. All of it is
// memory-bound; the math is fp32 (fp64 for the reductions' accumulators).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// y = x converted. Floating <-> floating (round to nearest even), int32 <-> int64, and int ->
// floating (via float32, so int64 -> bf16 rounds twice). Floating -> int is not offered.
void CastCpu(const void* x, DType x_type,  // (n,)
             void* y, DType y_type,        // (n,)
             int64_t n);
void CastCuda(const void* x, DType x_type, void* y, DType y_type, int64_t n, cudaStream_t stream);
bool CastSupported(DType from, DType to);

// y[:] = value converted to `type` (any dtype; integer types take the integer part).
void FillCpu(void* y,  // (n,)
             DType type, int64_t n, double value);
void FillCuda(void* y, DType type, int64_t n, double value, cudaStream_t stream);
// The bit pattern of `value` stored as `type`, in the low DTypeSize(type) bytes.
uint64_t FillPattern(DType type, double value);

// out = a + b and out = a * b. b holds `nb` elements repeated along a (nb divides n; nb == n is the
// plain same-shape case, nb == N broadcasts an (N,) vector over (M, N)). a, b, out share `type`
// (floating); out may alias a (or b when nb == n).
void AddCpu(const void* a,  // (n,)
            const void* b,  // (nb,)
            void* out,      // (n,)
            DType type, int64_t n, int64_t nb);
void AddCuda(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, cudaStream_t stream);
void MulCpu(const void* a,  // (n,)
            const void* b,  // (nb,)
            void* out,      // (n,)
            DType type, int64_t n, int64_t nb);
void MulCuda(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, cudaStream_t stream);

// out = alpha * x (out may alias x).
void ScaleCpu(const void* x,  // (n,)
              void* out,      // (n,)
              DType type, int64_t n, float alpha);
void ScaleCuda(const void* x, void* out, DType type, int64_t n, float alpha, cudaStream_t stream);

// y += alpha * x, in fp32, rounded once into y's storage. y and x may differ in dtype (an f32
// gradient accumulator fed bf16 gradients).
void AxpyCpu(void* y, DType y_type,        // (n,)
             const void* x, DType x_type,  // (n,)
             int64_t n, float alpha);
void AxpyCuda(void* y, DType y_type, const void* x, DType x_type, int64_t n, float alpha, cudaStream_t stream);

// Whole-tensor reductions into out[0] (float32). fp64 accumulation; a fixed reduction order, so the
// result is deterministic (CPU: fixed-size chunks; CUDA: a grid fixed by n, then a tree). max
// propagates NaN; the max of nothing is -inf, the sum of nothing 0.
void ReduceSumCpu(const void* x,  // (n,)
                  DType type, int64_t n,
                  float* out);  // (1,)
void ReduceSumCuda(const void* x, DType type, int64_t n, float* out, cudaStream_t stream);
void ReduceMaxCpu(const void* x,  // (n,)
                  DType type, int64_t n,
                  float* out);  // (1,)
void ReduceMaxCuda(const void* x, DType type, int64_t n, float* out, cudaStream_t stream);

// Reductions along the last dimension: out[r] = sum_c x[r, c] (or max), float32.
void RowSumCpu(const void* x,  // (rows, cols)
               DType type, int64_t rows, int64_t cols,
               float* out);  // (rows,)
void RowSumCuda(const void* x, DType type, int64_t rows, int64_t cols, float* out, cudaStream_t stream);
void RowMaxCpu(const void* x,  // (rows, cols)
               DType type, int64_t rows, int64_t cols,
               float* out);  // (rows,)
void RowMaxCuda(const void* x, DType type, int64_t rows, int64_t cols, float* out, cudaStream_t stream);

}  // namespace aerie
