// Arithmetic shared by the CPU twin and the CUDA kernel of the rotary family (see rotary.h), written so
// that both produce the same bits. No library cos/sin: CUDA's sincosf is within 2 ulp and glibc's
// sinf/cosf are not always correctly rounded either, and their last bits differ (the first GPU runs
// saw those fp32 differences flip bf16/f16 outputs by one ulp).
//
// Every floating-point step is one IEEE operation rounded to nearest: a product, an explicit fused
// multiply-add (__fmaf_rn / __fma_rn on the device, std::fma on the host) or a conversion; the rest
// is integer arithmetic. Nothing is left for the compiler to contract: nvcc fuses a*b + c into an FMA
// by default (--fmad=true), and g++ does too wherever the target has FMA (-ffp-contract=fast, e.g.
// aarch64 or the x86-64 FMA clone in rotary_cpu.cc), so a plain a*b - c*d rounds differently on the
// two sides. Here the device uses the _rn intrinsics, which nvcc never fuses, and on the host every
// product that feeds an addition is exact (0.5 z) while the others feed only fma operands, so
// contraction changes nothing.
//
// SinCos: sin and cos of a float angle, computed in fp64 and rounded once to fp32. The argument is
// reduced modulo pi/2 exactly in integer arithmetic (Payne-Hanek, 126 fraction bits, valid for every
// finite float), then the fdlibm kernels evaluate sin and cos on [-pi/4, pi/4] to about 2^-52, so the
// fp32 results are the correctly rounded sin and cos: for every finite float they equal glibc's fp64
// sin/cos rounded to fp32 (checked exhaustively).
#pragma once
#include <cstdint>
#include <cstring>

