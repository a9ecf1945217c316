// CPU twin of the optimizer family (see optimizer.h): the same fp32 per-element update as the CUDA
// kernel, threaded; sums of squares in fp64 over fixed blocks, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "optimizer.h"
#include "thread_pool.h"

namespace aerie {

void CheckAdamWArgs(const AdamWArgs& a) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("adamwStep: " + what); };
  if (a.n < 0) bad("n must be >= 0");
  if (a.step < 1) bad("step must be >= 1 (the first step is 1), got " + std::to_string(a.step));
  if (!std::isfinite(a.lr) || a.lr < 0) bad("lr must be finite and >= 0, got " + std::to_string(a.lr));
  if (!(a.beta1 >= 0 && a.beta1 < 1) || !(a.beta2 >= 0 && a.beta2 < 1))
    bad("betas must lie in [0, 1), got " + std::to_string(a.beta1) + ", " + std::to_string(a.beta2));
  if (!(a.eps > 0) || !std::isfinite(a.eps)) bad("eps must be finite and > 0, got " + std::to_string(a.eps));
  if (!std::isfinite(a.weight_decay) || a.weight_decay < 0) bad("weightDecay must be finite and >= 0");
  if (!IsFloating(a.grad_type)) bad(std::string("grad must be floating, got ") + DTypeName(a.grad_type));
  if (a.model_copy && !IsFloating(a.copy_type)) bad(std::string("modelCopy must be floating, got ") + DTypeName(a.copy_type));
  if (a.n > 0 && (!a.param || !a.grad || !a.exp_avg || !a.exp_avg_sq)) bad("param, grad, expAvg and expAvgSq are required");
}

AdamWConsts MakeAdamWConsts(const AdamWArgs& a) {
  const double t = static_cast<double>(a.step);
  AdamWConsts c;
  c.decay = static_cast<float>(1.0 - a.lr * a.weight_decay);
  c.beta1 = static_cast<float>(a.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - a.beta1);
  c.beta2 = static_cast<float>(a.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - a.beta2);
  c.step_size = static_cast<float>(a.lr / (1.0 - std::pow(a.beta1, t)));
  c.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(a.beta2, t)));
  c.eps = static_cast<float>(a.eps);
  return c;
}

void AdamWStepCpu(const AdamWArgs& a) {
  CheckAdamWArgs(a);
  const AdamWConsts c = MakeAdamWConsts(a);
  const float coef = a.clip_coef ? *a.clip_coef : 1.0f;
  ParallelFor(a.n, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float p = a.param[i], m = a.exp_avg[i], v = a.exp_avg_sq[i];
      AdamWUpdate(c, LoadF(a.grad, i, a.grad_type) * coef, p, m, v);
      a.param[i] = p;
      a.exp_avg[i] = m;
      a.exp_avg_sq[i] = v;
      if (a.model_copy) StoreF(a.model_copy, i, a.copy_type, p);
    }
  });
}

void SumSquaresAccumulateCpu(const void* x, DType x_type, int64_t n, float* acc) {
  if (!IsFloating(x_type)) throw std::invalid_argument(std::string("sumSquares: x must be floating, got ") + DTypeName(x_type));
  constexpr int64_t kBlock = 65536;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  ParallelFor(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) {
        double v = LoadF(x, i, x_type);
        s += v * v;
      }
      partial[b] = s;
    }
  });
  double s = 0;
  for (double p : partial) s += p;
  *acc = static_cast<float>(*acc + s);
}

void GradNormFinishCpu(const float* sum_squares, float* norm) { *norm = std::sqrt(*sum_squares); }

void ClipCoefficientCpu(const float* norm, float max_norm, float* coef) {
  const float c = max_norm / (*norm + 1e-6f);
  *coef = c > 1.0f ? 1.0f : c;  // a NaN norm stays NaN, as torch's clamp keeps it
}

}  // namespace aerie
