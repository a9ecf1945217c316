// CPU twin of the qkv_rotary family (see qkv_rotary.h): the rows are split by copies, then q and k
// are rotated in place by the rotary family's CPU twin, so the bits are rotary()'s.
#include <cstring>
#include <stdexcept>
#include <string>

#include "qkv_rotary.h"
#include "rotary.h"
#include "thread_pool.h"

namespace aerie {

void CheckQkvRotaryArgs(const QkvRotaryArgs& a) {
  if (!IsFloating(a.dtype)) throw std::invalid_argument(std::string("qkvRotary: qkv must be floating, got ") + DTypeName(a.dtype));
  if (a.tokens < 0 || a.heads <= 0 || a.kv_heads <= 0 || a.head_dim <= 0)
    throw std::invalid_argument("qkvRotary: invalid sizes tokens=" + std::to_string(a.tokens) + " heads=" + std::to_string(a.heads) +
                                " kv_heads=" + std::to_string(a.kv_heads) + " head_dim=" + std::to_string(a.head_dim));
  if (a.rot_dim <= 0 || a.rot_dim % 2 != 0 || a.rot_dim > a.head_dim)
    throw std::invalid_argument("qkvRotary: rotary dim " + std::to_string(a.rot_dim) + " must be even, positive and <= head_dim " +
                                std::to_string(a.head_dim));
}

void QkvRotaryCpu(const QkvRotaryArgs& a) {
  CheckQkvRotaryArgs(a);
  if (a.tokens == 0) return;
  const size_t es = DTypeSize(a.dtype);
  const size_t qb = static_cast<size_t>(a.heads * a.head_dim) * es, kb = static_cast<size_t>(a.kv_heads * a.head_dim) * es;
  const size_t row = qb + 2 * kb;
  const auto* src = static_cast<const uint8_t*>(a.qkv);
  auto* q = static_cast<uint8_t*>(a.q);
  auto* k = static_cast<uint8_t*>(a.k);
  auto* v = static_cast<uint8_t*>(a.v);
  ParallelFor(a.tokens, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const uint8_t* s = src + static_cast<size_t>(t) * row;
      std::memcpy(q + static_cast<size_t>(t) * qb, s, qb);
      std::memcpy(k + static_cast<size_t>(t) * kb, s + qb, kb);
      std::memcpy(v + static_cast<size_t>(t) * kb, s + qb + kb, kb);
    }
  });
  RotaryArgs r;
  r.dtype = a.dtype;
  r.tokens = a.tokens;
  r.head_dim = a.head_dim;
  r.rot_dim = a.rot_dim;
  r.positions = a.positions;
  r.inv_freq = a.inv_freq;
  r.attention_scaling = a.attention_scaling;
  r.inverse = false;
  r.x = r.out = a.q;
  r.heads = a.heads;
  RotaryCpu(r);
  r.x = r.out = a.k;
  r.heads = a.kv_heads;
  RotaryCpu(r);
}

}  // namespace aerie