#include "dtype.h"
#include "fp_rn.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace aerie {
namespace rotary {

// ---- correctly rounded primitives ------------------------------------------------------------------

using rn::AddD;
using rn::DoubleToFloat;
using rn::FmaD;
using rn::FmaF;
using rn::MulD;
using rn::MulF;
using rn::SubD;

AERIE_HD int Clz64(uint64_t v) {  // v != 0
#if defined(__CUDA_ARCH__)
  return __clzll(static_cast<long long>(v));
#else
  return __builtin_clzll(v);
#endif
}
AERIE_HD double DoubleFromBits(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

// ---- argument reduction ----------------------------------------------------------------------------

// The bits of 2/pi, 32 a word, after one word of zeros: bit k of the stream (k = 0 is the top bit of
// word 0) has weight 2^(31 - k). A float below 2^128 needs bits up to 2^-231 (word 8).
// The same words twice: constant memory for the device, a plain array for the host.
#define AERIE_ROTARY_TWO_OVER_PI                                                                       \
  {0x00000000u, 0xA2F9836Eu, 0x4E441529u, 0xFC2757D1u, 0xF534DDC0u, 0xDB629599u, 0x3C439041u, 0xFE5163ABu, \
   0xDEBBC561u, 0xB7246E3Au}
#if defined(__CUDACC__)
static __constant__ uint32_t kTwoOverPiBitsDevice[10] = AERIE_ROTARY_TWO_OVER_PI;
#endif
static const uint32_t kTwoOverPiBitsHost[10] = AERIE_ROTARY_TWO_OVER_PI;
#undef AERIE_ROTARY_TWO_OVER_PI

AERIE_HD uint32_t TwoOverPiWord(int i) {
#if defined(__CUDA_ARCH__)
  return kTwoOverPiBitsDevice[i];
#else
  return kTwoOverPiBitsHost[i];
#endif
}

constexpr double kPiOver2Hi = 1.5707963267948966;     // 0x3FF921FB54442D18
constexpr double kPiOver2Lo = 6.123233995736766e-17;  // pi/2 - kPiOver2Hi, 0x3C91A62633145C07

// For a finite float ax >= 0.78125 (a normal number): the quadrant q = n mod 4 and r in about
// [-pi/4, pi/4] with ax = n pi/2 + r. ax = m 2^e (m a 24-bit integer, e >= -24); with 2/pi =
// sum_i b_i 2^-i, the bits i <= e - 2 add multiples of 4 to ax 2/pi, so only the 128 bits from
// i = e - 1 on matter: ax 2/pi = m W 2^-126 (mod 4), W that 128-bit window, dropping under 2^-102.
// The fraction keeps 126 bits; the worst float (0x1.47d0fep+34, closest to a multiple of pi/2) starts
// it with 29 zeros (checked over all floats), leaving far more than the 53 bits that r needs.
AERIE_HD double ReduceQuadrant(float ax, int* quadrant) {
  uint32_t u;
  memcpy(&u, &ax, 4);
  const int e = static_cast<int>((u >> 23) & 0xffu) - 150;
  const uint64_t m = (u & 0x7fffffu) | 0x800000u;
  const int bit = e + 30;  // stream bit of weight 2^-(e - 1): 31 + (e - 1)
  const int w = bit >> 5, sh = bit & 31;
  uint32_t win[4];
  for (int k = 0; k < 4; ++k) {
    const uint32_t a = TwoOverPiWord(w + k), b = TwoOverPiWord(w + k + 1);
    win[k] = sh == 0 ? a : ((a << sh) | (b >> (32 - sh)));
  }
  // m * W, base 2^32 limbs l0 (least significant) .. l3; the limb above holds multiples of 4 only.
  uint64_t c = m * win[3];
  const uint32_t l0 = static_cast<uint32_t>(c);
  c = m * win[2] + (c >> 32);
  const uint32_t l1 = static_cast<uint32_t>(c);
  c = m * win[1] + (c >> 32);
  const uint32_t l2 = static_cast<uint32_t>(c);
  c = m * win[0] + (c >> 32);
  const uint32_t l3 = static_cast<uint32_t>(c);
  // The binary point sits at bit 126: the integer part mod 4 is bits 126-127, the fraction, shifted
  // left by 2, is the 128-bit hi:lo (value hi:lo 2^-128).
  int q = static_cast<int>(l3 >> 30);
  uint64_t hi = (static_cast<uint64_t>(l3 & 0x3fffffffu) << 34) | (static_cast<uint64_t>(l2) << 2) | (l1 >> 30);
  uint64_t lo = (static_cast<uint64_t>(l1) << 34) | (static_cast<uint64_t>(l0) << 2);
  bool negative = false;
  if (hi >> 63) {  // fraction >= 1/2: round to the next quadrant, r = (fraction - 1) pi/2
    q += 1;
    negative = true;
    lo = ~lo + 1u;
    hi = ~hi + (lo == 0 ? 1u : 0u);
  }
  *quadrant = q & 3;
  int scale = 64;  // the fraction is top 2^-scale once top holds its leading 64 bits
  if (hi == 0) {
    if (lo == 0) return 0.0;
    hi = lo;
    lo = 0;
    scale += 64;
  }
  const int lz = Clz64(hi);
  const uint64_t top = lz == 0 ? hi : ((hi << lz) | (lo >> (64 - lz)));
  scale += lz;
  // top rounded once to fp64 (the product by 2^32 is exact, so the fma rounds the exact sum), then
  // scaled by 2^-scale (exact) and multiplied by pi/2 in two parts.
  const double f = FmaD(static_cast<double>(static_cast<uint32_t>(top >> 32)), 4294967296.0,
                        static_cast<double>(static_cast<uint32_t>(top)));
  const double v = MulD(f, DoubleFromBits(static_cast<uint64_t>(1023 - scale) << 52));
  const double r = FmaD(v, kPiOver2Hi, MulD(v, kPiOver2Lo));
  return negative ? -r : r;
}

// ---- kernels on [-pi/4, pi/4] (fdlibm's __kernel_sin / __kernel_cos, Horner with explicit fmas) -----

AERIE_HD double SinKernel(double r) {
  const double z = MulD(r, r), v = MulD(z, r);
  double p = FmaD(z, 1.58969099521155010221e-10, -2.50507602534068634195e-08);
  p = FmaD(z, p, 2.75573137070700676789e-06);
  p = FmaD(z, p, -1.98412698298579493134e-04);
  p = FmaD(z, p, 8.33333333332248946124e-03);
  p = FmaD(z, p, -1.66666666666666324348e-01);
  return FmaD(v, p, r);  // r + r^3 (S1 + z S2 + ...)
}

AERIE_HD double CosKernel(double r) {
  const double z = MulD(r, r);
  double p = FmaD(z, -1.13596475577881948265e-11, 2.08757232129817482790e-09);
  p = FmaD(z, p, -2.75573143513906633035e-07);
  p = FmaD(z, p, 2.48015872894767294178e-05);
  p = FmaD(z, p, -1.38888888888741095749e-03);
  p = FmaD(z, p, 4.16666666666666019037e-02);
  const double hz = MulD(0.5, z);  // exact
  const double w = SubD(1.0, hz);
  // 1 - z/2 + z^2 p, with the rounding error of w carried: w + (((1 - w) - hz) + z (z p))
  return AddD(w, FmaD(z, MulD(z, p), SubD(SubD(1.0, w), hz)));
}

// sin and cos of a float angle, each correctly rounded to fp32 (see the top). NaN and infinities
// give NaN.
AERIE_HD void SinCos(float angle, float* sin_out, float* cos_out) {
  uint32_t u;
  memcpy(&u, &angle, 4);
  const bool negative = (u >> 31) != 0;
  const uint32_t abs_bits = u & 0x7fffffffu;
  if (abs_bits >= 0x7f800000u) {
    const uint32_t nan_bits = 0x7fc00000u;
    float nan;
    memcpy(&nan, &nan_bits, 4);
    *sin_out = nan;
    *cos_out = nan;
    return;
  }
  float ax;
  memcpy(&ax, &abs_bits, 4);
  int q = 0;
  const double r = ax < 0.78125f ? static_cast<double>(ax) : ReduceQuadrant(ax, &q);
  const double sr = SinKernel(r), cr = CosKernel(r);
  double s, c;
  switch (q) {
    case 0: s = sr; c = cr; break;
    case 1: s = cr; c = -sr; break;
    case 2: s = -sr; c = -cr; break;
    default: s = -cr; c = sr; break;
  }
  *sin_out = DoubleToFloat(negative ? -s : s);
  *cos_out = DoubleToFloat(c);
}

// One token's rotation tables: the angle float(position) * inv_freq[j] as one fp32 product (as
// transformers computes it), then cos and sin times attention_scaling, sin negated for the inverse.
AERIE_HD void CosSin(int32_t position, float inv_freq, float scaling, bool inverse, float* cos_out, float* sin_out) {
  float s, c;
  SinCos(MulF(static_cast<float>(position), inv_freq), &s, &c);
  *cos_out = MulF(c, scaling);
  const float ss = MulF(s, scaling);
  *sin_out = inverse ? -ss : ss;
}

// The rotated pair in fp32: (x1 c - x2 s, x2 c + x1 s), each one product rounded and one fma.
AERIE_HD float RotateFirst(float x1, float x2, float c, float s) { return FmaF(x1, c, -MulF(x2, s)); }
AERIE_HD float RotateSecond(float x1, float x2, float c, float s) { return FmaF(x2, c, MulF(x1, s)); }

}  // namespace rotary
}  // namespace aerie
