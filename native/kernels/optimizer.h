// Optimizer kernels: the fused AdamW step over flat fp32 master weights (torch.optim.AdamW
// semantics, decoupled weight decay), and the pieces of global gradient-norm clipping that stay on
// the device (sum of squares, sqrt, clip coefficient), so a training step needs no host sync.
#pragma once
#include <cmath>
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// One AdamW step, per element, in fp32 (g = grad * clip_coef):
//   p = p * (1 - lr * wd)
//   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
//   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   model_copy = p rounded to copy_type
struct AdamWArgs {
  float* param = nullptr;            // (n,) fp32 master weights, updated in place
  const void* grad = nullptr;        // (n,)
  DType grad_type = DType::F32;      // f32, bf16 or f16
  float* exp_avg = nullptr;          // (n,) m, updated in place
  float* exp_avg_sq = nullptr;       // (n,) v, updated in place
  void* model_copy = nullptr;        // (n,) or nullptr
  DType copy_type = DType::BF16;     // f32, bf16 or f16
  const float* clip_coef = nullptr;  // () on the same device, or nullptr for 1
  int64_t n = 0;
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;                  // t: 1 on the first step
};

// Throws std::invalid_argument on bad hyper-parameters or dtypes.
void CheckAdamWArgs(const AdamWArgs& args);

// The step's scalars, computed once on the host (fp64, then rounded) and shared by both twins.
struct AdamWConsts {
  float decay;              // 1 - lr * wd
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float step_size;          // lr / (1 - b1^t)
  float bias_correction2_sqrt;  // sqrt(1 - b2^t)
  float eps;
};
AdamWConsts MakeAdamWConsts(const AdamWArgs& args);

// The per-element update both twins run, in this order.
AERIE_HD void AdamWUpdate(const AdamWConsts& c, float g, float& p, float& m, float& v) {
  p = p * c.decay;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / c.bias_correction2_sqrt + c.eps;
  p = p - c.step_size * (m / denom);
}

void AdamWStepCpu(const AdamWArgs& args);
void AdamWStepCuda(const AdamWArgs& args, cudaStream_t stream);

// acc += sum(x^2) (fp64 inside; deterministic order for a given n).
void SumSquaresAccumulateCpu(const void* x,  // (n,)
                             DType x_type, int64_t n,
                             float* acc);  // ()
// Needs `device` for its scratch (per-block partial sums).
void SumSquaresAccumulateCuda(const void* x, DType x_type, int64_t n, float* acc, int device, cudaStream_t stream);

// norm = sqrt(sum_squares); may alias.
void GradNormFinishCpu(const float* sum_squares,  // ()
                       float* norm);              // ()
void GradNormFinishCuda(const float* sum_squares, float* norm, cudaStream_t stream);

// coef = min(1, max_norm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_.
void ClipCoefficientCpu(const float* norm,  // ()
                        float max_norm,
                        float* coef);  // ()
void ClipCoefficientCuda(const float* norm, float max_norm, float* coef, cudaStream_t stream);

}  // namespace aerie
