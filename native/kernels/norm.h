// RMSNorm over the last dimension, plain or fused with the residual add that precedes it:
//   h = x (+ residual),  rstd = 1 / sqrt(mean(h^2) + eps),  y = h * rstd * w.
// Qwen3's q/k-norm is the same op with rows = tokens * heads, cols = head_dim. x, residual, h, y, dy,
// dh_in and dx share x_type (f32 or bf16); w is x_type or f32; rstd and dw are f32. fp32 math.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// When `residual` is given, h = x + residual is rounded to x_type, written to h_out (the new
// residual stream) and normalised; otherwise x is normalised and h_out is unused (nullptr).
void RmsNormCpu(const void* x,         // (rows, cols)
                const void* residual,  // (rows, cols) or nullptr
                void* h_out,           // (rows, cols) or nullptr
                const void* w,         // (cols,)
                void* y,               // (rows, cols)
                float* rstd,           // (rows,)
                DType x_type, DType w_type, int64_t rows, int64_t cols, float eps);
void RmsNormCuda(const void* x, const void* residual, void* h_out, const void* w, void* y, float* rstd, DType x_type,
                 DType w_type, int64_t rows, int64_t cols, float eps, cudaStream_t stream);

// Gradients of y = rmsnorm(h) given the forward's h (x for the plain op) and rstd:
//   dx = rstd * (dy*w - h*rstd^2 * mean(dy*w*h)) (+ dh_in, the gradient reaching h from later
//   layers, for the fused op: dx is then the gradient of both x and residual),
//   dw = sum over rows of dy * h * rstd (overwritten, f32; CUDA sums per-block partials in a fixed
//   order, so it is deterministic).
void RmsNormBackwardCpu(const void* dy,     // (rows, cols)
                        const void* dh_in,  // (rows, cols) or nullptr
                        const void* h,      // (rows, cols)
                        const void* w,      // (cols,)
                        const float* rstd,  // (rows,)
                        void* dx,           // (rows, cols)
                        float* dw,          // (cols,)
                        DType x_type, DType w_type, int64_t rows, int64_t cols);
void RmsNormBackwardCuda(const void* dy, const void* dh_in, const void* h, const void* w, const float* rstd, void* dx, float* dw,
                         DType x_type, DType w_type, int64_t rows, int64_t cols, cudaStream_t stream);

// The (x_type, w_type) pairs the CUDA kernels are built for; the CPU twin takes the same.
bool RmsNormTypesSupported(DType x_type, DType w_type);

}  // namespace aerie
