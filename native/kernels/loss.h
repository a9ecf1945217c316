// Losses over a vocabulary: row softmax / log-softmax with backward, and the fused output projection
// + loss of a draft model (cross-entropy against hard targets, forward KL against a second
// projection's softmax), computed chunk by chunk so that the [tokens, vocab] fp32 logits are never
// held whole: only [chunk_rows, V] at a time. All math is fp32 (fp64 for the CPU twins' long sums);
// storage may be f32, bf16 or f16 unless stated.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// y = softmax(x) or log_softmax(x) along each row.
void SoftmaxForwardCpu(const void* x,  // (rows, cols)
                       DType x_type,
                       void* y,  // (rows, cols); may alias x when the dtypes match
                       DType y_type, int64_t rows, int64_t cols, bool log);
void SoftmaxForwardCuda(const void* x, DType x_type, void* y, DType y_type, int64_t rows, int64_t cols, bool log,
                        cudaStream_t stream);

// From the forward output y: softmax: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) * sum(dy).
// dy and dx share grad_type.
void SoftmaxBackwardCpu(const void* y,  // (rows, cols)
                        DType y_type,
                        const void* dy,  // (rows, cols)
                        void* dx,        // (rows, cols); may alias dy (same dtype)
                        DType grad_type, int64_t rows, int64_t cols, bool log);
void SoftmaxBackwardCuda(const void* y, DType y_type, const void* dy, void* dx, DType grad_type, int64_t rows, int64_t cols,
                         bool log, cudaStream_t stream);

// The fused projection + loss. Draft logits z = h @ W^T. Per token t with weight w_t (0 = ignore the
// token: it adds nothing to loss_sum and gets no gradient):
//   cross-entropy: loss_t = logsumexp(z_t) - z_t[target_t]; 0 for ignored tokens, whose target is
//                  not read. A weighted token's target outside [0, V): the CPU twin throws, CUDA
//                  (which cannot check without a host sync) writes NaN as its loss and no gradient.
//   forward KL:    loss_t = KL(p_t || q_t), p_t = softmax(ht_t @ Wt^T) (no gradient), q_t = softmax(z_t)
//                  (reported for every token, weighted or not)
// loss_sum = sum over tokens with w_t != 0 of w_t * loss_t, in a fixed order (fp64), so it does not
// depend on chunk_rows. With gradients, d z_t = w_t * grad_scale * (q_t - onehot(target_t)) or
// w_t * grad_scale * (q_t - p_t), and
//   dh = dz @ W           (written)
//   dW += dz^T @ h        (accumulated: fp32)
// The chunk's dz are rounded to h's dtype before those two GEMMs (GEMM operands share a dtype), as
// mixed-precision training does. Scratch per chunk row: V*4 bytes of draft logits, V*4 more of
// target logits (KL), V*2 more of 16-bit dz when h is 16-bit and gradients are asked for; callers
// size chunk_rows from a memory budget (src/runtime/ops/loss.ts fusedLossScratchBytesPerRow).
struct FusedLossArgs {
  const void* h = nullptr;        // (T, H)
  const void* w = nullptr;        // (V, H), same dtype as h
  DType h_type = DType::F32;      // f32, bf16 or f16
  const int32_t* targets = nullptr;  // (T,) cross-entropy only; in [0, V) where weight != 0
  const void* ht = nullptr;       // (T, Ht) KL only
  const void* wt = nullptr;       // (V, Ht) KL only, same dtype as ht
  DType ht_type = DType::F32;
  const float* weights = nullptr;  // (T,)
  float* loss_sum = nullptr;       // () written
  float* token_loss = nullptr;     // (T,) written
  uint8_t* argmax_match = nullptr;  // (T,) KL only, optional: 1 where argmax p_t == argmax q_t (first index on ties)
  void* dh = nullptr;              // (T, H) optional (with dw: gradients), written
  DType dh_type = DType::F32;
  float* dw = nullptr;             // (V, H) optional, accumulated
  float grad_scale = 1.0f;
  int64_t tokens = 0, vocab = 0, hidden = 0, target_hidden = 0;
  int64_t chunk_rows = 1;          // rows per chunk, >= 1
};

void FusedLinearCrossEntropyCpu(const FusedLossArgs& args);
void FusedLinearCrossEntropyCuda(const FusedLossArgs& args, int device, cudaStream_t stream);
void FusedLinearKlCpu(const FusedLossArgs& args);
void FusedLinearKlCuda(const FusedLossArgs& args, int device, cudaStream_t stream);

// Shared precondition checks of the fused ops (throw std::invalid_argument).
void CheckFusedLossArgs(const FusedLossArgs& args, bool kl, const char* op);

}  // namespace aerie
