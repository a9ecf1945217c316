// CPU twin of the loss family (see loss.h): fp32 values, fp64 row sums, threaded over rows. The
// fused ops project chunk by chunk through MatmulCpu exactly as the CUDA launchers do.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "loss.h"
#include "loss_gemms.h"
#include "matmul.h"
#include "thread_pool.h"

namespace aerie {

namespace {

// Rows per ParallelFor task so that a task touches at least ~64k elements.
int64_t RowGrain(int64_t cols) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)); }

}  // namespace

void SoftmaxForwardCpu(const void* x, DType x_type, void* y, DType y_type, int64_t rows, int64_t cols, bool log) {
  ParallelFor(rows, RowGrain(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      size_t base = static_cast<size_t>(r) * cols;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < cols; ++c) m = std::max(m, LoadF(x, base + c, x_type));
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += std::exp(static_cast<double>(LoadF(x, base + c, x_type)) - m);
      double lse = m + std::log(s);
      for (int64_t c = 0; c < cols; ++c) {
        double z = static_cast<double>(LoadF(x, base + c, x_type)) - lse;
        StoreF(y, base + c, y_type, static_cast<float>(log ? z : std::exp(z)));
      }
    }
  });
}

void SoftmaxBackwardCpu(const void* y, DType y_type, const void* dy, void* dx, DType grad_type, int64_t rows, int64_t cols,
                        bool log) {
  ParallelFor(rows, RowGrain(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      size_t base = static_cast<size_t>(r) * cols;
      double s = 0;  // softmax: sum(dy * y); log-softmax: sum(dy)
      for (int64_t c = 0; c < cols; ++c) {
        double g = LoadF(dy, base + c, grad_type);
        s += log ? g : g * LoadF(y, base + c, y_type);
      }
      for (int64_t c = 0; c < cols; ++c) {
        double g = LoadF(dy, base + c, grad_type), yc = LoadF(y, base + c, y_type);
        double d = log ? g - std::exp(yc) * s : yc * (g - s);
        StoreF(dx, base + c, grad_type, static_cast<float>(d));
      }
    }
  });
}

void CheckFusedLossArgs(const FusedLossArgs& a, bool kl, const char* op) {
  auto bad = [&](const std::string& what) { throw std::invalid_argument(std::string(op) + ": " + what); };
  if (a.tokens < 0) bad("tokens must be >= 0");
  if (a.vocab < 1 || a.hidden < 1) bad("vocab and hidden must be >= 1");
  if (a.chunk_rows < 1) bad("chunkRows must be >= 1, got " + std::to_string(a.chunk_rows));
  if (!IsFloating(a.h_type)) bad(std::string("h must be floating, got ") + DTypeName(a.h_type));
  if ((a.dh == nullptr) != (a.dw == nullptr)) bad("dh and dW go together (both for gradients, neither for loss only)");
  if (a.dh && !IsFloating(a.dh_type)) bad(std::string("dh must be floating, got ") + DTypeName(a.dh_type));
  if (!a.weights || !a.loss_sum || !a.token_loss) bad("weights, lossSum and tokenLoss are required");
  if (!std::isfinite(a.grad_scale)) bad("gradScale must be finite");
  if (kl) {
    if (a.target_hidden < 1) bad("targetHidden must be >= 1");
    if (!IsFloating(a.ht_type)) bad(std::string("ht must be floating, got ") + DTypeName(a.ht_type));
  } else if (a.tokens > 0 && !a.targets) {
    bad("targets are required");
  }
}

