// The GEMMs of the fused losses (loss.h), described once for both twins: each backend runs these
// MatmulArgs with its own matmul (MatmulCpu, MatmulCuda).
#pragma once
#include <cstdint>

#include "dtype.h"
#include "loss.h"
#include "matmul.h"

namespace aerie {

// out (rows, vocab) fp32 = x (rows, hidden) @ w (vocab, hidden)^T: a chunk's logits.
MatmulArgs LossProjectGemm(const void* x, const void* w, DType type, float* out, int64_t rows, int64_t vocab, int64_t hidden);

// The backward of a chunk of rows [row0, row0 + rows): dh[rows] = dz @ W and dW += dz^T @ h[rows],
// dz (rows, V) in h's dtype.
struct LossBackwardGemms {
  MatmulArgs dh, dw;
};
LossBackwardGemms LossBackwardGemmArgs(const FusedLossArgs& a, const void* dz, int64_t row0, int64_t rows);

}  // namespace aerie
