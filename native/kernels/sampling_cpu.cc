// CPU twin of the sampling family (see sampling.h). It implements the same definitions as the CUDA
// kernels with simpler algorithms (nth_element for top-k, a sort for top-p); the shared arithmetic
// of sampling_math.h and exact integer masses make the two choose the same tokens bit for bit.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "sampling.h"
#include "sampling_math.h"
#include "thread_pool.h"

namespace aerie {
namespace {

using namespace sampling;

void CheckArgs(const char* op, DType type, int64_t vocab) {
  if (!IsFloating(type)) throw std::invalid_argument(std::string(op) + ": logits must have a floating dtype, got " + DTypeName(type));
  if (vocab <= 0 || vocab > kMaxSamplingVocab)
    throw std::invalid_argument(std::string(op) + ": vocab " + std::to_string(vocab) + " is outside [1, " + std::to_string(kMaxSamplingVocab) + "]");
}

// Argmax by ordered key, ties to the lowest index.
int32_t ArgmaxKeys(const std::vector<uint32_t>& keys) {
  int32_t best = 0;
  for (size_t i = 1; i < keys.size(); ++i)
    if (keys[i] > keys[best]) best = static_cast<int32_t>(i);
  return best;
}

// One row's filtered distribution (steps 1-5 of sampling.h).
struct RowDist {
  bool single = false;  // greedy, or nothing samplable: only `argmax`
  int32_t argmax = 0;
  std::vector<float> s;          // scaled logits
  std::vector<uint64_t> w;       // masses (0 outside top-k)
  std::vector<uint8_t> survivor; // after top-k and top-p
  uint64_t total = 0;            // W': mass of the survivors
};

void FilterRow(const void* logits, DType type, int64_t row, int64_t vocab, float temperature, int32_t top_k, float top_p, RowDist& d) {
  const size_t base = static_cast<size_t>(row * vocab);
  d.s.resize(vocab);
  std::vector<uint32_t> keys(vocab);
  for (int64_t i = 0; i < vocab; ++i) {
    d.s[i] = Scaled(LoadF(logits, base + i, type), temperature);
    keys[i] = OrderedKey(d.s[i]);
  }
  d.argmax = ArgmaxKeys(keys);
  const uint32_t key_max = keys[d.argmax];
  d.single = !(temperature > 0.0f) || key_max <= kKeyNegInf;
  if (d.single) return;
  const float s_max = d.s[d.argmax];

  uint32_t tau = 0;  // keep keys >= tau
  if (top_k > 0 && top_k < vocab) {
    std::vector<uint32_t> sorted(keys);
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<uint32_t>());
    tau = sorted[top_k - 1];
  }
  d.w.assign(vocab, 0);
  d.survivor.assign(vocab, 0);
  uint64_t total = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (keys[i] < tau) continue;
    d.survivor[i] = 1;
    d.w[i] = Mass(Unnormalised(d.s[i], keys[i], s_max, key_max));
    total += d.w[i];
  }

  if (top_p < 1.0f) {
    const uint64_t target = TopPTarget(top_p, total);
    // Tokens with mass, by s descending then index ascending; the massless ones come after all of
    // them and are never reached (the running sum hits the target, at most W, first).
    std::vector<int32_t> order;
    for (int64_t i = 0; i < vocab; ++i)
      if (d.w[i] > 0) order.push_back(static_cast<int32_t>(i));
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return keys[a] != keys[b] ? keys[a] > keys[b] : a < b; });
    uint64_t cum = 0;
    int32_t last = order.back();
    for (int32_t i : order) {
      cum += d.w[i];
      if (cum >= target) {
        last = i;
        break;
      }
    }
    const uint32_t key_cut = keys[last];
    total = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const bool keep = d.survivor[i] && (keys[i] > key_cut || (keys[i] == key_cut && i <= last));
      d.survivor[i] = keep;
      if (keep) total += d.w[i];
    }
  }
  d.total = total;
}

}  // namespace

void ArgmaxCpu(const void* logits, DType type, int64_t rows, int64_t vocab, int32_t* out) {
  CheckArgs("argmax", type, vocab);
  ParallelFor(rows, 1, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      int32_t best = 0;
      uint32_t best_key = OrderedKey(LoadF(logits, r * vocab, type));
      for (int64_t i = 1; i < vocab; ++i) {
        uint32_t k = OrderedKey(LoadF(logits, r * vocab + i, type));
        if (k > best_key) {
          best_key = k;
          best = static_cast<int32_t>(i);
        }
      }
      out[r] = best;
    }
  });
}

void SampleCpu(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& p, int32_t* out) {
  CheckArgs("sample", type, vocab);
  ParallelFor(rows, 1, [&](int64_t rb, int64_t re) {
    RowDist d;
    for (int64_t r = rb; r < re; ++r) {
      FilterRow(logits, type, r, vocab, p.temperature[r], p.top_k[r], p.top_p[r], d);
      if (d.single) {
        out[r] = d.argmax;
        continue;
      }
      uint64_t target = MulHi64(Random64(p.seeds[r], static_cast<uint64_t>(p.steps[r]), kStreamSample), d.total);
      int32_t token = d.argmax;
      for (int64_t i = 0; i < vocab; ++i) {
        if (!d.survivor[i]) continue;
        if (target < d.w[i]) {
          token = static_cast<int32_t>(i);
          break;
        }
        target -= d.w[i];
      }
      out[r] = token;
    }
  });
}

void SamplingProbsCpu(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& p, float* probs) {
  CheckArgs("samplingProbs", type, vocab);
  ParallelFor(rows, 1, [&](int64_t rb, int64_t re) {
    RowDist d;
    for (int64_t r = rb; r < re; ++r) {
      FilterRow(logits, type, r, vocab, p.temperature[r], p.top_k[r], p.top_p[r], d);
      float* row = probs + r * vocab;
      for (int64_t i = 0; i < vocab; ++i) {
        if (d.single) row[i] = i == d.argmax ? 1.0f : 0.0f;
        else row[i] = d.survivor[i] ? MassToProb(d.w[i], d.total) : 0.0f;
      }
    }
  });
}

void SamplingFilterCpu(void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& p) {
  CheckArgs("samplingFilter", type, vocab);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  ParallelFor(rows, 1, [&](int64_t rb, int64_t re) {
    RowDist d;
    for (int64_t r = rb; r < re; ++r) {
      FilterRow(logits, type, r, vocab, p.temperature[r], p.top_k[r], p.top_p[r], d);
      const size_t base = static_cast<size_t>(r * vocab);
      for (int64_t i = 0; i < vocab; ++i) {
        if (d.single) {
          if (i != d.argmax) StoreF(logits, base + i, type, neg_inf);
        } else {
          StoreF(logits, base + i, type, d.survivor[i] ? d.s[i] : neg_inf);
        }
      }
    }
  });
}

}  // namespace aerie