namespace {

// One chunk's scratch and the GEMMs around the row work, shared by both fused losses.
struct ChunkScratch {
  std::vector<float> logits, target_logits;
  std::vector<uint16_t> dz16;
};

void ProjectCpu(const void* x, const void* w, DType type, float* out, int64_t rows, int64_t vocab, int64_t hidden) {
  MatmulCpu(LossProjectGemm(x, w, type, out, rows, vocab, hidden));
}

// dh[rows] = dz @ W; dW += dz^T @ h[rows]. dz is (rows, V) in h's dtype.
void BackwardGemmsCpu(const FusedLossArgs& a, const void* dz, int64_t row0, int64_t rows) {
  const LossBackwardGemms g = LossBackwardGemmArgs(a, dz, row0, rows);
  MatmulCpu(g.dh);
  MatmulCpu(g.dw);
}

struct RowStats {
  float max = -std::numeric_limits<float>::infinity();
  int64_t argmax = 0;
  double lse = 0;
};

RowStats Stats(const float* z, int64_t n) {
  RowStats st;
  for (int64_t v = 0; v < n; ++v)
    if (z[v] > st.max) st.max = z[v], st.argmax = v;  // first index on ties
  double s = 0;
  for (int64_t v = 0; v < n; ++v) s += std::exp(static_cast<double>(z[v]) - st.max);
  st.lse = st.max + std::log(s);
  return st;
}

// Sums w_t * loss_t over weighted tokens in token order (fp64), as the CUDA reduction does.
float WeightedSum(const float* weights, const float* loss, int64_t n) {
  double s = 0;
  for (int64_t t = 0; t < n; ++t)
    if (weights[t] != 0.0f) s += static_cast<double>(weights[t]) * loss[t];
  return static_cast<float>(s);
}

template <typename RowFn>
void RunChunksCpu(const FusedLossArgs& a, bool kl, RowFn row_fn) {
  const bool grads = a.dh != nullptr;
  const bool dz_narrow = grads && a.h_type != DType::F32;
  const int64_t chunk = std::min<int64_t>(a.chunk_rows, std::max<int64_t>(a.tokens, 1));
  ChunkScratch s;
  s.logits.resize(static_cast<size_t>(chunk) * a.vocab);
  if (kl) s.target_logits.resize(s.logits.size());
  if (dz_narrow) s.dz16.resize(s.logits.size());
  size_t hsz = DTypeSize(a.h_type), htsz = DTypeSize(a.ht_type);
  for (int64_t row0 = 0; row0 < a.tokens; row0 += chunk) {
    int64_t rows = std::min(chunk, a.tokens - row0);
    ProjectCpu(static_cast<const char*>(a.h) + static_cast<size_t>(row0) * a.hidden * hsz, a.w, a.h_type, s.logits.data(),
               rows, a.vocab, a.hidden);
    if (kl)
      ProjectCpu(static_cast<const char*>(a.ht) + static_cast<size_t>(row0) * a.target_hidden * htsz, a.wt, a.ht_type,
                 s.target_logits.data(), rows, a.vocab, a.target_hidden);
    ParallelFor(rows, RowGrain(a.vocab), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* z = s.logits.data() + static_cast<size_t>(r) * a.vocab;  // dz replaces z in place
        const float* zt = kl ? s.target_logits.data() + static_cast<size_t>(r) * a.vocab : nullptr;
        row_fn(row0 + r, z, zt, grads);
        if (dz_narrow)
          for (int64_t v = 0; v < a.vocab; ++v) StoreF(s.dz16.data(), static_cast<size_t>(r) * a.vocab + v, a.h_type, z[v]);
      }
    });
    if (grads) BackwardGemmsCpu(a, dz_narrow ? static_cast<const void*>(s.dz16.data()) : s.logits.data(), row0, rows);
  }
  *a.loss_sum = WeightedSum(a.weights, a.token_loss, a.tokens);
}

}  // namespace

void FusedLinearCrossEntropyCpu(const FusedLossArgs& a) {
  CheckFusedLossArgs(a, false, "fusedLinearCrossEntropy");
  for (int64_t t = 0; t < a.tokens; ++t)
    if (a.weights[t] != 0.0f && (a.targets[t] < 0 || a.targets[t] >= a.vocab))
      throw std::invalid_argument("fusedLinearCrossEntropy: targets[" + std::to_string(t) + "] = " +
                                  std::to_string(a.targets[t]) + " is outside [0, " + std::to_string(a.vocab) +
                                  ") on a token with nonzero weight");
  RunChunksCpu(a, false, [&](int64_t t, float* z, const float*, bool grads) {
    float w = a.weights[t];
    if (w == 0.0f) {
      a.token_loss[t] = 0.0f;
      if (grads) std::fill(z, z + a.vocab, 0.0f);
      return;
    }
    RowStats st = Stats(z, a.vocab);
    int32_t y = a.targets[t];
    a.token_loss[t] = static_cast<float>(st.lse - z[y]);
    if (!grads) return;
    double g = static_cast<double>(w) * a.grad_scale;
    for (int64_t v = 0; v < a.vocab; ++v) z[v] = static_cast<float>(g * (std::exp(z[v] - st.lse) - (v == y ? 1.0 : 0.0)));
  });
}

void FusedLinearKlCpu(const FusedLossArgs& a) {
  CheckFusedLossArgs(a, true, "fusedLinearKl");
  RunChunksCpu(a, true, [&](int64_t t, float* z, const float* zt, bool grads) {
    RowStats q = Stats(z, a.vocab), p = Stats(zt, a.vocab);
    if (a.argmax_match) a.argmax_match[t] = q.argmax == p.argmax ? 1 : 0;
    double kl = 0;
    for (int64_t v = 0; v < a.vocab; ++v) {
      double logp = zt[v] - p.lse, logq = z[v] - q.lse;
      kl += std::exp(logp) * (logp - logq);
    }
    a.token_loss[t] = static_cast<float>(kl);
    if (!grads) return;
    float w = a.weights[t];
    if (w == 0.0f) {
      std::fill(z, z + a.vocab, 0.0f);
      return;
    }
    double g = static_cast<double>(w) * a.grad_scale;
    for (int64_t v = 0; v < a.vocab; ++v) z[v] = static_cast<float>(g * (std::exp(z[v] - q.lse) - std::exp(zt[v] - p.lse)));
  });
}

}  // namespace aerie
