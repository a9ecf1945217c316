// CPU twin of the qkv_rotary family (see qkv_rotary.h). QkvRotary: the rows are split by copies,
// then q and k are rotated in place by the rotary family's CPU twin, so the bits are rotary()'s.
// QkvRotaryCache: per token and head, norm_cpu.cc's steps, then rotary_cpu.cc's, then the cache row;
// the same operations in the same order as those twins, so the bits are the composition's.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "norm.h"
#include "qkv_rotary.h"
#include "rotary.h"
#include "rotary_math.h"
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

void CheckQkvRotaryCacheArgs(const QkvRotaryCacheArgs& a) {
  if (!IsFloating(a.dtype)) throw std::invalid_argument(std::string("qkvRotaryCache: qkv must be floating, got ") + DTypeName(a.dtype));
  if (a.tokens < 0 || a.heads <= 0 || a.kv_heads <= 0 || a.head_dim <= 0)
    throw std::invalid_argument("qkvRotaryCache: invalid sizes tokens=" + std::to_string(a.tokens) + " heads=" + std::to_string(a.heads) +
                                " kv_heads=" + std::to_string(a.kv_heads) + " head_dim=" + std::to_string(a.head_dim));
  if (a.rot_dim <= 0 || a.rot_dim % 2 != 0 || a.rot_dim > a.head_dim)
    throw std::invalid_argument("qkvRotaryCache: rotary dim " + std::to_string(a.rot_dim) + " must be even, positive and <= head_dim " +
                                std::to_string(a.head_dim));
  if (a.num_blocks <= 0 || a.block_size <= 0)
    throw std::invalid_argument("qkvRotaryCache: the cache needs num_blocks and block_size > 0, got " + std::to_string(a.num_blocks) +
                                " and " + std::to_string(a.block_size));
  if ((a.q_norm || a.k_norm) && !RmsNormTypesSupported(a.dtype, a.w_dtype))
    throw std::invalid_argument(std::string("qkvRotaryCache: the q/k norm takes qkv float32 with weights float32, or qkv bfloat16 with "
                                            "weights bfloat16 or float32; got qkv ") +
                                DTypeName(a.dtype) + " with weights " + DTypeName(a.w_dtype));
  if (!(std::isfinite(a.eps) && a.eps >= 0.0f)) throw std::invalid_argument("qkvRotaryCache: eps must be finite and >= 0, got " + std::to_string(a.eps));
  if (!std::isfinite(a.attention_scaling)) throw std::invalid_argument("qkvRotaryCache: attention_scaling must be finite");
}

namespace {

// v rounded to the storage dtype and widened back: what a later op would load.
inline float RoundTo(float v, DType t) {
  if (t == DType::F32) return v;
  uint16_t cell = 0;  // bf16 / f16 bits
  StoreF(&cell, 0, t, v);
  return LoadF(&cell, 0, t);
}

// One token of QkvRotaryCache: its (cos, sin) table, then each q head (into q) and, unless the slot
// is -1, each k head and v head (into the caches). A head is loaded to fp32 (`row`), normed in place
// exactly as RmsNormCpu does (fp64 sum in column order, rstd rounded to fp32, (h * rstd) * w in fp32,
// rounded to the dtype), then rotated exactly as rotary_cpu.cc's TokenImpl. On x86-64 this is
// compiled twice like that TokenImpl (plain and FMA); the norm's products that feed additions are
// exact in fp64 (float squares), so contraction changes no bits there either.
__attribute__((always_inline)) inline void CacheTokenImpl(const QkvRotaryCacheArgs& a, int64_t t, float* cs, float* sn, float* row) {
  const int64_t half = a.rot_dim / 2, hd = a.head_dim, qk_heads = a.heads + a.kv_heads;
  const int64_t slot = a.slot_mapping[t];
  for (int64_t j = 0; j < half; ++j) rotary::CosSin(a.positions[t], a.inv_freq[j], a.attention_scaling, false, &cs[j], &sn[j]);
  const size_t src = static_cast<size_t>(t * (qk_heads + a.kv_heads) * hd);
  for (int64_t h = 0; h < qk_heads; ++h) {
    const bool is_q = h < a.heads;
    if (!is_q && slot < 0) break;  // padding: no k row
    const void* w = is_q ? a.q_norm : a.k_norm;
    void* dst = is_q ? a.q : a.k_cache;
    const size_t base = is_q ? static_cast<size_t>((t * a.heads + h) * hd) : static_cast<size_t>((slot * a.kv_heads + (h - a.heads)) * hd);
    for (int64_t i = 0; i < hd; ++i) row[i] = LoadF(a.qkv, src + static_cast<size_t>(h * hd + i), a.dtype);
    if (w) {
      double ss = 0;
      for (int64_t c = 0; c < hd; ++c) ss += static_cast<double>(row[c]) * row[c];
      const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(hd) + static_cast<double>(a.eps)));
      for (int64_t c = 0; c < hd; ++c) row[c] = RoundTo(row[c] * rs * LoadF(w, static_cast<size_t>(c), a.w_dtype), a.dtype);
    }
    for (int64_t j = 0; j < half; ++j) {
      const float x1 = row[j], x2 = row[j + half];
      StoreF(dst, base + j, a.dtype, rotary::RotateFirst(x1, x2, cs[j], sn[j]));
      StoreF(dst, base + j + half, a.dtype, rotary::RotateSecond(x1, x2, cs[j], sn[j]));
    }
    for (int64_t i = a.rot_dim; i < hd; ++i) StoreF(dst, base + i, a.dtype, row[i]);
  }
  if (slot >= 0) {
    const size_t es = DTypeSize(a.dtype), bytes = static_cast<size_t>(a.kv_heads * hd) * es;
    std::memcpy(static_cast<uint8_t*>(a.v_cache) + static_cast<size_t>(slot) * bytes,
                static_cast<const uint8_t*>(a.qkv) + (src + static_cast<size_t>(qk_heads * hd)) * es, bytes);
  }
}

void CacheTokenGeneric(const QkvRotaryCacheArgs& a, int64_t t, float* cs, float* sn, float* row) { CacheTokenImpl(a, t, cs, sn, row); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("fma"))) void CacheTokenFma(const QkvRotaryCacheArgs& a, int64_t t, float* cs, float* sn, float* row) {
  CacheTokenImpl(a, t, cs, sn, row);
}
using CacheTokenFn = void (*)(const QkvRotaryCacheArgs&, int64_t, float*, float*, float*);
CacheTokenFn PickCacheToken() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma") ? CacheTokenFma : CacheTokenGeneric;
}
const CacheTokenFn kCacheToken = PickCacheToken();
#else
constexpr auto kCacheToken = CacheTokenGeneric;
#endif

}  // namespace

void QkvRotaryCacheCpu(const QkvRotaryCacheArgs& a) {
  CheckQkvRotaryCacheArgs(a);
  // Every slot is checked before anything is written, as CacheWriteCpu does.
  const int64_t capacity = a.num_blocks * a.block_size;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t s = a.slot_mapping[t];
    if (s < -1 || s >= capacity)
      throw std::out_of_range("qkvRotaryCache: slot " + std::to_string(s) + " of token " + std::to_string(t) +
                              " is outside the cache [0, " + std::to_string(capacity) + ") (-1 skips a token)");
  }
  const int64_t half = a.rot_dim / 2, hd = a.head_dim;
  ParallelFor(a.tokens, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> cs(half), sn(half), row(hd);
    for (int64_t t = begin; t < end; ++t) kCacheToken(a, t, cs.data(), sn.data(), row.data());
  });
}

}  // namespace aerie
