/*
 * Embedding lookup and its gradient on CUDA (see embedding.h).
 *
 * Forward: one block per token copies the row weight[id] to out[t] in the widest unit that the row
 * size and the pointers' alignment allow (16, 4 or 2 bytes), bit for bit. An id outside [0, vocab)
 * cannot be reported without a host sync, so its row is written as zeros.
 * Backward: one block per token adds dout[t] into the float32 dweight[id] with atomicAdd (ids repeat
 * across tokens, so rows are shared); the summation order, hence the rounding of repeated rows, is
 * not deterministic. Tokens with an id outside [0, vocab) are skipped.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "embedding.h"

namespace aerie {
namespace {

constexpr int kThreads = 256;

template <typename I>
__device__ __forceinline__ int64_t LoadId(const void* ids, int64_t t) {
  return static_cast<int64_t>(static_cast<const I*>(ids)[t]);
}

template <typename V, typename I>
__global__ void EmbeddingKernel(const V* weight, const void* ids, V* out, int64_t vocab, int64_t units_per_row) {
  const int64_t t = blockIdx.x;
  const int64_t id = LoadId<I>(ids, t);
  V* dst = out + t * units_per_row;
  if (id < 0 || id >= vocab) {
    V zero;
    memset(&zero, 0, sizeof(V));
    for (int64_t u = threadIdx.x; u < units_per_row; u += blockDim.x) dst[u] = zero;
    return;
  }
  const V* src = weight + id * units_per_row;
  for (int64_t u = threadIdx.x; u < units_per_row; u += blockDim.x) dst[u] = src[u];
}

template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }

template <typename T, typename I>
__global__ void EmbeddingBackwardKernel(const T* dout, const void* ids, float* dweight, int64_t vocab, int64_t hidden) {
  const int64_t t = blockIdx.x;
  const int64_t id = LoadId<I>(ids, t);
  if (id < 0 || id >= vocab) return;
  const T* src = dout + t * hidden;
  float* dst = dweight + id * hidden;
  for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) atomicAdd(dst + h, ToF(src[h]));
}

bool Aligned(const void* p, size_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

template <typename I>
void LaunchForward(const EmbeddingArgs& a, cudaStream_t stream) {
  const size_t row = static_cast<size_t>(a.hidden) * DTypeSize(a.weight_type);
  const unsigned grid = static_cast<unsigned>(a.tokens);
  if (row % 16 == 0 && Aligned(a.weight, 16) && Aligned(a.out, 16)) {
    EmbeddingKernel<uint4, I><<<grid, kThreads, 0, stream>>>(static_cast<const uint4*>(a.weight), a.ids,
                                                             static_cast<uint4*>(a.out), a.vocab, row / 16);
  } else if (row % 4 == 0 && Aligned(a.weight, 4) && Aligned(a.out, 4)) {
    EmbeddingKernel<uint32_t, I><<<grid, kThreads, 0, stream>>>(static_cast<const uint32_t*>(a.weight), a.ids,
                                                                static_cast<uint32_t*>(a.out), a.vocab, row / 4);
  } else {
    EmbeddingKernel<uint16_t, I><<<grid, kThreads, 0, stream>>>(static_cast<const uint16_t*>(a.weight), a.ids,
                                                                static_cast<uint16_t*>(a.out), a.vocab, row / 2);
  }
}

template <typename T, typename I>
void LaunchBackward(const EmbeddingBackwardArgs& a, cudaStream_t stream) {
  EmbeddingBackwardKernel<T, I><<<static_cast<unsigned>(a.tokens), kThreads, 0, stream>>>(
      static_cast<const T*>(a.dout), a.ids, a.dweight, a.vocab, a.hidden);
}

template <typename I>
void DispatchBackward(const EmbeddingBackwardArgs& a, cudaStream_t stream) {
  switch (a.dout_type) {
    case DType::F32: LaunchBackward<float, I>(a, stream); break;
    case DType::BF16: LaunchBackward<__nv_bfloat16, I>(a, stream); break;
    case DType::F16: LaunchBackward<__half, I>(a, stream); break;
    default: throw std::invalid_argument(std::string("embeddingBackward: unsupported dtype ") + DTypeName(a.dout_type));
  }
}

void CheckGrid(const char* op, int64_t tokens) {
  if (tokens > 0x7fffffffLL) throw std::invalid_argument(std::string(op) + ": too many tokens for one launch: " + std::to_string(tokens));
}

}  // namespace

void EmbeddingCuda(const EmbeddingArgs& a, cudaStream_t stream) {
  CheckEmbeddingArgs(a);
  CheckGrid("embedding", a.tokens);
  if (a.tokens == 0 || a.hidden == 0) return;
  if (a.id_type == DType::I64) LaunchForward<int64_t>(a, stream);
  else LaunchForward<int32_t>(a, stream);
}

void EmbeddingBackwardCuda(const EmbeddingBackwardArgs& a, cudaStream_t stream) {
  CheckEmbeddingBackwardArgs(a);
  CheckGrid("embeddingBackward", a.tokens);
  if (a.tokens == 0 || a.hidden == 0) return;
  if (a.id_type == DType::I64) DispatchBackward<int64_t>(a, stream);
  else DispatchBackward<int32_t>(a, stream);
}

}  // namespace aerie
