/*
 * Elementwise family on CUDA (see elementwise.h). Every kernel is memory-bound, so all of them have
 * the same shape: a grid-stride loop over 16-byte packs (when every pointer involved is aligned and
 * the sizes allow it) followed by a scalar loop over the tail, fp32 math in registers.
 *
 * Reductions accumulate in fp64. The whole-tensor ones run a first kernel on a grid that depends
 * only on n (each thread a fixed grid-stride subset, then a fixed tree per block) and a second,
 * single-block kernel over the per-block partials: the same input always gives the same bits. The
 * last-dimension ones give each row to a warp (short rows) or a block (long rows).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math_constants.h>

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "elementwise.h"
#include "elementwise_common.cuh"

namespace aerie {
namespace {

using ew::FromF;
using ew::IsFloatLike;
using ew::Pack;
using ew::ToF;

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t GlobalThread() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t GridThreads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Packs of N over [0, n_vec) (n_vec a multiple of N), then single elements over [n_vec, n).
template <int N, typename VecF, typename ScalarF>
__device__ __forceinline__ void ForEach(int64_t n, int64_t n_vec, VecF vec, ScalarF scalar) {
  const int64_t stride = GridThreads();
  for (int64_t v = GlobalThread(); v < n_vec / N; v += stride) vec(v * N);
  for (int64_t i = n_vec + GlobalThread(); i < n; i += stride) scalar(i);
}

template <typename To, typename From>
__device__ __forceinline__ To Convert(From v) {
  if constexpr (IsFloatLike<To>::value) {
    if constexpr (IsFloatLike<From>::value) return FromF<To>(ToF(v));
    else return FromF<To>(static_cast<float>(v));  // int -> float rounds to nearest
  } else {
    return static_cast<To>(v);
  }
}

// ---- cast ---------------------------------------------------------------------------------------

template <typename From, typename To, int N>
__global__ void CastKernel(const From* __restrict__ x, To* __restrict__ y, int64_t n, int64_t n_vec) {
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        Pack<From, N> in = *reinterpret_cast<const Pack<From, N>*>(x + i);
        Pack<To, N> out;
#pragma unroll
        for (int k = 0; k < N; ++k) out.v[k] = Convert<To>(in.v[k]);
        *reinterpret_cast<Pack<To, N>*>(y + i) = out;
      },
      [&](int64_t i) { y[i] = Convert<To>(x[i]); });
}

// ---- fill ---------------------------------------------------------------------------------------

template <typename U>
__global__ void FillKernel(U* __restrict__ y, U value, int64_t n, int64_t n_vec) {
  constexpr int N = ew::Vec16<U>();
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        Pack<U, N> pk;
#pragma unroll
        for (int k = 0; k < N; ++k) pk.v[k] = value;
        *reinterpret_cast<Pack<U, N>*>(y + i) = pk;
      },
      [&](int64_t i) { y[i] = value; });
}

// ---- add / mul / scale / axpy -------------------------------------------------------------------

struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};

// out = op(a, b[i % nb]). The pack path needs nb % N == 0, so a pack of b never wraps.
template <typename T, typename Op>
__global__ void BinaryKernel(const T* a, const T* b, T* out, int64_t n, int64_t nb, int64_t n_vec, Op op) {
  constexpr int N = ew::Vec16<T>();
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        float va[N], vb[N], r[N];
        ew::LoadF<T, N>(a + i, va);
        ew::LoadF<T, N>(b + (nb == n ? i : i % nb), vb);
#pragma unroll
        for (int k = 0; k < N; ++k) r[k] = op(va[k], vb[k]);
        ew::StoreF<T, N>(out + i, r);
      },
      [&](int64_t i) { out[i] = FromF<T>(op(ToF(a[i]), ToF(b[nb == n ? i : i % nb]))); });
}

template <typename T>
__global__ void ScaleKernel(const T* x, T* out, int64_t n, int64_t n_vec, float alpha) {
  constexpr int N = ew::Vec16<T>();
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        float v[N];
        ew::LoadF<T, N>(x + i, v);
#pragma unroll
        for (int k = 0; k < N; ++k) v[k] *= alpha;
        ew::StoreF<T, N>(out + i, v);
      },
      [&](int64_t i) { out[i] = FromF<T>(alpha * ToF(x[i])); });
}

template <typename TY, typename TX>
__global__ void AxpyKernel(TY* y, const TX* __restrict__ x, int64_t n, int64_t n_vec, float alpha) {
  constexpr int N = sizeof(TY) > sizeof(TX) ? ew::Vec16<TY>() : ew::Vec16<TX>();
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        float vy[N], vx[N];
        ew::LoadF<TY, N>(y + i, vy);
        ew::LoadF<TX, N>(x + i, vx);
#pragma unroll
        for (int k = 0; k < N; ++k) vy[k] += alpha * vx[k];
        ew::StoreF<TY, N>(y + i, vy);
      },
      [&](int64_t i) { y[i] = FromF<TY>(ToF(y[i]) + alpha * ToF(x[i])); });
}

// ---- reductions ---------------------------------------------------------------------------------

__device__ __forceinline__ double MaxNan(double a, double b) { return (a > b || a != a) ? a : b; }

template <bool kMax>
__device__ __forceinline__ double Combine(double a, double b) {
  if constexpr (kMax) return MaxNan(a, b);
  else return a + b;
}

template <bool kMax>
__device__ __forceinline__ double Identity() {
  if constexpr (kMax) return -CUDART_INF;
  else return 0.0;
}

template <bool kMax>
__device__ __forceinline__ double WarpReduce(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Combine<kMax>(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction in a fixed order; every thread of the block must call it. Result valid in
// thread 0.
template <bool kMax>
__device__ __forceinline__ double BlockReduce(double v) {
  __shared__ double warp_part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpReduce<kMax>(v);
  __syncthreads();  // warp_part may still be read by a previous call
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  v = lane < warps ? warp_part[lane] : Identity<kMax>();
  if (warp == 0) v = WarpReduce<kMax>(v);
  return v;
}

template <typename T, bool kMax>
__global__ void ReducePartialKernel(const T* __restrict__ x, int64_t n, int64_t n_vec, double* __restrict__ partial) {
  constexpr int N = ew::Vec16<T>();
  double acc = Identity<kMax>();
  ForEach<N>(
      n, n_vec,
      [&](int64_t i) {
        float v[N];
        ew::LoadF<T, N>(x + i, v);
#pragma unroll
        for (int k = 0; k < N; ++k) acc = Combine<kMax>(acc, static_cast<double>(v[k]));
      },
      [&](int64_t i) { acc = Combine<kMax>(acc, static_cast<double>(ToF(x[i]))); });
  acc = BlockReduce<kMax>(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <bool kMax>
__global__ void ReduceFinalKernel(const double* __restrict__ partial, int count, float* __restrict__ out) {
  double acc = Identity<kMax>();
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc = Combine<kMax>(acc, partial[i]);
  acc = BlockReduce<kMax>(acc);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc);
}

// One warp per row: rows of at most kWarpRowMax elements.
template <typename T, bool kMax, int N>
__global__ void RowReduceWarpKernel(const T* __restrict__ x, int64_t rows, int64_t cols, float* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t warps_per_grid = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = GlobalThread() >> 5; r < rows; r += warps_per_grid) {
    const T* row = x + r * cols;
    double acc = Identity<kMax>();
    for (int64_t c = lane * N; c < cols; c += 32 * N) {
      float v[N];
      ew::LoadF<T, N>(row + c, v);
#pragma unroll
      for (int k = 0; k < N; ++k) acc = Combine<kMax>(acc, static_cast<double>(v[k]));
    }
    acc = WarpReduce<kMax>(acc);
    if (lane == 0) out[r] = static_cast<float>(acc);
  }
}

// One block per row (grid-stride over rows).
template <typename T, bool kMax, int N>
__global__ void RowReduceBlockKernel(const T* __restrict__ x, int64_t rows, int64_t cols, float* __restrict__ out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * cols;
    double acc = Identity<kMax>();
    for (int64_t c = static_cast<int64_t>(threadIdx.x) * N; c < cols; c += static_cast<int64_t>(blockDim.x) * N) {
      float v[N];
      ew::LoadF<T, N>(row + c, v);
#pragma unroll
      for (int k = 0; k < N; ++k) acc = Combine<kMax>(acc, static_cast<double>(v[k]));
    }
    acc = BlockReduce<kMax>(acc);
    if (threadIdx.x == 0) out[r] = static_cast<float>(acc);
  }
}

// ---- launch helpers -----------------------------------------------------------------------------

// Elements covered by N-packs when every pointer is aligned to the pack size, else 0.
int64_t VecElems(int64_t n, int N, size_t pack_bytes, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!ew::Aligned(p, pack_bytes)) return 0;
  return (n / N) * N;
}

unsigned GridForElems(int64_t n, int64_t n_vec, int N) {
  int64_t items = std::max<int64_t>(n_vec / N, n - n_vec);
  return ew::GridFor(items, kThreads);
}

void RequireFloatType(const char* op, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(t));
}

template <typename From>
void CastFrom(const From* x, DType y_type, void* y, int64_t n, cudaStream_t stream) {
  auto launch = [&](auto* typed_y) {
    using To = std::remove_pointer_t<decltype(typed_y)>;
    constexpr int N = sizeof(From) > sizeof(To) ? ew::Vec16<From>() : ew::Vec16<To>();
    // Each pack must be aligned to its own size (the larger one is 16 bytes).
    bool aligned = ew::Aligned(x, N * sizeof(From)) && ew::Aligned(y, N * sizeof(To));
    int64_t n_vec = aligned ? (n / N) * N : 0;
    CastKernel<From, To, N><<<GridForElems(n, n_vec, N), kThreads, 0, stream>>>(x, typed_y, n, n_vec);
  };
  switch (y_type) {
    case DType::F32: launch(static_cast<float*>(y)); break;
    case DType::BF16: launch(static_cast<__nv_bfloat16*>(y)); break;
    case DType::F16: launch(static_cast<__half*>(y)); break;
    case DType::I32: launch(static_cast<int32_t*>(y)); break;
    case DType::I64: launch(static_cast<int64_t*>(y)); break;
    default: throw std::invalid_argument("cast: unsupported target dtype");
  }
}

template <bool kMax>
void ReduceAllCuda(const char* op, const void* x, DType type, int64_t n, float* out, cudaStream_t stream) {
  RequireFloatType(op, type);
  // A grid fixed by n alone (at most 1024 blocks): the same partials, hence bits, on every run.
  constexpr int64_t kPerBlock = 8192;
  int blocks = static_cast<int>(std::min<int64_t>(1024, std::max<int64_t>(1, (n + kPerBlock - 1) / kPerBlock)));
  ew::Scratch partial(sizeof(double) * blocks);
  AERIE_DISPATCH_FLOAT(type, T, op, {
    constexpr int N = ew::Vec16<T>();
    int64_t n_vec = VecElems(n, N, 16, {x});
    ReducePartialKernel<T, kMax><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(x), n, n_vec, partial.as<double>());
  });
  ReduceFinalKernel<kMax><<<1, kThreads, 0, stream>>>(partial.as<double>(), blocks, out);
}

constexpr int64_t kWarpRowMax = 1024;  // rows up to this many elements go one per warp

template <bool kMax>
void ReduceRowsCuda(const char* op, const void* x, DType type, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  RequireFloatType(op, type);
  if (rows == 0) return;
  AERIE_DISPATCH_FLOAT(type, T, op, {
    constexpr int N = ew::Vec16<T>();
    const T* xt = static_cast<const T*>(x);
    bool vec = cols % N == 0 && ew::Aligned(x, 16);
    if (cols <= kWarpRowMax) {
      unsigned grid = ew::GridFor(rows, kThreads / 32);
      if (vec) RowReduceWarpKernel<T, kMax, N><<<grid, kThreads, 0, stream>>>(xt, rows, cols, out);
      else RowReduceWarpKernel<T, kMax, 1><<<grid, kThreads, 0, stream>>>(xt, rows, cols, out);
    } else {
      unsigned grid = ew::GridFor(rows, 1);
      if (vec) RowReduceBlockKernel<T, kMax, N><<<grid, kThreads, 0, stream>>>(xt, rows, cols, out);
      else RowReduceBlockKernel<T, kMax, 1><<<grid, kThreads, 0, stream>>>(xt, rows, cols, out);
    }
  });
}

}  // namespace

void CastCuda(const void* x, DType x_type, void* y, DType y_type, int64_t n, cudaStream_t stream) {
  if (!CastSupported(x_type, y_type))
    throw std::invalid_argument(std::string("cast: ") + DTypeName(x_type) + " -> " + DTypeName(y_type) + " is not supported");
  if (n == 0) return;
  switch (x_type) {
    case DType::F32: CastFrom(static_cast<const float*>(x), y_type, y, n, stream); break;
    case DType::BF16: CastFrom(static_cast<const __nv_bfloat16*>(x), y_type, y, n, stream); break;
    case DType::F16: CastFrom(static_cast<const __half*>(x), y_type, y, n, stream); break;
    case DType::I32: CastFrom(static_cast<const int32_t*>(x), y_type, y, n, stream); break;
    case DType::I64: CastFrom(static_cast<const int64_t*>(x), y_type, y, n, stream); break;
    case DType::U8: case DType::Bool: CastFrom(static_cast<const uint8_t*>(x), y_type, y, n, stream); break;
  }
}

void FillCuda(void* y, DType type, int64_t n, double value, cudaStream_t stream) {
  if (n == 0) return;
  uint64_t bits = FillPattern(type, value);
  auto launch = [&](auto pattern) {
    using U = decltype(pattern);
    constexpr int N = ew::Vec16<U>();
    int64_t n_vec = VecElems(n, N, 16, {y});
    FillKernel<U><<<GridForElems(n, n_vec, N), kThreads, 0, stream>>>(static_cast<U*>(y), pattern, n, n_vec);
  };
  switch (DTypeSize(type)) {
    case 1: launch(static_cast<uint8_t>(bits)); break;
    case 2: launch(static_cast<uint16_t>(bits)); break;
    case 4: launch(static_cast<uint32_t>(bits)); break;
    default: launch(static_cast<uint64_t>(bits)); break;
  }
}

template <typename Op>
static void BinaryCuda(const char* op_name, const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, Op op,
                       cudaStream_t stream) {
  RequireFloatType(op_name, type);
  if (n == 0) return;
  if (nb <= 0 || n % nb != 0)
    throw std::invalid_argument(std::string(op_name) + ": b's " + std::to_string(nb) + " elements do not divide a's " + std::to_string(n));
  AERIE_DISPATCH_FLOAT(type, T, op_name, {
    constexpr int N = ew::Vec16<T>();
    int64_t n_vec = nb % N == 0 ? VecElems(n, N, 16, {a, b, out}) : 0;
    BinaryKernel<T, Op><<<GridForElems(n, n_vec, N), kThreads, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                                            static_cast<T*>(out), n, nb, n_vec, op);
  });
}

void AddCuda(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, cudaStream_t stream) {
  BinaryCuda("add", a, b, out, type, n, nb, AddOp{}, stream);
}

void MulCuda(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, cudaStream_t stream) {
  BinaryCuda("mul", a, b, out, type, n, nb, MulOp{}, stream);
}

void ScaleCuda(const void* x, void* out, DType type, int64_t n, float alpha, cudaStream_t stream) {
  RequireFloatType("scale", type);
  if (n == 0) return;
  AERIE_DISPATCH_FLOAT(type, T, "scale", {
    constexpr int N = ew::Vec16<T>();
    int64_t n_vec = VecElems(n, N, 16, {x, out});
    ScaleKernel<T><<<GridForElems(n, n_vec, N), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(out), n, n_vec, alpha);
  });
}

void AxpyCuda(void* y, DType y_type, const void* x, DType x_type, int64_t n, float alpha, cudaStream_t stream) {
  RequireFloatType("axpy", y_type);
  RequireFloatType("axpy", x_type);
  if (n == 0) return;
  AERIE_DISPATCH_FLOAT(y_type, TY, "axpy", {
    AERIE_DISPATCH_FLOAT(x_type, TX, "axpy", {
      constexpr int N = sizeof(TY) > sizeof(TX) ? ew::Vec16<TY>() : ew::Vec16<TX>();
      int64_t n_vec = (ew::Aligned(y, N * sizeof(TY)) && ew::Aligned(x, N * sizeof(TX))) ? (n / N) * N : 0;
      AxpyKernel<TY, TX><<<GridForElems(n, n_vec, N), kThreads, 0, stream>>>(static_cast<TY*>(y), static_cast<const TX*>(x), n, n_vec,
                                                                              alpha);
    });
  });
}

void ReduceSumCuda(const void* x, DType type, int64_t n, float* out, cudaStream_t stream) {
  ReduceAllCuda<false>("sum", x, type, n, out, stream);
}
void ReduceMaxCuda(const void* x, DType type, int64_t n, float* out, cudaStream_t stream) {
  ReduceAllCuda<true>("max", x, type, n, out, stream);
}
void RowSumCuda(const void* x, DType type, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  ReduceRowsCuda<false>("sumLastDim", x, type, rows, cols, out, stream);
}
void RowMaxCuda(const void* x, DType type, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  ReduceRowsCuda<true>("maxLastDim", x, type, rows, cols, out, stream);
}

}  // namespace aerie
