// The dot-product step shared by the few-row GEMV kernels (matmul.cu's GemvKernel and
// fused_gemv.cu): one code path, so the fused kernel's sums are bit for bit the plain GEMV's. Also
// their epilogues' loads and stores of one element of a runtime dtype.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "dtype.h"

namespace aerie {
namespace gemv {

// One element of dtype t (bf16, f16, else f32) as fp32; stores round to nearest.
__device__ __forceinline__ float LoadAny(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void StoreAny(void* p, int64_t i, DType t, float v) {
  switch (t) {
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// Two packed 16-bit values (element 2i in the low half) to fp32.
template <typename T>
__device__ __forceinline__ float2 Unpack2(uint32_t u);
template <>
__device__ __forceinline__ float2 Unpack2<__nv_bfloat16>(uint32_t u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}
template <>
__device__ __forceinline__ float2 Unpack2<__half>(uint32_t u) {
  __half2 h;
  static_assert(sizeof(h) == sizeof(u), "half2 is 4 bytes");
  memcpy(&h, &u, sizeof(u));
  return __half22float2(h);
}

// acc += dot(w, x) over 8 packed 16-bit elements, one FMA per element in element order.
template <typename T>
__device__ __forceinline__ void Dot8(float& acc, const uint4& w, const uint4& x) {
  float2 wf, xf;
  wf = Unpack2<T>(w.x); xf = Unpack2<T>(x.x); acc = fmaf(wf.x, xf.x, acc); acc = fmaf(wf.y, xf.y, acc);
  wf = Unpack2<T>(w.y); xf = Unpack2<T>(x.y); acc = fmaf(wf.x, xf.x, acc); acc = fmaf(wf.y, xf.y, acc);
  wf = Unpack2<T>(w.z); xf = Unpack2<T>(x.z); acc = fmaf(wf.x, xf.x, acc); acc = fmaf(wf.y, xf.y, acc);
  wf = Unpack2<T>(w.w); xf = Unpack2<T>(x.w); acc = fmaf(wf.x, xf.x, acc); acc = fmaf(wf.y, xf.y, acc);
}

}  // namespace gemv
}  // namespace aerie
