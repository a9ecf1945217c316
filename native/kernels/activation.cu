/*
 * SwiGLU on CUDA (see activation.h), forward and backward. Memory-bound: each thread walks packs of
 * N elements of a row (16 bytes when inter, the strides and every pointer allow it, else single
 * elements) in a grid-stride loop over rows * inter / N packs; a pack never crosses a row, so the
 * row strides of the fused (rows, 2*inter) layout cost nothing. fp32 math, bit for bit the CPU
 * twin's (activation_math.h: an exp of IEEE operations instead of expf, no FMA contraction).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <stdexcept>
#include <string>

#include "activation.h"
#include "activation_math.h"
#include "elementwise_common.cuh"

namespace aerie {
namespace {

constexpr int kThreads = 256;

template <typename T, int N>
__global__ void SwigluKernel(const T* __restrict__ gate, const T* __restrict__ up, int64_t in_stride, T* __restrict__ out,
                             int64_t rows, int64_t inter) {
  const int64_t per_row = inter / N;
  const int64_t total = rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < total; p += stride) {
    const int64_t r = p / per_row, c = (p - r * per_row) * N;
    float g[N], u[N], o[N];
    ew::LoadF<T, N>(gate + r * in_stride + c, g);
    ew::LoadF<T, N>(up + r * in_stride + c, u);
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = act::Swiglu(g[k], u[k]);
    ew::StoreF<T, N>(out + r * inter + c, o);
  }
}

template <typename T, int N>
__global__ void SwigluBackwardKernel(const T* __restrict__ dout, const T* __restrict__ gate, const T* __restrict__ up, int64_t in_stride,
                                     T* __restrict__ dgate, T* __restrict__ dup, int64_t grad_stride, int64_t rows, int64_t inter) {
  const int64_t per_row = inter / N;
  const int64_t total = rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < total; p += stride) {
    const int64_t r = p / per_row, c = (p - r * per_row) * N;
    float g[N], u[N], d[N], dg[N], du[N];
    ew::LoadF<T, N>(gate + r * in_stride + c, g);
    ew::LoadF<T, N>(up + r * in_stride + c, u);
    ew::LoadF<T, N>(dout + r * inter + c, d);
#pragma unroll
    for (int k = 0; k < N; ++k) act::SwigluGrad(d[k], g[k], u[k], &dg[k], &du[k]);
    ew::StoreF<T, N>(dgate + r * grad_stride + c, dg);
    ew::StoreF<T, N>(dup + r * grad_stride + c, du);
  }
}

bool PackFits(int N, std::initializer_list<int64_t> sizes, std::initializer_list<const void*> ptrs) {
  for (int64_t s : sizes)
    if (s % N != 0) return false;
  for (const void* p : ptrs)
    if (!ew::Aligned(p, 16)) return false;
  return true;
}

void CheckArgs(const char* op, DType type, int64_t inter, int64_t in_stride, int64_t grad_stride) {
  if (!IsFloating(type)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(type));
  if (in_stride < inter || grad_stride < inter) throw std::invalid_argument(std::string(op) + ": row strides must be >= inter");
}

}  // namespace

void SwigluCuda(const void* gate, const void* up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter,
                cudaStream_t stream) {
  CheckArgs("swiglu", type, inter, in_stride, inter);
  if (rows == 0 || inter == 0) return;
  AERIE_DISPATCH_FLOAT(type, T, "swiglu", {
    constexpr int V = ew::Vec16<T>();
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    T* o = static_cast<T*>(out);
    if (PackFits(V, {inter, in_stride}, {gate, up, out})) {
      SwigluKernel<T, V><<<ew::GridFor(rows * (inter / V), kThreads), kThreads, 0, stream>>>(g, u, in_stride, o, rows, inter);
    } else {
      SwigluKernel<T, 1><<<ew::GridFor(rows * inter, kThreads), kThreads, 0, stream>>>(g, u, in_stride, o, rows, inter);
    }
  });
}

void SwigluBackwardCuda(const void* dout, const void* gate, const void* up, int64_t in_stride, void* dgate, void* dup,
                        int64_t grad_stride, DType type, int64_t rows, int64_t inter, cudaStream_t stream) {
  CheckArgs("swigluBackward", type, inter, in_stride, grad_stride);
  if (rows == 0 || inter == 0) return;
  AERIE_DISPATCH_FLOAT(type, T, "swigluBackward", {
    constexpr int V = ew::Vec16<T>();
    const T* d = static_cast<const T*>(dout);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    T* dg = static_cast<T*>(dgate);
    T* du = static_cast<T*>(dup);
    if (PackFits(V, {inter, in_stride, grad_stride}, {dout, gate, up, dgate, dup})) {
      SwigluBackwardKernel<T, V><<<ew::GridFor(rows * (inter / V), kThreads), kThreads, 0, stream>>>(d, g, u, in_stride, dg, du, grad_stride,
                                                                                                    rows, inter);
    } else {
      SwigluBackwardKernel<T, 1><<<ew::GridFor(rows * inter, kThreads), kThreads, 0, stream>>>(d, g, u, in_stride, dg, du, grad_stride, rows,
                                                                                             inter);
    }
  });
}

}  // namespace aerie
