// Element types shared by the CPU twins and the CUDA kernels. The numeric codes are part of the
// native surface: src/runtime/dtype.ts uses the same numbers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define AERIE_HD __host__ __device__ __forceinline__
#else
#define AERIE_HD inline
#endif

namespace aerie {

enum class DType : int32_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4, U8 = 5, Bool = 6 };

inline size_t DTypeSize(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::I64: return 8;
    case DType::U8: case DType::Bool: return 1;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(static_cast<int>(t)));
}

inline const char* DTypeName(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

// Host-side bfloat16 storage: the upper 16 bits of an IEEE float, rounded to nearest even.
struct bf16_t { uint16_t bits; };
// Host-side IEEE half storage.
struct f16_t { uint16_t bits; };

AERIE_HD float Bf16ToFloat(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

AERIE_HD uint16_t FloatToBf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float F16ToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; exp--; }
      u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

inline uint16_t FloatToF16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t mant = u & 0x7fffffu;
  if (((u >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
  return static_cast<uint16_t>(half);
}

// Load/store a float from CPU storage of a floating dtype (f32, bf16, f16): the CPU twins compute in
// fp32 (or fp64 where stated) whatever the storage type.
inline float LoadF(const void* p, size_t i, DType t) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::BF16: return Bf16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return F16ToFloat(static_cast<const uint16_t*>(p)[i]);
    default: throw std::invalid_argument(std::string("expected a floating dtype, got ") + DTypeName(t));
  }
}
inline void StoreF(void* p, size_t i, DType t, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = v; return;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = FloatToBf16(v); return;
    case DType::F16: static_cast<uint16_t*>(p)[i] = FloatToF16(v); return;
    default: throw std::invalid_argument(std::string("expected a floating dtype, got ") + DTypeName(t));
  }
}
inline bool IsFloating(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace aerie
