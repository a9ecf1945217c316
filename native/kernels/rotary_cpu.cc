// CPU twin of the rotary family (see rotary.h): fp32 math on any float storage.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "rotary.h"
#include "thread_pool.h"

namespace aerie {

void CheckRotaryArgs(const RotaryArgs& a) {
  if (!IsFloating(a.dtype)) throw std::invalid_argument(std::string("rotary: x must be floating, got ") + DTypeName(a.dtype));
  if (a.tokens < 0 || a.heads < 0 || a.head_dim <= 0)
    throw std::invalid_argument("rotary: invalid sizes tokens=" + std::to_string(a.tokens) + " heads=" + std::to_string(a.heads) +
                                " head_dim=" + std::to_string(a.head_dim));
  if (a.rot_dim <= 0 || a.rot_dim % 2 != 0 || a.rot_dim > a.head_dim)
    throw std::invalid_argument("rotary: rotary dim " + std::to_string(a.rot_dim) + " must be even, positive and <= head_dim " +
                                std::to_string(a.head_dim));
}

void RotaryCpu(const RotaryArgs& a) {
  CheckRotaryArgs(a);
  const int64_t half = a.rot_dim / 2, hd = a.head_dim;
  const float sign = a.inverse ? -1.0f : 1.0f;
  ParallelFor(a.tokens, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> cs(half), sn(half), row(hd);
    for (int64_t t = begin; t < end; ++t) {
      const float pos = static_cast<float>(a.positions[t]);
      for (int64_t j = 0; j < half; ++j) {
        const float angle = pos * a.inv_freq[j];  // one fp32 product, as in transformers
        cs[j] = std::cos(angle) * a.attention_scaling;
        sn[j] = sign * std::sin(angle) * a.attention_scaling;
      }
      for (int64_t h = 0; h < a.heads; ++h) {
        const size_t base = static_cast<size_t>((t * a.heads + h) * hd);
        // Read the whole head first so that out may alias x.
        for (int64_t i = 0; i < hd; ++i) row[i] = LoadF(a.x, base + i, a.dtype);
        for (int64_t j = 0; j < half; ++j) {
          const float x1 = row[j], x2 = row[j + half];
          StoreF(a.out, base + j, a.dtype, x1 * cs[j] - x2 * sn[j]);
          StoreF(a.out, base + j + half, a.dtype, x2 * cs[j] + x1 * sn[j]);
        }
        for (int64_t i = a.rot_dim; i < hd; ++i) StoreF(a.out, base + i, a.dtype, row[i]);
      }
    }
  });
}

}  // namespace aerie
