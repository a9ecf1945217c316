/*
 * Loss kernels (see loss.h). One thread block per row for everything row-wise: rows are long (a
 * vocabulary, up to ~256k), so each block makes two passes over its row in global memory:
 *   pass 1: an online (max, sum of exp) per thread, merged across the block; argmax where needed;
 *   pass 2: write softmax / log-softmax / the logits gradient, reading the row again.
 * Reductions are fixed-order (warp shuffles, then one value per warp), so results are deterministic.
 *
 * The fused projection + loss runs chunks of rows: GEMM (MatmulCuda) -> fp32 logits [chunk, V] in
 * scratch, a row kernel that writes the per-token loss and, in place, the logits gradient, then the
 * two backward GEMMs (dh = dz @ W, dW += dz^T @ h). Everything is queued on one stream with no host
 * sync; the scratch comes from the caching allocator and goes back to it at the end (stream-ordered
 * reuse). loss_sum is summed at the end from the per-token losses by one block in fp64, so it does
 * not depend on the chunk size.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "allocator.h"
#include "loss.h"
#include "loss_gemms.h"
#include "matmul.h"

namespace aerie {
namespace {

__device__ __forceinline__ float ToF(float v) { return v; }
__device__ __forceinline__ float ToF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToF(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }

// Running max and sum of exp(x - max): the online-softmax state.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum Push(MaxSum a, float x) {
  if (x > a.m) return {x, a.s * expf(a.m - x) + 1.0f};  // a.m == -inf: a.s == 0, expf(-inf) == 0
  return {a.m, a.s + expf(x - a.m)};
}
__device__ __forceinline__ MaxSum Merge(MaxSum a, MaxSum b) {
  if (a.m < b.m) { MaxSum t = a; a = b; b = t; }
  if (b.m == -INFINITY) return a;  // nothing on b's side (also avoids -inf - -inf)
  return {a.m, a.s + b.s * expf(b.m - a.m)};
}

// Largest value, first index on ties.
struct ArgMax {
  float v;
  int i;
};
__device__ __forceinline__ ArgMax Better(ArgMax a, ArgMax b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

__device__ __forceinline__ float ShflXor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double ShflXor(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ int ShflXor(int v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ MaxSum ShflXor(MaxSum v, int o) { return {ShflXor(v.m, o), ShflXor(v.s, o)}; }
__device__ __forceinline__ ArgMax ShflXor(ArgMax v, int o) { return {ShflXor(v.v, o), ShflXor(v.i, o)}; }

// Reduces v over the block; every thread gets the same result. blockDim.x must be a multiple of 32
// and every thread must call it (it synchronises).
template <typename T, typename Op>
__device__ T BlockAllReduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  __syncthreads();  // the previous call's readers of `partial` are done
  for (int o = 16; o > 0; o >>= 1) v = op(v, ShflXor(v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  // Every warp reduces the per-warp partials itself, in the same order: no broadcast step needed.
  v = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, ShflXor(v, o));
  return v;
}

struct AddF {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct AddD {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MergeOp {
  __device__ MaxSum operator()(MaxSum a, MaxSum b) const { return Merge(a, b); }
};
struct BetterOp {
  __device__ ArgMax operator()(ArgMax a, ArgMax b) const { return Better(a, b); }
};

template <typename T>
__device__ float RowLse(const T* row, int64_t cols) {
  MaxSum ms{-INFINITY, 0.0f};
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ms = Push(ms, ToF(row[c]));
  ms = BlockAllReduce(ms, MergeOp{}, MaxSum{-INFINITY, 0.0f});
  return ms.m + logf(ms.s);
}

// ---- softmax / log-softmax ------------------------------------------------------------------

// y may alias x (same dtype): pass 2 reads and writes each element from the same thread, after the barrier.
template <typename Tx, typename Ty>
__global__ void SoftmaxForwardKernel(const Tx* x,  // (rows, cols)
                                     Ty* y,        // (rows, cols)
                                     int64_t cols, bool log) {
  const Tx* xr = x + static_cast<int64_t>(blockIdx.x) * cols;
  Ty* yr = y + static_cast<int64_t>(blockIdx.x) * cols;
  const float lse = RowLse(xr, cols);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float z = ToF(xr[c]) - lse;
    yr[c] = FromF<Ty>(log ? z : expf(z));
  }
}

// dx may alias dy: every dy is read in pass 1 before the block-wide reduction, and pass 2 reads
// and writes each element from the same thread.
template <typename Ty, typename Tg>
__global__ void SoftmaxBackwardKernel(const Ty* __restrict__ y,  // (rows, cols)
                                      const Tg* dy,              // (rows, cols)
                                      Tg* dx,                    // (rows, cols)
                                      int64_t cols, bool log) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * cols;
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float g = ToF(dy[base + c]);
    s += log ? g : g * ToF(y[base + c]);
  }
  s = BlockAllReduce(s, AddF{}, 0.0f);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float g = ToF(dy[base + c]), yc = ToF(y[base + c]);
    dx[base + c] = FromF<Tg>(log ? g - expf(yc) * s : yc * (g - s));
  }
}

// ---- fused projection + loss: row kernels over one chunk of fp32 logits ----------------------

// Cross-entropy rows. z: the chunk's logits; dz: the gradient, written in place over z when Tdz is
// float (then dz == z), else into a separate 16-bit buffer. tokens are offset to the chunk.
template <typename Tdz>
__global__ void CrossEntropyRowsKernel(const float* z,         // (rows, V)
                                       Tdz* dz,                // (rows, V) or nullptr; may alias z
                                       const int32_t* targets,  // (rows,)
                                       const float* weights,    // (rows,)
                                       float* token_loss,       // (rows,)
                                       int64_t vocab, float grad_scale) {
  const int64_t row = blockIdx.x, base = row * vocab;
  const float w = weights[row];
  if (w == 0.0f) {  // ignored token: whole block leaves together (no barrier skipped by some threads)
    if (threadIdx.x == 0) token_loss[row] = 0.0f;
    if (dz)
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) dz[base + c] = FromF<Tdz>(0.0f);
    return;
  }
  const int32_t y = targets[row];
  const bool valid = y >= 0 && y < vocab;
  // Read z[y] before the reduction's barrier: pass 2 may overwrite it in place.
  const float zy = (threadIdx.x == 0 && valid) ? z[base + y] : 0.0f;
  const float lse = RowLse(z + base, vocab);
  if (threadIdx.x == 0) token_loss[row] = valid ? lse - zy : NAN;  // a bad target poisons the loss
  if (!dz) return;
  const float g = valid ? w * grad_scale : 0.0f;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    float q = expf(z[base + c] - lse);
    dz[base + c] = FromF<Tdz>(g * (q - (c == y ? 1.0f : 0.0f)));
  }
}

// Forward-KL rows: p from the target logits zt, q from the draft logits z.
template <typename Tdz>
__global__ void KlRowsKernel(const float* z,               // (rows, V)
                             const float* __restrict__ zt,  // (rows, V)
                             Tdz* dz,                      // (rows, V) or nullptr; may alias z
                             const float* weights,          // (rows,)
                             float* token_loss,             // (rows,)
                             uint8_t* argmax_match,         // (rows,) or nullptr
                             int64_t vocab, float grad_scale) {
  const int64_t row = blockIdx.x, base = row * vocab;
  MaxSum q{-INFINITY, 0.0f}, p{-INFINITY, 0.0f};
  ArgMax aq{-INFINITY, INT_MAX}, ap{-INFINITY, INT_MAX};
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    const float zc = z[base + c], ztc = zt[base + c];
    q = Push(q, zc);
    p = Push(p, ztc);
    aq = Better(aq, ArgMax{zc, static_cast<int>(c)});
    ap = Better(ap, ArgMax{ztc, static_cast<int>(c)});
  }
  q = BlockAllReduce(q, MergeOp{}, MaxSum{-INFINITY, 0.0f});
  p = BlockAllReduce(p, MergeOp{}, MaxSum{-INFINITY, 0.0f});
  aq = BlockAllReduce(aq, BetterOp{}, ArgMax{-INFINITY, INT_MAX});
  ap = BlockAllReduce(ap, BetterOp{}, ArgMax{-INFINITY, INT_MAX});
  const float lse_q = q.m + logf(q.s), lse_p = p.m + logf(p.s);
  const float w = weights[row], g = w * grad_scale;
  float kl = 0.0f;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    const float logq = z[base + c] - lse_q, logp = zt[base + c] - lse_p;
    const float pc = expf(logp);
    kl += pc * (logp - logq);
    if (dz) dz[base + c] = FromF<Tdz>(w == 0.0f ? 0.0f : g * (expf(logq) - pc));
  }
  kl = BlockAllReduce(kl, AddF{}, 0.0f);
  if (threadIdx.x == 0) {
    token_loss[row] = kl;
    if (argmax_match) argmax_match[row] = aq.i == ap.i ? 1 : 0;
  }
}

// loss_sum = sum over weighted tokens of w * loss, fp64, fixed order. One block.
__global__ void WeightedSumKernel(const float* weights, const float* loss, int64_t n, float* out) {
  double s = 0.0;
  for (int64_t t = threadIdx.x; t < n; t += blockDim.x)
    if (weights[t] != 0.0f) s += static_cast<double>(weights[t]) * loss[t];
  s = BlockAllReduce(s, AddD{}, 0.0);
  if (threadIdx.x == 0) *out = static_cast<float>(s);
}

// ---- launchers ------------------------------------------------------------------------------

int RowThreads(int64_t cols) {
  if (cols >= 16384) return 1024;
  if (cols >= 2048) return 512;
  if (cols >= 512) return 256;
  return 128;
}

void CheckRows(int64_t rows, const char* op) {
  if (rows > INT_MAX) throw std::invalid_argument(std::string(op) + ": " + std::to_string(rows) + " rows exceed the grid limit");
}

// Calls f(T{}) with T the CUDA storage type of a floating dtype.
template <typename F>
void DispatchFloat(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::BF16: f(__nv_bfloat16{}); return;
    case DType::F16: f(__half{}); return;
    default: throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(t));
  }
}

// Scratch from the caching allocator, returned when the launcher leaves (also on a throw).
struct Scratch {
  int device;
  void* ptr = nullptr;
  Scratch(int d, size_t bytes) : device(d) {
    if (bytes) ptr = DeviceAlloc(d, bytes);
  }
  ~Scratch() {
    if (ptr) DeviceFree(device, ptr);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

void ProjectCuda(const void* x, const void* w, DType type, float* out, int64_t rows, int64_t vocab, int64_t hidden, int device,
                 cudaStream_t stream) {
  MatmulCuda(LossProjectGemm(x, w, type, out, rows, vocab, hidden), device, stream);
}

void BackwardGemmsCuda(const FusedLossArgs& a, const void* dz, int64_t row0, int64_t rows, int device, cudaStream_t stream) {
  const LossBackwardGemms g = LossBackwardGemmArgs(a, dz, row0, rows);
  MatmulCuda(g.dh, device, stream);
  MatmulCuda(g.dw, device, stream);
}

void RunFusedCuda(const FusedLossArgs& a, bool kl, const char* op, int device, cudaStream_t stream) {
  CheckFusedLossArgs(a, kl, op);
  if (a.vocab > INT_MAX) throw std::invalid_argument(std::string(op) + ": vocab exceeds 2^31 - 1");
  const bool grads = a.dh != nullptr;
  const bool dz_narrow = grads && a.h_type != DType::F32;
  const int64_t chunk = std::min<int64_t>(a.chunk_rows, std::max<int64_t>(a.tokens, 1));
  CheckRows(chunk, op);
  const size_t chunk_elems = static_cast<size_t>(chunk) * a.vocab;
  Scratch logits(device, a.tokens ? chunk_elems * 4 : 0);
  Scratch target_logits(device, a.tokens && kl ? chunk_elems * 4 : 0);
  Scratch dz16(device, a.tokens && dz_narrow ? chunk_elems * 2 : 0);
  const int threads = RowThreads(a.vocab);
  for (int64_t row0 = 0; row0 < a.tokens; row0 += chunk) {
    const int64_t rows = std::min(chunk, a.tokens - row0);
    float* z = static_cast<float*>(logits.ptr);
    ProjectCuda(static_cast<const char*>(a.h) + static_cast<size_t>(row0) * a.hidden * DTypeSize(a.h_type), a.w, a.h_type, z,
                rows, a.vocab, a.hidden, device, stream);
    if (kl)
      ProjectCuda(static_cast<const char*>(a.ht) + static_cast<size_t>(row0) * a.target_hidden * DTypeSize(a.ht_type), a.wt,
                  a.ht_type, static_cast<float*>(target_logits.ptr), rows, a.vocab, a.target_hidden, device, stream);
    DispatchFloat(dz_narrow ? a.h_type : DType::F32, op, [&](auto tag) {
      using Tdz = decltype(tag);
      Tdz* dz = !grads ? nullptr : dz_narrow ? static_cast<Tdz*>(dz16.ptr) : reinterpret_cast<Tdz*>(z);
      if (kl)
        KlRowsKernel<Tdz><<<static_cast<unsigned>(rows), threads, 0, stream>>>(
            z, static_cast<const float*>(target_logits.ptr), dz, a.weights + row0, a.token_loss + row0,
            a.argmax_match ? a.argmax_match + row0 : nullptr, a.vocab, a.grad_scale);
      else
        CrossEntropyRowsKernel<Tdz><<<static_cast<unsigned>(rows), threads, 0, stream>>>(
            z, dz, a.targets + row0, a.weights + row0, a.token_loss + row0, a.vocab, a.grad_scale);
    });
    CheckLaunch(op);
    if (grads) BackwardGemmsCuda(a, dz_narrow ? dz16.ptr : logits.ptr, row0, rows, device, stream);
  }
  WeightedSumKernel<<<1, 1024, 0, stream>>>(a.weights, a.token_loss, a.tokens, a.loss_sum);
}

}  // namespace

void SoftmaxForwardCuda(const void* x, DType x_type, void* y, DType y_type, int64_t rows, int64_t cols, bool log,
                        cudaStream_t stream) {
  const char* op = log ? "logSoftmax" : "softmax";
  CheckRows(rows, op);
  if (rows == 0 || cols == 0) return;
  DispatchFloat(x_type, op, [&](auto xt) {
    DispatchFloat(y_type, op, [&](auto yt) {
      using Tx = decltype(xt);
      using Ty = decltype(yt);
      SoftmaxForwardKernel<Tx, Ty><<<static_cast<unsigned>(rows), RowThreads(cols), 0, stream>>>(
          static_cast<const Tx*>(x), static_cast<Ty*>(y), cols, log);
    });
  });
}

void SoftmaxBackwardCuda(const void* y, DType y_type, const void* dy, void* dx, DType grad_type, int64_t rows, int64_t cols,
                         bool log, cudaStream_t stream) {
  const char* op = log ? "logSoftmaxBackward" : "softmaxBackward";
  CheckRows(rows, op);
  if (rows == 0 || cols == 0) return;
  DispatchFloat(y_type, op, [&](auto yt) {
    DispatchFloat(grad_type, op, [&](auto gt) {
      using Ty = decltype(yt);
      using Tg = decltype(gt);
      SoftmaxBackwardKernel<Ty, Tg><<<static_cast<unsigned>(rows), RowThreads(cols), 0, stream>>>(
          static_cast<const Ty*>(y), static_cast<const Tg*>(dy), static_cast<Tg*>(dx), cols, log);
    });
  });
}

void FusedLinearCrossEntropyCuda(const FusedLossArgs& a, int device, cudaStream_t stream) {
  RunFusedCuda(a, false, "fusedLinearCrossEntropy", device, stream);
}

void FusedLinearKlCuda(const FusedLossArgs& a, int device, cudaStream_t stream) {
  RunFusedCuda(a, true, "fusedLinearKl", device, stream);
}

}  // namespace aerie
