// CUDA helpers shared by the memory-bound kernel families (elementwise, norm, activation): storage
// types and fp32 conversion, 16-byte packs, alignment tests, float dtype dispatch, grid sizing, and
// a scratch buffer from the caching allocator. Include only from .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "allocator.h"
#include "cuda_context.h"
#include "dtype.h"

namespace aerie {
namespace ew {

template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }

// Round-to-nearest-even, like StoreF on the CPU.
template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }

template <typename T> struct IsFloatLike { static constexpr bool value = false; };
template <> struct IsFloatLike<float> { static constexpr bool value = true; };
template <> struct IsFloatLike<__nv_bfloat16> { static constexpr bool value = true; };
template <> struct IsFloatLike<__half> { static constexpr bool value = true; };

// N elements moved as one aligned load/store (16 bytes at most per instruction; larger packs are
// split by the compiler into 16-byte accesses, which need only 16-byte alignment).
template <typename T, int N>
struct alignas(sizeof(T) * N >= 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

// Elements per 16-byte vector.
template <typename T> constexpr int Vec16() { return static_cast<int>(16 / sizeof(T)); }

template <typename T, int N>
__device__ __forceinline__ void LoadF(const T* p, float (&out)[N]) {
  Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = ToF(pk.v[i]);
}

template <typename T, int N>
__device__ __forceinline__ void StoreF(T* p, const float (&in)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int i = 0; i < N; ++i) pk.v[i] = FromF<T>(in[i]);
  *reinterpret_cast<Pack<T, N>*>(p) = pk;
}

inline bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

inline int SmCount() {
  static int cached[64] = {0};
  int dev = 0;
  CheckCuda(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 64 && cached[dev]) return cached[dev];
  int sms = 0;
  CheckCuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  if (dev < 64) cached[dev] = sms;
  return sms;
}

// Blocks for a grid-stride loop over `items` work items of `per_block` each: enough to fill the
// device a few times over, never more than the work needs, at least 1.
inline unsigned GridFor(int64_t items, int64_t per_block, int blocks_per_sm = 8) {
  int64_t need = (items + per_block - 1) / per_block;
  int64_t cap = static_cast<int64_t>(SmCount()) * blocks_per_sm;
  if (need > cap) need = cap;
  return static_cast<unsigned>(need < 1 ? 1 : need);
}

// Device scratch from the caching allocator, on the current device, released when the launcher
// returns (stream-ordered reuse: later work on the same stream runs after the kernels using it).
class Scratch {
 public:
  explicit Scratch(size_t bytes) {
    CheckCuda(cudaGetDevice(&device_), "cudaGetDevice");
    ptr_ = bytes ? DeviceAlloc(device_, bytes) : nullptr;
  }
  ~Scratch() {
    if (ptr_) DeviceFree(device_, ptr_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  int device_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace ew
}  // namespace aerie

// Runs the statement list with `T` bound to the CUDA storage type of a floating DType.
#define AERIE_DISPATCH_FLOAT(dtype, T, op, ...)                                                  \
  switch (dtype) {                                                                                \
    case ::aerie::DType::F32: { using T = float; __VA_ARGS__; break; }                            \
    case ::aerie::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                   \
    case ::aerie::DType::F16: { using T = __half; __VA_ARGS__; break; }                           \
    default:                                                                                      \
      throw std::invalid_argument(std::string(op) + ": unsupported dtype " + ::aerie::DTypeName(dtype)); \
  }
