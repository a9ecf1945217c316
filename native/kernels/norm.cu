/*
 * RMSNorm on CUDA (see norm.h), forward and backward, plain or fused with the residual add.
 *
 * A row is handled by a group of threads: `group` lanes of a warp (1..32, a power of two) for rows
 * of up to 32 packs per lane-set, so head_dim 64/128 rows (Qwen3 q/k-norm) take 8 or 16 lanes and a
 * warp does several rows at once; or a whole block (64..512 threads) for longer rows (hidden sizes,
 * up to 16384 and beyond). Thread `m` of a group of width W owns packs m, m+W, m+2W, ... of every
 * row it visits; the first kMaxVecs of them stay in registers between the two passes (sum of
 * squares, then the output), the rest (rows longer than the cache) are read again.
 *
 * Backward: dx needs a row sum (of dy*w*h) before it can be written, exactly like the forward. dw
 * is a column sum over all rows: each thread accumulates its own columns across the rows its group
 * visits (in registers), the groups of a block combine in a fixed order in shared memory, each block
 * writes one partial row, and a second kernel adds the partial rows in a fixed order. No atomics:
 * the same inputs give the same bits. Hidden-size rows (a block per row, 16-byte packs) take the
 * strip kernel: one resident wave of blocks, each over a contiguous strip of rows streamed through
 * shared memory with cp.async a few rows ahead (see RmsNormBwdStripKernel).
 *
 * Packs are 16 bytes of x's type when every pointer is aligned and cols is a multiple of the pack;
 * otherwise the same kernels run with 1-element packs.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cp_async.cuh"
#include "elementwise_common.cuh"
#include "norm.h"

namespace aerie {
namespace {

using ew::FromF;
using ew::Pack;
using ew::ToF;

constexpr int kGroupThreads = 256;
constexpr int kBlockMaxThreads = 512;
constexpr int kBwdMinRows = 4;  // rows per block (per group-row slot) in the backward, at least

// Sum over the `width` threads sharing a row; every one of them gets the same bits. Group: xor
// shuffles within aligned lane groups (all 32 lanes must call it). Block: warp sums, then each
// thread adds the warp sums in order (all threads must call it; blockDim a multiple of 32).
template <bool kBlock>
__device__ __forceinline__ float RowSum(float v, int width) {
  if constexpr (!kBlock) {
    for (int o = width >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
  } else {
    __shared__ float warp_sums[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();  // the previous call's readers are done
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.f;
    const int warps = blockDim.x >> 5;
    for (int i = 0; i < warps; ++i) s += warp_sums[i];
    return s;
  }
}

// h = x, or x + residual rounded to T (and stored to h_out: the new residual stream).
template <typename T, int N>
__device__ __forceinline__ void LoadH(const T* x, const T* res, T* h_out, int64_t i, float (&h)[N]) {
  ew::LoadF<T, N>(x + i, h);
  if (res) {
    float r[N];
    ew::LoadF<T, N>(res + i, r);
    Pack<T, N> pk;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      pk.v[k] = FromF<T>(h[k] + r[k]);
      h[k] = ToF(pk.v[k]);
    }
    *reinterpret_cast<Pack<T, N>*>(h_out + i) = pk;
  }
}

// One row of the forward. Pointers are the row's; nvec packs of N (0 for an idle group lane).
template <typename T, typename TW, int N, int kMaxVecs, bool kBlock>
__device__ __forceinline__ void NormRow(const T* x, const T* res, T* h_out, const TW* w, T* y, float* rstd_out, int64_t nvec,
                                        int64_t cols, float eps, int member, int width) {
  float cache[kMaxVecs][N];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = member + static_cast<int64_t>(j) * width;
    if (v < nvec) {
      LoadH<T, N>(x, res, h_out, v * N, cache[j]);
#pragma unroll
      for (int k = 0; k < N; ++k) ss += cache[j][k] * cache[j][k];
    }
  }
  for (int64_t v = member + static_cast<int64_t>(kMaxVecs) * width; v < nvec; v += width) {
    float h[N];
    LoadH<T, N>(x, res, h_out, v * N, h);
#pragma unroll
    for (int k = 0; k < N; ++k) ss += h[k] * h[k];
  }
  ss = RowSum<kBlock>(ss, width);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  if (member == 0 && nvec > 0) *rstd_out = r;
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = member + static_cast<int64_t>(j) * width;
    if (v < nvec) {
      float wv[N], o[N];
      ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] = cache[j][k] * r * wv[k];
      ew::StoreF<T, N>(y + v * N, o);
    }
  }
  for (int64_t v = member + static_cast<int64_t>(kMaxVecs) * width; v < nvec; v += width) {
    float h[N], wv[N];
    ew::LoadF<T, N>((res ? h_out : x) + v * N, h);  // this thread stored h_out itself in the first pass
    ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
    for (int k = 0; k < N; ++k) h[k] = h[k] * r * wv[k];
    ew::StoreF<T, N>(y + v * N, h);
  }
}

// One row of the backward: writes dx, adds dy*h*rstd to dw_acc (cached packs) or dw_spill (others).
template <typename T, typename TW, int N, int kMaxVecs, bool kBlock>
__device__ __forceinline__ void NormBwdRow(const T* dy, const T* dh_in, const T* h, const TW* w, float r, T* dx,
                                           float (&dw_acc)[kMaxVecs][N], float* dw_spill, int64_t nvec, int64_t cols, int member,
                                           int width) {
  float hc[kMaxVecs][N], dyc[kMaxVecs][N];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = member + static_cast<int64_t>(j) * width;
    if (v < nvec) {
      float wv[N];
      ew::LoadF<T, N>(h + v * N, hc[j]);
      ew::LoadF<T, N>(dy + v * N, dyc[j]);
      ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
      for (int k = 0; k < N; ++k) s += dyc[j][k] * wv[k] * hc[j][k];
    }
  }
  for (int64_t v = member + static_cast<int64_t>(kMaxVecs) * width; v < nvec; v += width) {
    float hv[N], dv[N], wv[N];
    ew::LoadF<T, N>(h + v * N, hv);
    ew::LoadF<T, N>(dy + v * N, dv);
    ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
    for (int k = 0; k < N; ++k) s += dv[k] * wv[k] * hv[k];
  }
  s = RowSum<kBlock>(s, width);
  const float coef = r * r * r * s / static_cast<float>(cols);
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = member + static_cast<int64_t>(j) * width;
    if (v < nvec) {
      float wv[N], o[N];
      ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        o[k] = r * dyc[j][k] * wv[k] - coef * hc[j][k];
        dw_acc[j][k] += dyc[j][k] * hc[j][k] * r;
      }
      if (dh_in) {
        float d[N];
        ew::LoadF<T, N>(dh_in + v * N, d);
#pragma unroll
        for (int k = 0; k < N; ++k) o[k] += d[k];
      }
      ew::StoreF<T, N>(dx + v * N, o);
    }
  }
  for (int64_t v = member + static_cast<int64_t>(kMaxVecs) * width; v < nvec; v += width) {
    float hv[N], dv[N], wv[N], o[N];
    ew::LoadF<T, N>(h + v * N, hv);
    ew::LoadF<T, N>(dy + v * N, dv);
    ew::LoadF<TW, N>(w + v * N, wv);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      o[k] = r * dv[k] * wv[k] - coef * hv[k];
      dw_spill[v * N + k] += dv[k] * hv[k] * r;
    }
    if (dh_in) {
      float d[N];
      ew::LoadF<T, N>(dh_in + v * N, d);
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] += d[k];
    }
    ew::StoreF<T, N>(dx + v * N, o);
  }
}

// ---- forward kernels ----------------------------------------------------------------------------

// Groups of `group` lanes per row; the row loop is uniform per warp so all lanes reach the shuffles.
template <typename T, typename TW, int N, int kMaxVecs>
__global__ void __launch_bounds__(kGroupThreads)
    RmsNormGroupKernel(const T* x, const T* res, T* h_out, const TW* w, T* y, float* rstd, int64_t rows, int64_t cols, float eps,
                       int group) {
  const int lane = threadIdx.x & 31;
  const int rows_per_warp = 32 / group;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r0 = warp * rows_per_warp; r0 < rows; r0 += warps * rows_per_warp) {
    const int64_t row = r0 + lane / group;
    const bool valid = row < rows;
    const int64_t off = valid ? row * cols : 0;
    NormRow<T, TW, N, kMaxVecs, false>(x + off, res ? res + off : nullptr, h_out ? h_out + off : nullptr, w, y + off,
                                       rstd + (valid ? row : 0), valid ? cols / N : 0, cols, eps, lane % group, group);
  }
}

template <typename T, typename TW, int N, int kMaxVecs>
__global__ void __launch_bounds__(kBlockMaxThreads)
    RmsNormBlockKernel(const T* x, const T* res, T* h_out, const TW* w, T* y, float* rstd, int64_t rows, int64_t cols, float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t off = row * cols;
    NormRow<T, TW, N, kMaxVecs, true>(x + off, res ? res + off : nullptr, h_out ? h_out + off : nullptr, w, y + off, rstd + row,
                                      cols / N, cols, eps, threadIdx.x, blockDim.x);
  }
}

// ---- backward kernels ---------------------------------------------------------------------------

// Group version: the launcher guarantees group * kMaxVecs packs cover a row (no spill). Dynamic
// shared memory: (blockDim / group) * cols floats.
template <typename T, typename TW, int N, int kMaxVecs>
__global__ void __launch_bounds__(kGroupThreads)
    RmsNormBwdGroupKernel(const T* dy, const T* dh_in, const T* h, const TW* w, const float* rstd, T* dx, float* partial,
                          int64_t rows, int64_t cols, int group) {
  extern __shared__ float group_dw[];
  const int lane = threadIdx.x & 31;
  const int rows_per_warp = 32 / group;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int64_t nvec = cols / N;
  float acc[kMaxVecs][N];
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j)
#pragma unroll
    for (int k = 0; k < N; ++k) acc[j][k] = 0.f;
  for (int64_t r0 = warp * rows_per_warp; r0 < rows; r0 += warps * rows_per_warp) {
    const int64_t row = r0 + lane / group;
    const bool valid = row < rows;
    const int64_t off = valid ? row * cols : 0;
    NormBwdRow<T, TW, N, kMaxVecs, false>(dy + off, dh_in ? dh_in + off : nullptr, h + off, w, valid ? rstd[row] : 0.f, dx + off,
                                          acc, nullptr, valid ? nvec : 0, cols, lane % group, group);
  }
  // The block's groups own the same columns: combine them in group order.
  const int gi = threadIdx.x / group, member = threadIdx.x % group, groups = blockDim.x / group;
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = member + static_cast<int64_t>(j) * group;
    if (v < nvec)
#pragma unroll
      for (int k = 0; k < N; ++k) group_dw[gi * cols + v * N + k] = acc[j][k];
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float s = 0.f;
    for (int g = 0; g < groups; ++g) s += group_dw[g * cols + c];
    partial[blockIdx.x * cols + c] = s;
  }
}

template <typename T, typename TW, int N, int kMaxVecs>
__global__ void __launch_bounds__(kBlockMaxThreads)
    RmsNormBwdBlockKernel(const T* dy, const T* dh_in, const T* h, const TW* w, const float* rstd, T* dx, float* partial, int64_t rows,
                          int64_t cols) {
  const int64_t nvec = cols / N;
  float* my_partial = partial + blockIdx.x * cols;
  // Packs beyond the register cache accumulate in this block's partial row (each column has one
  // owner thread, so no races).
  for (int64_t v = threadIdx.x + static_cast<int64_t>(kMaxVecs) * blockDim.x; v < nvec; v += blockDim.x)
#pragma unroll
    for (int k = 0; k < N; ++k) my_partial[v * N + k] = 0.f;
  float acc[kMaxVecs][N];
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j)
#pragma unroll
    for (int k = 0; k < N; ++k) acc[j][k] = 0.f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t off = row * cols;
    NormBwdRow<T, TW, N, kMaxVecs, true>(dy + off, dh_in ? dh_in + off : nullptr, h + off, w, rstd[row], dx + off, acc, my_partial,
                                         nvec, cols, threadIdx.x, blockDim.x);
  }
#pragma unroll
  for (int j = 0; j < kMaxVecs; ++j) {
    const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (v < nvec)
#pragma unroll
      for (int k = 0; k < N; ++k) my_partial[v * N + k] = acc[j][k];
  }
}

// Strip version, for 16-byte packs and rows of at most kVecs packs per thread: block b takes the
// contiguous rows [rows*b/grid, rows*(b+1)/grid) (the grid is what fits on the device at once, so
// every block is resident and does the same work) and keeps w and its dw columns in registers.
// Rows stream through a ring of kStages shared-memory stages with cp.async, kStages - 1 rows ahead of
// the one being reduced, so a block keeps several rows of loads in flight without holding them in
// registers. Every thread copies and reads back only its own packs (its columns of h, dy, dh_in), so
// a stage needs no barrier: cp.async.wait_group makes a thread's own copies visible to it, and the
// stage it refills was last read by that same thread an iteration earlier. One barrier per row, for
// the row sum: the warp sums alternate between two buffers (a buffer is rewritten two rows later,
// after a barrier that every reader of it has passed). rstd is prefetched one row ahead in a register.
constexpr int kStripStages = 4;

// Stage layout: kArrays planes (h, dy[, dh_in]) of nvec 16-byte packs, pack v of a plane at v.
template <typename T, int N, int kVecs, int kArrays>
__device__ __forceinline__ void IssueBwdRow(const T* __restrict__ dy, const T* __restrict__ dh_in, const T* __restrict__ h,
                                            Pack<T, N>* stage, int64_t row, int64_t cols, int64_t nvec) {
  const int64_t off = row * cols;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (v < nvec) {
      CpAsync16(stage + v, h + off + v * N);
      CpAsync16(stage + nvec + v, dy + off + v * N);
      if constexpr (kArrays == 3) CpAsync16(stage + 2 * nvec + v, dh_in + off + v * N);
    }
  }
}

template <typename T, typename TW, int N, int kVecs, bool kDh>
__global__ void __launch_bounds__(kBlockMaxThreads)
    RmsNormBwdStripKernel(const T* __restrict__ dy, const T* __restrict__ dh_in, const T* __restrict__ h, const TW* __restrict__ w,
                          const float* __restrict__ rstd, T* __restrict__ dx, float* __restrict__ partial, int64_t rows, int64_t cols) {
  static_assert(sizeof(Pack<T, N>) == 16, "the strip kernel moves 16-byte packs");
  constexpr int kArrays = kDh ? 3 : 2;
  extern __shared__ __align__(16) unsigned char strip_smem[];
  Pack<T, N>* stages = reinterpret_cast<Pack<T, N>*>(strip_smem);
  __shared__ float warp_sums[2][32];
  const int64_t nvec = cols / N;
  const int64_t stage_packs = kArrays * nvec;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t row_begin = rows * blockIdx.x / gridDim.x;
  const int64_t row_end = rows * (blockIdx.x + 1) / gridDim.x;

  // Prologue: rows row_begin .. row_begin + kStages - 2 into stages 0 .. kStages - 2, one commit
  // group each (empty past the strip, so that group k is always row_begin + k's).
#pragma unroll
  for (int k = 0; k < kStripStages - 1; ++k) {
    if (row_begin + k < row_end)
      IssueBwdRow<T, N, kVecs, kArrays>(dy, dh_in, h, stages + k * stage_packs, row_begin + k, cols, nvec);
    CpAsyncCommit();
  }

  float wv[kVecs][N], acc[kVecs][N];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      acc[j][k] = 0.f;
      wv[j][k] = 0.f;
    }
    if (v < nvec) ew::LoadF<TW, N>(w + v * N, wv[j]);
  }
  float r_next = row_begin < row_end ? rstd[row_begin] : 0.f;

  for (int64_t row = row_begin; row < row_end; ++row) {  // uniform over the block
    const int64_t k = row - row_begin;
    // Refill the stage that row - 1 used (this thread has read its packs of it) with row + kStages - 1.
    if (row + kStripStages - 1 < row_end)
      IssueBwdRow<T, N, kVecs, kArrays>(dy, dh_in, h, stages + ((k + kStripStages - 1) % kStripStages) * stage_packs,
                                        row + kStripStages - 1, cols, nvec);
    CpAsyncCommit();
    const float r = r_next;
    if (row + 1 < row_end) r_next = rstd[row + 1];
    CpAsyncWait<kStripStages - 1>();  // groups 0 .. k are complete: this row's packs are in its stage
    const Pack<T, N>* st = stages + (k % kStripStages) * stage_packs;

    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (v < nvec) {
        const Pack<T, N> ph = st[v], pd = st[nvec + v];
#pragma unroll
        for (int e = 0; e < N; ++e) s += ToF(pd.v[e]) * wv[j][e] * ToF(ph.v[e]);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    float* sums = warp_sums[row & 1];
    if (lane == 0) sums[warp] = s;
    __syncthreads();
    s = 0.f;
    for (int i = 0; i < warps; ++i) s += sums[i];

    const float coef = r * r * r * s / static_cast<float>(cols);
    T* dx_row = dx + row * cols;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (v < nvec) {
        const Pack<T, N> ph = st[v], pd = st[nvec + v];
        float o[N];
#pragma unroll
        for (int e = 0; e < N; ++e) {
          const float dv = ToF(pd.v[e]), hv = ToF(ph.v[e]);
          o[e] = r * dv * wv[j][e] - coef * hv;
          acc[j][e] += dv * hv * r;
        }
        if constexpr (kDh) {
          const Pack<T, N> pe = st[2 * nvec + v];
#pragma unroll
          for (int e = 0; e < N; ++e) o[e] += ToF(pe.v[e]);
        }
        ew::StoreF<T, N>(dx_row + v * N, o);
      }
    }
  }

  float* my_partial = partial + blockIdx.x * cols;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t v = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (v < nvec) {
      Pack<float, N> pk;
#pragma unroll
      for (int e = 0; e < N; ++e) pk.v[e] = acc[j][e];
      *reinterpret_cast<Pack<float, N>*>(my_partial + v * N) = pk;
    }
  }
}

// dw[c] = sum over b of partial[b, c], b in a fixed order: kDwSlices strided slices, then the slices
// in order. 32 columns per block; the slices keep enough loads in flight for a few hundred rows.
constexpr int kDwSlices = 32;
__global__ void __launch_bounds__(32 * kDwSlices) DwReduceKernel(const float* __restrict__ partial, int blocks, int64_t cols,
                                                              float* __restrict__ dw) {
  __shared__ float slice[kDwSlices][33];
  const int64_t c = blockIdx.x * 32 + static_cast<int64_t>(threadIdx.x);
  float s = 0.f;
  if (c < cols) {
#pragma unroll 4
    for (int b = threadIdx.y; b < blocks; b += kDwSlices) s += partial[static_cast<int64_t>(b) * cols + c];
  }
  slice[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t = 0.f;
#pragma unroll
    for (int i = 0; i < kDwSlices; ++i) t += slice[i][threadIdx.x];
    dw[c] = t;
  }
}

// ---- launch configuration -----------------------------------------------------------------------

struct RowPlan {
  enum Kind { kGroupSmall, kGroupLarge, kBlock } kind;
  int group = 32;    // lanes per row (group kinds)
  int threads = 0;   // block size
  unsigned grid = 1;
};

int NextPow2(int64_t v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Packs of N per row: small rows take the smallest lane group that covers them with kSmall packs per
// lane; medium rows a full warp with kLarge packs per lane; long rows a block with kBlockVecs each.
// `min_rows` is the least number of rows a block should handle (the backward writes one dw partial
// row per block, so fewer, busier blocks mean less partial traffic).
RowPlan PlanRows(int64_t rows, int64_t nvec, int k_small, int k_large, int k_block, int min_rows) {
  RowPlan p;
  if (nvec <= 32LL * k_small) {
    p.kind = RowPlan::kGroupSmall;
    p.group = NextPow2((nvec + k_small - 1) / k_small);
  } else if (nvec <= 32LL * k_large) {
    p.kind = RowPlan::kGroupLarge;
    p.group = 32;
  } else {
    p.kind = RowPlan::kBlock;
  }
  if (p.kind == RowPlan::kBlock) {
    int64_t t = (nvec + k_block - 1) / k_block;
    t = (t + 31) / 32 * 32;
    p.threads = static_cast<int>(std::min<int64_t>(kBlockMaxThreads, std::max<int64_t>(64, t)));
    p.grid = ew::GridFor(rows, min_rows, std::max(1, 2048 / p.threads));
  } else {
    p.threads = kGroupThreads;
    p.grid = ew::GridFor(rows, static_cast<int64_t>(kGroupThreads / p.group) * min_rows, 2048 / kGroupThreads);
  }
  return p;
}

struct FwdArgs {
  const void* x;
  const void* res;
  void* h_out;
  const void* w;
  void* y;
  float* rstd;
  int64_t rows, cols;
  float eps;
};

struct BwdArgs {
  const void* dy;
  const void* dh_in;
  const void* h;
  const void* w;
  const float* rstd;
  void* dx;
  float* dw;
  int64_t rows, cols;
};

template <typename T, typename TW, int N, int kSmall, int kLarge, int kBlockVecs>
void Forward(const FwdArgs& a, cudaStream_t stream) {
  const T* x = static_cast<const T*>(a.x);
  const T* res = static_cast<const T*>(a.res);
  T* h_out = static_cast<T*>(a.h_out);
  const TW* w = static_cast<const TW*>(a.w);
  T* y = static_cast<T*>(a.y);
  RowPlan p = PlanRows(a.rows, a.cols / N, kSmall, kLarge, kBlockVecs, 1);
  switch (p.kind) {
    case RowPlan::kGroupSmall:
      RmsNormGroupKernel<T, TW, N, kSmall><<<p.grid, p.threads, 0, stream>>>(x, res, h_out, w, y, a.rstd, a.rows, a.cols, a.eps, p.group);
      break;
    case RowPlan::kGroupLarge:
      RmsNormGroupKernel<T, TW, N, kLarge><<<p.grid, p.threads, 0, stream>>>(x, res, h_out, w, y, a.rstd, a.rows, a.cols, a.eps, p.group);
      break;
    case RowPlan::kBlock:
      RmsNormBlockKernel<T, TW, N, kBlockVecs><<<p.grid, p.threads, 0, stream>>>(x, res, h_out, w, y, a.rstd, a.rows, a.cols, a.eps);
      break;
  }
}

// Launches the strip kernel when it applies (16-byte packs, at most kVecs packs per thread of a block
// of kBlockMaxThreads, the stages fit in shared memory); returns false otherwise.
template <typename T, typename TW, int N, int kVecs, bool kDh>
bool BackwardStrip(const BwdArgs& a, cudaStream_t stream) {
  if constexpr (sizeof(Pack<T, N>) != 16) {
    return false;
  } else {
    constexpr int kArrays = kDh ? 3 : 2;
    const int64_t nvec = a.cols / N;
    const int64_t t = (nvec + kVecs - 1) / kVecs;
    if (t > kBlockMaxThreads) return false;
    const int threads = static_cast<int>(std::max<int64_t>(64, (t + 31) / 32 * 32));
    const size_t smem = static_cast<size_t>(kStripStages) * kArrays * static_cast<size_t>(nvec) * 16;
    auto kernel = RmsNormBwdStripKernel<T, TW, N, kVecs, kDh>;

    // Per device: the opt-in shared memory limit (set once on the kernel), and the resident blocks
    // per SM for each (threads, smem) seen, which sizes the grid.
    struct Occ {
      int threads;
      size_t smem;
      int blocks;
    };
    struct DeviceState {
      bool ready = false;
      int smem_optin = 0;
      std::vector<Occ> occ;
    };
    static std::mutex mu;
    static DeviceState state[64];
    int dev = 0;
    CheckCuda(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev >= 64) return false;
    int blocks_per_sm = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      DeviceState& ds = state[dev];
      if (!ds.ready) {
        CheckCuda(cudaDeviceGetAttribute(&ds.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "rmsnormBackward: smem limit");
        CheckCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, ds.smem_optin - 1024),
                  "rmsnormBackward: smem attribute");
        // All of the unified L1/shared memory as shared: the stages are the working set (the
        // occupancy below, and so the grid, assumes the carveout that fits them).
        CheckCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared),
                  "rmsnormBackward: carveout");
        ds.ready = true;
      }
      if (smem + 1024 > static_cast<size_t>(ds.smem_optin)) return false;  // 1 KiB for the static buffers
      for (const Occ& o : ds.occ)
        if (o.threads == threads && o.smem == smem) blocks_per_sm = o.blocks;
      if (blocks_per_sm == 0) {
        CheckCuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, threads, smem), "rmsnormBackward: occupancy");
        if (blocks_per_sm < 1) return false;
        ds.occ.push_back({threads, smem, blocks_per_sm});
      }
    }
    const unsigned grid = ew::GridFor(a.rows, kBwdMinRows, blocks_per_sm);
    ew::Scratch partial(sizeof(float) * grid * a.cols);
    float* part = partial.as<float>();
    kernel<<<grid, threads, smem, stream>>>(static_cast<const T*>(a.dy), static_cast<const T*>(a.dh_in), static_cast<const T*>(a.h),
                                            static_cast<const TW*>(a.w), a.rstd, static_cast<T*>(a.dx), part, a.rows, a.cols);
    const unsigned col_blocks = static_cast<unsigned>((a.cols + 31) / 32);
    DwReduceKernel<<<col_blocks, dim3(32, kDwSlices), 0, stream>>>(part, static_cast<int>(grid), a.cols, a.dw);
    return true;
  }
}

template <typename T, typename TW, int N, int kSmall, int kLarge, int kBlockVecs, int kStripVecs>
void Backward(const BwdArgs& a, cudaStream_t stream) {
  const T* dy = static_cast<const T*>(a.dy);
  const T* dh_in = static_cast<const T*>(a.dh_in);
  const T* h = static_cast<const T*>(a.h);
  const TW* w = static_cast<const TW*>(a.w);
  T* dx = static_cast<T*>(a.dx);
  const int64_t nvec = a.cols / N;
  RowPlan p = PlanRows(a.rows, nvec, kSmall, kLarge, kBlockVecs, kBwdMinRows);
  if (p.kind == RowPlan::kBlock) {
    if (dh_in ? BackwardStrip<T, TW, N, kStripVecs, true>(a, stream) : BackwardStrip<T, TW, N, kStripVecs, false>(a, stream)) return;
  }
  ew::Scratch partial(sizeof(float) * p.grid * a.cols);
  float* part = partial.as<float>();
  size_t smem = sizeof(float) * (p.threads / p.group) * a.cols;  // group kinds only
  switch (p.kind) {
    case RowPlan::kGroupSmall:
      RmsNormBwdGroupKernel<T, TW, N, kSmall><<<p.grid, p.threads, smem, stream>>>(dy, dh_in, h, w, a.rstd, dx, part, a.rows, a.cols, p.group);
      break;
    case RowPlan::kGroupLarge:
      RmsNormBwdGroupKernel<T, TW, N, kLarge><<<p.grid, p.threads, smem, stream>>>(dy, dh_in, h, w, a.rstd, dx, part, a.rows, a.cols, p.group);
      break;
    case RowPlan::kBlock:
      RmsNormBwdBlockKernel<T, TW, N, kBlockVecs><<<p.grid, p.threads, 0, stream>>>(dy, dh_in, h, w, a.rstd, dx, part, a.rows, a.cols);
      break;
  }
  const unsigned col_blocks = static_cast<unsigned>((a.cols + 31) / 32);
  DwReduceKernel<<<col_blocks, dim3(32, kDwSlices), 0, stream>>>(part, static_cast<int>(p.grid), a.cols, a.dw);
}

void CheckTypes(const char* op, DType x_type, DType w_type) {
  if (!RmsNormTypesSupported(x_type, w_type))
    throw std::invalid_argument(std::string(op) + ": x " + DTypeName(x_type) + " with w " + DTypeName(w_type) + " is not supported");
}

bool AllAligned(std::initializer_list<const void*> ptrs, size_t bytes) {
  for (const void* p : ptrs)
    if (p && !ew::Aligned(p, bytes)) return false;
  return true;
}

// Pack width: 16 bytes of T when cols and every pointer allow it, else single elements. The forward
// caches 32 floats of h per thread; the backward 16 each of h, dy and dw (register budget).
template <typename T, typename TW>
bool UseVectors(int64_t cols, std::initializer_list<const void*> x_like, const void* w) {
  constexpr int V = ew::Vec16<T>();
  return cols % V == 0 && AllAligned(x_like, 16) && ew::Aligned(w, std::min<size_t>(16, V * sizeof(TW)));
}

template <typename T, typename TW>
void ForwardTyped(const FwdArgs& a, cudaStream_t stream) {
  constexpr int V = ew::Vec16<T>();
  if (UseVectors<T, TW>(a.cols, {a.x, a.res, a.h_out, a.y}, a.w)) Forward<T, TW, V, 1, 32 / V, 32 / V>(a, stream);
  else Forward<T, TW, 1, 8, 16, 16>(a, stream);
}

template <typename T, typename TW>
void BackwardTyped(const BwdArgs& a, cudaStream_t stream) {
  constexpr int V = ew::Vec16<T>();
  if (UseVectors<T, TW>(a.cols, {a.dy, a.dh_in, a.h, a.dx}, a.w)) Backward<T, TW, V, 1, 16 / V, 16 / V, 2>(a, stream);
  else Backward<T, TW, 1, 8, 16, 16, 8>(a, stream);
}

}  // namespace

void RmsNormCuda(const void* x, const void* residual, void* h_out, const void* w, void* y, float* rstd, DType x_type, DType w_type,
                 int64_t rows, int64_t cols, float eps, cudaStream_t stream) {
  CheckTypes("rmsnorm", x_type, w_type);
  if (residual && !h_out) throw std::invalid_argument("rmsnorm: the fused residual add needs h_out");
  if (cols <= 0) throw std::invalid_argument("rmsnorm: cols must be positive");
  if (rows == 0) return;
  FwdArgs a{x, residual, residual ? h_out : nullptr, w, y, rstd, rows, cols, eps};
  if (x_type == DType::F32) ForwardTyped<float, float>(a, stream);
  else if (w_type == DType::BF16) ForwardTyped<__nv_bfloat16, __nv_bfloat16>(a, stream);
  else ForwardTyped<__nv_bfloat16, float>(a, stream);
}

void RmsNormBackwardCuda(const void* dy, const void* dh_in, const void* h, const void* w, const float* rstd, void* dx, float* dw,
                         DType x_type, DType w_type, int64_t rows, int64_t cols, cudaStream_t stream) {
  CheckTypes("rmsnormBackward", x_type, w_type);
  if (cols <= 0) throw std::invalid_argument("rmsnormBackward: cols must be positive");
  if (rows == 0) {
    CheckCuda(cudaMemsetAsync(dw, 0, sizeof(float) * cols, stream), "rmsnormBackward");
    return;
  }
  BwdArgs a{dy, dh_in, h, w, rstd, dx, dw, rows, cols};
  if (x_type == DType::F32) BackwardTyped<float, float>(a, stream);
  else if (w_type == DType::BF16) BackwardTyped<__nv_bfloat16, __nv_bfloat16>(a, stream);
  else BackwardTyped<__nv_bfloat16, float>(a, stream);
}

}  // namespace aerie
