/*
 * SwiGLU on CUDA (see activation.h), forward and backward. Memory-bound: each thread walks packs of
 * N elements of a row (16 bytes when inter, the strides and every pointer allow it, else single
 * elements) in a grid-stride loop over rows * inter / N packs; a pack never crosses a row, so the
 * row strides of the fused (rows, 2*inter) layout cost nothing. The forward prefetches its next
 * batch of packs while computing (its software exp takes about as much issue time as the memory
 * traffic takes bandwidth). fp32 math, bit for bit the CPU twin's (activation_math.h: an exp of
 * IEEE operations instead of expf, no FMA contraction).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "activation.h"
#include "activation_math.h"
#include "elementwise_common.cuh"

namespace aerie {
namespace {

constexpr int kThreads = 256;

// Forward: each thread takes P packs at a time (a batch: packs p, p + stride, ..., stride = the
// grid's threads), and loads the next batch before computing this one, so its loads are in flight
// while the exp runs. A pack's row and column are tracked by adding the stride with a carry (no
// division per pack). The grid is what the launch bounds keep resident at once (B blocks per
// multiprocessor), so every block does the same work in a single wave. The exp's issue time is
// close to the memory time, so (P, B) trade loads in flight against registers; the default is the
// fastest measured on an H200 (bench/membw.ts), AERIE_SWIGLU_FWD="P,B" picks another compiled pair
// (for tuning on other GPUs).
struct SwigluFwdConfig {
  int packs, blocks_per_sm;
};
constexpr SwigluFwdConfig kSwigluFwdConfigs[] = {{2, 3}, {1, 4}, {1, 5}, {2, 2}, {4, 2}};

template <typename T, int N, int P>
struct SwigluBatch {
  ew::Pack<T, N> g[P], u[P];
  int64_t out_off[P];  // element offset of each pack in out; -1 past the end
};

// Loads the batch whose first pack is p (row r, pack column c; both advanced past the batch).
// kPairs (SwigluPairsCuda): output pack c comes from the 2N elements at column 2 c N of gate, pairs
// (gate, up): g takes the first N of them and u the next N (see PairGate / PairUp).
template <typename T, int N, int P, bool kPairs = false>
__device__ __forceinline__ void LoadSwigluBatch(const T* __restrict__ gate, const T* __restrict__ up, int64_t in_stride, int64_t inter,
                                                int64_t per_row, int64_t total, int64_t p, int64_t stride, int64_t step_r, int64_t step_c,
                                                int64_t& r, int64_t& c, SwigluBatch<T, N, P>& b) {
#pragma unroll
  for (int i = 0; i < P; ++i) {
    if (p + i * stride < total) {
      if constexpr (kPairs) {
        const int64_t in = r * in_stride + 2 * c * N;
        b.g[i] = *reinterpret_cast<const ew::Pack<T, N>*>(gate + in);
        b.u[i] = *reinterpret_cast<const ew::Pack<T, N>*>(gate + in + N);
      } else {
        const int64_t in = r * in_stride + c * N;
        b.g[i] = *reinterpret_cast<const ew::Pack<T, N>*>(gate + in);
        b.u[i] = *reinterpret_cast<const ew::Pack<T, N>*>(up + in);
      }
      b.out_off[i] = r * inter + c * N;
    } else {
      b.out_off[i] = -1;
    }
    r += step_r;
    c += step_c;
    if (c >= per_row) {
      c -= per_row;
      ++r;
    }
  }
}

// Element j of the 2N loaded in pairs mode: the first N from g, the rest from u.
template <typename T, int N>
__device__ __forceinline__ float PairElem(const ew::Pack<T, N>& g, const ew::Pack<T, N>& u, int j) {
  return j < N ? ew::ToF(g.v[j]) : ew::ToF(u.v[j - N]);
}

template <typename T, int N, int P, int B, bool kPairs = false>
__global__ void __launch_bounds__(kThreads, B)
    SwigluKernel(const T* __restrict__ gate, const T* __restrict__ up, int64_t in_stride, T* __restrict__ out, int64_t rows, int64_t inter) {
  const int64_t per_row = inter / N;
  const int64_t total = rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t step_r = stride / per_row, step_c = stride - step_r * per_row;
  int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int64_t r = p / per_row, c = p - r * per_row;
  SwigluBatch<T, N, P> cur;
  if (p < total) LoadSwigluBatch<T, N, P, kPairs>(gate, up, in_stride, inter, per_row, total, p, stride, step_r, step_c, r, c, cur);
  for (; p < total; p += P * stride) {
    SwigluBatch<T, N, P> next;
    const int64_t pn = p + P * stride;
    if (pn < total) LoadSwigluBatch<T, N, P, kPairs>(gate, up, in_stride, inter, per_row, total, pn, stride, step_r, step_c, r, c, next);
#pragma unroll
    for (int i = 0; i < P; ++i) {
      if (cur.out_off[i] >= 0) {
        float o[N];
#pragma unroll
        for (int k = 0; k < N; ++k) {
          if constexpr (kPairs) o[k] = act::Swiglu(PairElem<T, N>(cur.g[i], cur.u[i], 2 * k), PairElem<T, N>(cur.g[i], cur.u[i], 2 * k + 1));
          else o[k] = act::Swiglu(ew::ToF(cur.g[i].v[k]), ew::ToF(cur.u[i].v[k]));
        }
        ew::StoreF<T, N>(out + cur.out_off[i], o);
      }
    }
    cur = next;
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

template <typename T, int N, int P, int B, bool kPairs>
void LaunchSwigluWith(const T* g, const T* u, int64_t in_stride, T* o, int64_t rows, int64_t inter, cudaStream_t stream) {
  const unsigned grid = ew::GridFor(rows * (inter / N), static_cast<int64_t>(kThreads) * P, B);
  SwigluKernel<T, N, P, B, kPairs><<<grid, kThreads, 0, stream>>>(g, u, in_stride, o, rows, inter);
}

// Index into kSwigluFwdConfigs: 0, or the pair AERIE_SWIGLU_FWD names.
int SwigluFwdConfigIndex() {
  static const int index = [] {
    const char* e = std::getenv("AERIE_SWIGLU_FWD");
    if (!e || !*e) return 0;
    for (int i = 0; i < static_cast<int>(sizeof(kSwigluFwdConfigs) / sizeof(kSwigluFwdConfigs[0])); ++i) {
      const std::string name = std::to_string(kSwigluFwdConfigs[i].packs) + "," + std::to_string(kSwigluFwdConfigs[i].blocks_per_sm);
      if (name == e) return i;
    }
    throw std::invalid_argument(std::string("AERIE_SWIGLU_FWD=") + e + " is not a compiled pair (2,3 1,4 1,5 2,2 4,2)");
  }();
  return index;
}

template <typename T, int N, bool kPairs = false>
void LaunchSwiglu(const T* g, const T* u, int64_t in_stride, T* o, int64_t rows, int64_t inter, cudaStream_t stream) {
  switch (SwigluFwdConfigIndex()) {
    case 1: LaunchSwigluWith<T, N, 1, 4, kPairs>(g, u, in_stride, o, rows, inter, stream); break;
    case 2: LaunchSwigluWith<T, N, 1, 5, kPairs>(g, u, in_stride, o, rows, inter, stream); break;
    case 3: LaunchSwigluWith<T, N, 2, 2, kPairs>(g, u, in_stride, o, rows, inter, stream); break;
    case 4: LaunchSwigluWith<T, N, 4, 2, kPairs>(g, u, in_stride, o, rows, inter, stream); break;
    default: LaunchSwigluWith<T, N, 2, 3, kPairs>(g, u, in_stride, o, rows, inter, stream); break;
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
    if (PackFits(V, {inter, in_stride}, {gate, up, out})) LaunchSwiglu<T, V>(g, u, in_stride, o, rows, inter, stream);
    else LaunchSwiglu<T, 1>(g, u, in_stride, o, rows, inter, stream);
  });
}

void SwigluPairsCuda(const void* gate_up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter,
                     cudaStream_t stream) {
  CheckArgs("swiglu", type, 2 * inter, in_stride, 2 * inter);
  if (rows == 0 || inter == 0) return;
  AERIE_DISPATCH_FLOAT(type, T, "swiglu", {
    constexpr int V = ew::Vec16<T>();
    const T* gu = static_cast<const T*>(gate_up);
    T* o = static_cast<T*>(out);
    // A pack of V outputs reads 2V inputs as two 16-byte packs: 2 inter and in_stride in whole packs.
    if (PackFits(V, {inter, in_stride}, {gate_up, out})) LaunchSwiglu<T, V, true>(gu, gu, in_stride, o, rows, inter, stream);
    else LaunchSwiglu<T, 1, true>(gu, gu, in_stride, o, rows, inter, stream);
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
