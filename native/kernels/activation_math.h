// Arithmetic shared by the CPU twin and the CUDA kernels of the activation family (see
// activation.h), written so that both produce the same bits. No library exp: CUDA's expf is within 2
// ulps and glibc's within 1, and their last bits differ. Such fp32 differences flipped bfloat16 and
// float16 gradients by one step on the first GPU run, and through silu'(g) = s*(1 + g*(1-s)), which
// cancels near its root g = -1.2785, they can move a float16 dgate by two.
//
// Every floating-point step is one IEEE operation rounded to nearest: a product, a quotient, a sum
// of two values that are not products, or an explicit fused multiply-add (__fmaf_rn on the device,
// std::fma on the host). Nothing is left for a compiler to contract: nvcc fuses a*b + c into an FMA by
// default (--fmad=true), and g++ does too wherever the target has FMA (aarch64, or the x86-64 FMA
// clone in activation_cpu.cc). The device uses the _rn intrinsics, which nvcc never fuses; on the
// host the one product that feeds an addition is 1 + q*2^-32 in Sigmoid (the exp's last step), and
// q*2^-32 is exact (a scale by a power of two) unless it is subnormal, where 1 + it is 1 fused or not.
#pragma once
#include <cstdint>
#include <cstring>

#include "dtype.h"
#include "fp_rn.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace aerie {
namespace act {

using rn::AddF;
using rn::DivF;
using rn::FmaF;
using rn::MulF;
using rn::RcpF;
using rn::RintF;

// The general path of ExpNonPositive, for x in [-104, 0].
AERIE_HD float ExpCore(float x) {
#if defined(__CUDA_ARCH__)
  // n = RintF(x * log2e) without the conversion pipe (the host's loop is checked against this over
  // every float in (-104, 0)): t = x*log2e + 1.5*2^23 lies in [2^23, 2^24), where the floats are
  // the integers, so the rounded sum is 1.5*2^23 + n, ties to even as RintF (1.5*2^23 is even); n
  // comes back exactly, and t's low mantissa bits are 0x400000 + n, so (bits(t) + 159) << 23 is
  // (n + 32 + 127) << 23 (the exponent bits of t shift out). n may be +0 where RintF gives -0; it
  // only multiplies a constant added to x != 0, which gives the same sum.
  const float t = __fadd_rn(MulF(x, 1.44269502f), 12582912.0f);
  const float n = __fadd_rn(t, -12582912.0f);  // n in [-150, 0]
  const uint32_t scale_bits = (__float_as_uint(t) + 159u) << 23;  // 2^(n+32), normal
#else
  const float n = RintF(MulF(x, 1.44269502f));  // n in [-150, 0]
  const uint32_t scale_bits = static_cast<uint32_t>(static_cast<int>(n) + 32 + 127) << 23;  // 2^(n+32), normal
#endif
  const float p = rn::ExpOfRemainder(x, n);
  float scale;
  memcpy(&scale, &scale_bits, 4);
  return MulF(MulF(p, scale), 2.3283064365386963e-10f);  // * 2^-32
}

// exp(x) for x <= 0 within 1 ulp (checked over every float), identical on host and device:
// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite; the high part of ln2 has 16 bits, so n * hi is
// exact), a degree-7 Taylor polynomial (truncation below 2^-27 on that interval), then the scale by
// 2^n in two steps: 2^(n+32), exact, then 2^-32, which rounds once where the result is subnormal.
// 0 at -104 and below (exp(x) < 2^-150 rounds to 0) and for NaN; 1 for x >= 0.
AERIE_HD float ExpNonPositive(float x) {
  if (!(x > -104.0f)) return 0.0f;
  if (x >= 0.0f) return 1.0f;
  return ExpCore(x);
}

// exp(-|g|): the same bits as ExpNonPositive(-|g|) for every float g (checked over all 2^32), with
// its two range checks folded into one clamp. -|g| >= 0 only at -0, which ExpCore maps to exactly 1;
// at -104 ExpCore rounds to 0 like the early return below it, and the clamp maps a NaN to -104 (0, as
// before). SwiGLU's forward is issue-bound, so the compares and selects saved matter there.
AERIE_HD float ExpNegAbs(float g) {
#if defined(__CUDA_ARCH__)
  return ExpCore(fmaxf(-fabsf(g), -104.0f));
#else
  const float x = -std::fabs(g);
  return ExpCore(x > -104.0f ? x : -104.0f);  // as fmaxf on the device; std::fmax keeps a signaling NaN
#endif
}

// s = sigmoid(g) and 1 - s, neither by cancellation: with e = exp(-|g|) in (0, 1], the larger of the
// two is 1/(1+e) and the smaller e/(1+e), computed as e times the larger. NaN gives s = 0, so
// silu(NaN) = NaN * 0 = NaN.
AERIE_HD void Sigmoid(float g, float* s, float* one_minus_s) {
  const float e = ExpNegAbs(g);
  const float big = RcpF(AddF(1.0f, e));
  const float small = MulF(e, big);
  if (g >= 0.0f) {
    *s = big;
    *one_minus_s = small;
  } else {
    *s = small;
    *one_minus_s = big;
  }
}

// silu(g) * u = (g * s) * u.
AERIE_HD float Swiglu(float g, float u) {
  float s, oms;
  Sigmoid(g, &s, &oms);
  return MulF(MulF(g, s), u);
}

// dgate = (d * u) * (s * (1 + g*(1-s))), dup = d * (g * s).
AERIE_HD void SwigluGrad(float d, float g, float u, float* dgate, float* dup) {
  float s, oms;
  Sigmoid(g, &s, &oms);
  *dgate = MulF(MulF(d, u), MulF(s, FmaF(g, oms, 1.0f)));
  *dup = MulF(d, MulF(g, s));
}

}  // namespace act
}  // namespace aerie
