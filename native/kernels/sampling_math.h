// Arithmetic shared by the CPU twin and the CUDA kernels of the sampling family, written so that both
// produce the same bits: a counter-based generator (Philox-4x32-10), an exp built only from
// correctly rounded IEEE operations (no library exp, whose last bit differs between glibc and CUDA),
// an order-preserving integer key for floats, and the fixed-point probability masses that make every
// sum exact (integer sums do not depend on the order of addition, so the GPU's parallel sums equal
// the CPU's serial ones). See sampling.h for the algorithm they serve.
#pragma once
#include <cstdint>
#include <cstring>

#include "dtype.h"
#include "fp_rn.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace aerie {
namespace sampling {

// ---- Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) ------

struct Philox4 {
  uint32_t v[4];
};

AERIE_HD Philox4 Philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Draw streams: the third counter word separates independent uses of one (seed, step).
constexpr uint32_t kStreamSample = 0;

// 64 random bits for (seed, step, stream): key = seed, counter = (step, stream, 0).
AERIE_HD uint64_t Random64(uint64_t seed, uint64_t step, uint32_t stream) {
  Philox4 r = Philox4x32_10(static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), stream, 0u, static_cast<uint32_t>(seed),
                            static_cast<uint32_t>(seed >> 32));
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

// floor(a * b / 2^64): maps 64 random bits onto [0, b) with a bias below 2^-64 per value.
AERIE_HD uint64_t MulHi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

// ---- correctly rounded primitives (no FMA contraction can change them) -----------------------------

using rn::DivF;
using rn::FmaF;
using rn::MulF;
using rn::RintF;
using rn::SubF;

// exp(x) for x <= 0, within a few ulps, identical on host and device. Below -87 (and for NaN) it
// returns 0: such tokens are below the 2^-40 mass resolution anyway.
AERIE_HD float ExpNonPositive(float x) {
  if (!(x > -87.0f)) return 0.0f;
  if (x >= 0.0f) return 1.0f;
  const float n = RintF(MulF(x, 1.44269502f));  // x = n ln2 + r, |r| <= ln2/2
  const float p = rn::ExpOfRemainder(x, n);
  const uint32_t scale_bits = static_cast<uint32_t>(static_cast<int>(n) + 127) << 23;  // 2^n, n in [-126, 0]
  float scale;
  memcpy(&scale, &scale_bits, 4);
  return MulF(p, scale);
}

// ---- order-preserving keys ---------------------------------------------------------------------

// Unsigned keys ordered like the floats: key(a) < key(b) iff a < b (and -0 < +0). NaN maps to 0,
// below every number including -inf, so a NaN logit is never preferred.
AERIE_HD uint32_t OrderedKey(float f) {
  if (f != f) return 0u;
  uint32_t u;
  memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

AERIE_HD float KeyToFloat(uint32_t key) {
  uint32_t u = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

constexpr uint32_t kKeyNegInf = 0x007FFFFFu;  // OrderedKey(-inf)

// ---- fixed-point masses ------------------------------------------------------------------------

// A token's unnormalised probability e in [0, 1] (e = 1 for the most likely token) as an integer
// number of 2^-40 units: exact scaling by a power of two, then truncation. With vocabularies below
// 2^23 tokens the sum fits in 64 bits.
constexpr float kMassScale = 1099511627776.0f;  // 2^40

AERIE_HD uint64_t Mass(float e) { return static_cast<uint64_t>(MulF(e, kMassScale)); }

// The unnormalised probability of scaled logit s given the row's max key (whose token gets 1).
AERIE_HD float Unnormalised(float s, uint32_t key, float s_max, uint32_t key_max) {
  return key == key_max ? 1.0f : ExpNonPositive(SubF(s, s_max));
}

// Scaled logit: l / T, or l itself for greedy rows (T <= 0 or NaN).
AERIE_HD float Scaled(float l, float temperature) { return temperature > 0.0f ? DivF(l, temperature) : l; }

// The top-p mass target: floor(p * W) clamped to [1, W] (so at least the top token survives).
AERIE_HD uint64_t TopPTarget(float p, uint64_t total) {
  double t = static_cast<double>(p) * static_cast<double>(total);
  uint64_t target = t <= 1.0 ? 1u : (t >= static_cast<double>(total) ? total : static_cast<uint64_t>(t));
  return target > total ? total : target;
}

// probs = w / W' in fp64, rounded once to float.
AERIE_HD float MassToProb(uint64_t w, uint64_t total) {
  return static_cast<float>(static_cast<double>(w) / static_cast<double>(total));
}

}  // namespace sampling
}  // namespace aerie
