// CPU twin of the rotary family (see rotary.h): fp32 math on any float storage, bit for bit the CUDA
// kernel's (the shared steps are in rotary_math.h).
#include <stdexcept>
#include <string>
#include <vector>

#include "rotary.h"
#include "rotary_math.h"
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

namespace {

// One token: its (cos, sin) table, then every head. cs, sn hold rot_dim/2 floats, row head_dim.
// std::fma is a library call on the x86-64 baseline ISA (about halving the twin's speed), so on
// x86-64 this is compiled twice, once with FMA instructions and picked at run time where the CPU has
// them. Both give the same bits: std::fma is correctly rounded either way, and the other products
// are exact or feed only fma operands (rotary_math.h), so the FMA clone's contraction changes nothing.
__attribute__((always_inline)) inline void TokenImpl(const RotaryArgs& a, int64_t t, float* cs, float* sn, float* row) {
  const int64_t half = a.rot_dim / 2, hd = a.head_dim;
  for (int64_t j = 0; j < half; ++j) rotary::CosSin(a.positions[t], a.inv_freq[j], a.attention_scaling, a.inverse, &cs[j], &sn[j]);
  for (int64_t h = 0; h < a.heads; ++h) {
    const size_t base = static_cast<size_t>((t * a.heads + h) * hd);
    // Read the whole head first so that out may alias x.
    for (int64_t i = 0; i < hd; ++i) row[i] = LoadF(a.x, base + i, a.dtype);
    for (int64_t j = 0; j < half; ++j) {
      const float x1 = row[j], x2 = row[j + half];
      StoreF(a.out, base + j, a.dtype, rotary::RotateFirst(x1, x2, cs[j], sn[j]));
      StoreF(a.out, base + j + half, a.dtype, rotary::RotateSecond(x1, x2, cs[j], sn[j]));
    }
    for (int64_t i = a.rot_dim; i < hd; ++i) StoreF(a.out, base + i, a.dtype, row[i]);
  }
}

void TokenGeneric(const RotaryArgs& a, int64_t t, float* cs, float* sn, float* row) { TokenImpl(a, t, cs, sn, row); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("fma"))) void TokenFma(const RotaryArgs& a, int64_t t, float* cs, float* sn, float* row) {
  TokenImpl(a, t, cs, sn, row);
}
using TokenFn = void (*)(const RotaryArgs&, int64_t, float*, float*, float*);
TokenFn PickToken() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma") ? TokenFma : TokenGeneric;
}
const TokenFn kToken = PickToken();
#else
constexpr auto kToken = TokenGeneric;
#endif

}  // namespace

void RotaryCpu(const RotaryArgs& a) {
  CheckRotaryArgs(a);
  const int64_t half = a.rot_dim / 2, hd = a.head_dim;
  ParallelFor(a.tokens, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> cs(half), sn(half), row(hd);
    for (int64_t t = begin; t < end; ++t) kToken(a, t, cs.data(), sn.data(), row.data());
  });
}

}  // namespace aerie
