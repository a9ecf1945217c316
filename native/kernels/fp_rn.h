// Single IEEE operations rounded to nearest, for arithmetic that the CPU twins and the CUDA kernels
// must carry out with the same bits (activation_math.h, rotary_math.h, sampling_math.h). On the device each is the
// _rn intrinsic, which nvcc never contracts into an FMA; on the host the plain operator (or std::fma,
// std::rint), whose contraction the headers that use these rule out where it matters.
#pragma once
#include "dtype.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace aerie {
namespace rn {

AERIE_HD float MulF(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
AERIE_HD float AddF(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
AERIE_HD float SubF(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
AERIE_HD float DivF(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
// 1/a rounded to nearest: the same bits as DivF(1, a) (both are the correctly rounded quotient), and
// on the device rcp.rn, a few instructions shorter than div.rn.
AERIE_HD float RcpF(float a) {
#if defined(__CUDA_ARCH__)
  return __frcp_rn(a);
#else
  return 1.0f / a;
#endif
}
AERIE_HD float FmaF(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
AERIE_HD float RintF(float a) {  // to nearest, ties to even
#if defined(__CUDA_ARCH__)
  return rintf(a);
#else
  return std::rint(a);
#endif
}
AERIE_HD double MulD(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
AERIE_HD double AddD(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
AERIE_HD double SubD(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
AERIE_HD double FmaD(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
// exp(r) for r = x - n ln2 (n = x / ln2 rounded to an integer, so |r| <= ln2/2): Cody-Waite reduction
// (the high part of ln2 has 16 bits, so n * hi is exact), then a degree-7 Taylor polynomial
// (truncation below 2^-27 on |r| <= 0.35). The exp of activation_math.h and sampling_math.h scale
// it by 2^n each their own way.
AERIE_HD float ExpOfRemainder(float x, float n) {
  float r = FmaF(n, -0.693145751953125f, x);  // ln2, high part (exact product)
  r = FmaF(n, -1.42860677e-06f, r);           // ln2, low part
  float p = 1.98412698e-04f;
  p = FmaF(p, r, 1.38888889e-03f);
  p = FmaF(p, r, 8.33333333e-03f);
  p = FmaF(p, r, 4.16666667e-02f);
  p = FmaF(p, r, 1.66666667e-01f);
  p = FmaF(p, r, 0.5f);
  p = FmaF(p, r, 1.0f);
  return FmaF(p, r, 1.0f);
}
AERIE_HD float DoubleToFloat(double d) {
#if defined(__CUDA_ARCH__)
  return __double2float_rn(d);
#else
  return static_cast<float>(d);  // round to nearest even (the default rounding mode)
#endif
}

}  // namespace rn
}  // namespace aerie
