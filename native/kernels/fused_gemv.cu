/*
 * The fused few-rows GEMV of decode (fused_gemv.h): out = epilogue(rmsnorm?(x) @ W^T + bias) in one
 * kernel, for bf16/f16 x and W, M <= 8 rows, K % 8 == 0, 16-byte aligned x and W.
 *
 * Memory-bound: every byte of W is read once, so the kernel is built around streaming W.
 *   - One warp per output column: column n (W row n), or for swiglu the pair (gate row i, up row
 *     I + i; rows 2i and 2i + 1 with swiglu_pairs, one contiguous run), both rows streamed
 *     together. 8 warps (columns) per block, one block per 8 columns.
 *   - A lane reads chunks lane, lane + 32, ... (16 bytes = 8 elements each) of its row(s) with
 *     ld.global.nc.L1::no_allocate in groups of U chunks per row, double-buffered: the next group's
 *     loads are issued before the current group's math (as GemvKernel), so every wait covers a whole
 *     group. U = 4 / R for M <= 2 (2 / R above).
 *   - Programmatic dependent launch (pdl.h): the first two groups of W chunks are requested before
 *     PdlWaitForPrimary(), so the weight stream starts under the previous kernel's tail. Nothing
 *     else is read, and nothing written, before the wait. The next kernel may launch only after
 *     the wait (PdlAllowDependents), so what it reads early was written before this kernel.
 *   - fp32 FMAs per lane, then a 5-step xor-shuffle sum; lane r finishes row r.
 *   - Registers: capped at 64 for M <= 2 (4 blocks, 32 warps per SM, no spills), so the 4096-column
 *     o and down projections of an 8B model run in a single wave of 4096 warps; 80 above. Measured
 *     on an H200 (ncu, 2026-11-28): a ring refilling one slot per chunk at 16 loads in flight and 2
 *     blocks per SM took 51 us for the 4096 x 14336 down projection, this 30 us; with 4 chunks a row
 *     per group at 3 blocks the gate/up pairs ran no faster.
 *   - Norm prologue: each block normalises the M rows of x itself (a few KiB, from L2) into shared
 *     memory, rounded to x's dtype, then the dot products read y from there. The sum of squares
 *     stores x there too, so x is read from L2 once; a norm_w of x's dtype (decode's bf16 copies,
 *     weights.ts decodeNorms) is half the bytes of f32 and both its rounds are requested together.
 *
 * Same bits as the unfused ops on CUDA (rmsnorm -> linear -> swigluFused -> add):
 *   - The dot products: each lane accumulates its chunks in increasing order, 8 FMAs per chunk in
 *     element order, then the same shuffle tree: MatmulGemvCuda's GemvKernel (matmul.cu) sums in
 *     exactly this order for any unroll, so acc is identical; + bias, one rounding.
 *   - The norm: RmsNormCuda's fp32 sum of squares depends on its launch shape. NormPlan reproduces
 *     that shape (norm.cu PlanRows for 16-byte bf16 packs) and the prologue sums in its order:
 *     virtual thread t of a row takes packs t, t + W, ... (FMA per element), then the lane-group
 *     shuffle tree, or for a block per row the warp trees and the warp sums in order; then
 *     rstd = 1 / sqrt(ss / K + eps) and y = (h * rstd) * w, all round-to-nearest. If norm.cu's plan
 *     changes, fused_linear.gpu.test.ts's bit-for-bit comparison fails.
 *   - swiglu: act::Swiglu (activation_math.h) of the gate and up values rounded to the output dtype;
 *     residual: float(residual) + float(rounded value), one rounding (elementwise add).
 *   - rotary (decode's qkv projection, fused_gemv.h FusedGemvRotary): a warp streams the rows j and
 *     j + head_dim/2 of one head; the two rounded values are rotated with rotary_math.h's CosSin,
 *     RotateFirst and RotateSecond, as QkvRotaryCacheKernel does without norms, and stored to q or
 *     to the caches. It saves decode the separate qkvRotaryCache launch of every layer.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "activation_math.h"
#include "fused_gemv.h"
#include "gemv_dot.cuh"
#include "pdl.h"
#include "rotary_math.h"

namespace aerie {
namespace {

constexpr int kWarps = 8;  // output columns per block
constexpr int kThreads = kWarps * 32;
// Resident blocks per SM the launch bounds guarantee: 4 (64 registers) for M <= 2, so a decode
// projection of up to 4224 columns runs in one wave (see the top); 3 above (fewer spills).
template <int M>
constexpr int MinBlocks() { return M <= 2 ? 4 : 3; }
constexpr size_t kMaxNormSmem = 160 * 1024;  // bytes of normalised rows (M * K * 2)
constexpr int kMaxNormWarps = 16;            // warps of rmsnorm's widest block (512 threads)

// 16 bytes of W, read once: bypass L1 so x stays cached there. volatile: never speculated past the
// end of the row. `pred` false reads nothing (the result is garbage, never used): the first group is
// issued as straight-line predicated loads, back to back.
__device__ __forceinline__ uint4 LoadStreaming(const uint4* p, bool pred = true) {
  uint4 v;
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " @p ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n}"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p), "r"(static_cast<int>(pred)));
  return v;
}

using gemv::Dot8;
using gemv::LoadAny;
using gemv::StoreAny;
using gemv::Unpack2;

// The 8 elements of a 16-byte pack of T as fp32, in order.
template <typename T>
__device__ __forceinline__ void Unpack8(const uint4& p, float (&f)[8]) {
  float2 a = Unpack2<T>(p.x), b = Unpack2<T>(p.y), c = Unpack2<T>(p.z), d = Unpack2<T>(p.w);
  f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y; f[4] = c.x; f[5] = c.y; f[6] = d.x; f[7] = d.y;
}

// Two floats rounded to T and packed (lo in the low half). bf16 only: the norm's x dtype.
template <typename T>
__device__ __forceinline__ uint32_t Pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t Pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat16 a = __float2bfloat16_rn(lo), b = __float2bfloat16_rn(hi);
  uint16_t ua, ub;
  memcpy(&ua, &a, 2);
  memcpy(&ub, &b, 2);
  return static_cast<uint32_t>(ua) | (static_cast<uint32_t>(ub) << 16);
}

// What storing v as t and loading it back gives.
__device__ __forceinline__ float RoundTo(float v, DType t) {
  switch (t) {
    case DType::BF16: return __bfloat162float(__float2bfloat16_rn(v));
    case DType::F16: return __half2float(__float2half_rn(v));
    default: return v;
  }
}

// y = rmsnorm(x) rounded to T, (M, K) into ys, summed in RmsNormCuda's order (see the top comment):
// `width` virtual threads per row, `block` when they form a block (warp sums) rather than a lane
// group (one shuffle tree of `width` lanes). x is read with coherent loads: with PDL the previous
// kernel wrote it during this kernel's lifetime. Ends with a barrier.
template <typename T, int M>
__device__ __forceinline__ void NormPrologue(const uint4* x,      // (M, k8) packs
                                             const void* norm_w,  // (8 * k8,) T or float
                                             bool w_f32, float eps, int width, bool block, int k8,
                                             uint4* ys) {         // (M, k8) packs, shared
  __shared__ float warp_sums[M][kMaxNormWarps];
  __shared__ float rstd[M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int virt = M * width;
#pragma unroll 1
  for (int base = warp * 32; base < virt; base += blockDim.x) {  // uniform per warp: all lanes shuffle
    const int q = base + lane;
    const bool valid = q < virt;
    const int r = valid ? q / width : 0;
    const int t = q - r * width;
    float ss = 0.f;
    if (valid) {
      // Two packs requested before either is summed (still in pack order): half the dependent trips
      // to L2 while the weight stream waits on this prologue. 4.138 against 4.168 ms a decode step
      // (decode_parts, H200, 2026-11-29); four packs spill with the weight groups live.
      int v = t;
#pragma unroll 1
      for (; v + width < k8; v += 2 * width) {
        const uint4 p0 = x[r * k8 + v], p1 = x[r * k8 + v + width];
        ys[r * k8 + v] = p0;  // the second pass reads x from here
        ys[r * k8 + v + width] = p1;
        float h[8];
        Unpack8<T>(p0, h);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss = __fmaf_rn(h[e], h[e], ss);
        Unpack8<T>(p1, h);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss = __fmaf_rn(h[e], h[e], ss);
      }
      if (v < k8) {
        const uint4 p0 = x[r * k8 + v];
        ys[r * k8 + v] = p0;
        float h[8];
        Unpack8<T>(p0, h);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss = __fmaf_rn(h[e], h[e], ss);
      }
    }
    if (block) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, o));
      if (lane == 0) warp_sums[r][t >> 5] = ss;  // width % 32 == 0: the whole warp is one row
    } else {
      for (int o = width >> 1; o > 0; o >>= 1) ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, o));
      if (valid && t == 0) warp_sums[r][0] = ss;
    }
  }
  __syncthreads();
  if (threadIdx.x < M) {
    const int r = threadIdx.x;
    const int parts = block ? width / 32 : 1;
    float s = 0.f;
    for (int i = 0; i < parts; ++i) s = __fadd_rn(s, warp_sums[r][i]);
    rstd[r] = __frcp_rn(__fsqrt_rn(__fadd_rn(__fdiv_rn(s, static_cast<float>(8 * k8)), eps)));
  }
  __syncthreads();
  // A norm_w of x's dtype (half the bytes of f32): both rounds' packs requested before either is used,
  // one trip to L2 for both (with f32 the 16 more registers spill while the weight groups are live).
  if (!w_f32) {
#pragma unroll 1
    for (int q0 = threadIdx.x; q0 < M * k8; q0 += 2 * blockDim.x) {
      const int q1 = q0 + blockDim.x;
      const bool two = q1 < M * k8;
      const uint4 p0 = static_cast<const uint4*>(norm_w)[q0 % k8];
      const uint4 p1 = static_cast<const uint4*>(norm_w)[two ? q1 % k8 : 0];
      auto finish = [&](int q, const uint4& wp) {
        float h[8], wv[8];
        Unpack8<T>(ys[q], h);  // x, stored by the first pass
        Unpack8<T>(wp, wv);
        const float rs = rstd[q / k8];
        float o[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) o[e] = __fmul_rn(__fmul_rn(h[e], rs), wv[e]);
        ys[q] = make_uint4(Pack2<T>(o[0], o[1]), Pack2<T>(o[2], o[3]), Pack2<T>(o[4], o[5]), Pack2<T>(o[6], o[7]));
      };
      finish(q0, p0);
      if (two) finish(q1, p1);
    }
    __syncthreads();
    return;
  }
#pragma unroll 1
  for (int q = threadIdx.x; q < M * k8; q += blockDim.x) {  // f32 norm_w, one round at a time
    const int r = q / k8, v = q - r * k8;
    float h[8], wv[8];
    Unpack8<T>(ys[q], h);  // x, stored by the first pass (every pack of every row exactly once)
    const float4* wp = static_cast<const float4*>(norm_w) + 2 * v;
    const float4 a = wp[0], b = wp[1];
    wv[0] = a.x; wv[1] = a.y; wv[2] = a.z; wv[3] = a.w; wv[4] = b.x; wv[5] = b.y; wv[6] = b.z; wv[7] = b.w;
    const float rs = rstd[r];
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = __fmul_rn(__fmul_rn(h[e], rs), wv[e]);
    ys[q] = make_uint4(Pack2<T>(o[0], o[1]), Pack2<T>(o[2], o[3]), Pack2<T>(o[4], o[5]), Pack2<T>(o[6], o[7]));
  }
  __syncthreads();
}

// cos and sin of position * inv_freq (rotary_math.h's fp64 path), out of line: the epilogue's fp64
// registers then stay out of the streaming loop's allocation.
__device__ __noinline__ void RotaryCosSin(int32_t position, float inv_freq, float scaling, float* c, float* s) {
  rotary::CosSin(position, inv_freq, scaling, false, c, s);
}

// The rotary epilogue's arguments (fused_gemv.h FusedGemvRotary) as the kernel takes them.
// positions and slot_mapping may be written by the kernels before this one: they are read only after
// the PDL wait, with plain loads.
struct RotaryParams {
  void* q;
  void* k_cache;
  void* v_cache;
  const int32_t* positions;
  const int32_t* slot_mapping;
  const float* inv_freq;
  int heads, kv_heads, head_dim, half;
  int64_t capacity;
  float scaling;
};

// One warp per unit: R = 1, out[:, unit] from W row unit; R = 2 (swiglu), out[:, unit] from gate row
// unit and up row units + unit. out is (M, units); residual (M, units) may be out itself.
// kRotary (R = 2): unit u is pair j = u % half of head h = u / half, W rows h hd + j and h hd + j +
// half; the epilogue rotates the pair (q and k heads) and writes q, or k and v to the caches.
template <typename T, int M, int R, bool kNorm, bool kRotary = false>
__global__ void __launch_bounds__(kThreads, MinBlocks<M>())
    FusedGemvKernel(const T* x,                  // (M, 8 * k8)
                    const T* __restrict__ w,     // (R * units, 8 * k8)
                    void* out, const void* residual, DType out_type,
                    const void* bias, DType bias_type,  // (R * units,) or null
                    const void* norm_w, bool norm_w_f32, float eps, int norm_width, bool norm_block,
                    int64_t units, int k8, RotaryParams rot, bool prefetch_l2, bool swiglu_pairs) {
  extern __shared__ uint4 ys[];  // kNorm: (M, k8) normalised rows
  // 16-byte chunks of each W row per group and lane. 4 chunks a row for the gate/up pairs at 3 blocks
  // per SM measured the same as 2 at 4 blocks (H200, 2026-11-28).
  constexpr int U = (M <= 2 ? 4 : 2) / R;
  const int lane = threadIdx.x & 31;
  const int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const bool active = unit < units;  // whole warps
  int64_t first_row = active ? unit : 0, row_step = units;  // W rows first_row + q * row_step
  if constexpr (R == 2 && !kRotary) {
    if (swiglu_pairs) {  // gate i and up i adjacent: one contiguous run of 2 rows
      first_row = 2 * first_row;
      row_step = 1;
    }
  }
  if constexpr (kRotary) {
    const int64_t h = first_row / rot.half;
    first_row = h * rot.head_dim + (first_row - h * rot.half);
    row_step = rot.half;
  }
  const uint4* wrow[R];
#pragma unroll
  for (int q = 0; q < R; ++q) wrow[q] = reinterpret_cast<const uint4*>(w) + (first_row + q * row_step) * k8 + lane;

  // Groups of U chunks per row (32 * U chunks of the row per warp), double-buffered as in
  // GemvKernel: the next group's loads are issued before the current group's math, so up to 2 * R * U
  // loads per lane are in flight and every wait is for a whole group (a ring that refills one slot
  // per step made ptxas wait for every outstanding load at each step: 51 us instead of 32 for the
  // 4096 x 14336 down projection on an H200).
  const int groups = k8 / (32 * U);  // the same for every lane
  // Before the wait: only W (never written by an earlier kernel), only into registers. Both buffers
  // are filled here (groups 0 and 1), so twice the bytes are in flight under the previous kernel's
  // tail: 4.378 against 4.400 ms a decode step (H200, 2026-11-28).
  uint4 cur[R][U], nxt[R][U];
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int q = 0; q < R; ++q) cur[q][u] = LoadStreaming(wrow[q] + 32 * u, active && groups > 0);
  if (groups > 1) {  // uniform
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int q = 0; q < R; ++q) nxt[q][u] = LoadStreaming(wrow[q] + 32 * (U + u), active);
  }
  // FusedGemvArgs::prefetch_l2: the row's remaining 128-byte lines, one per lane and step. Measured
  // on decode's o projection, behind attention: 4.286 against 4.311 ms a step (H200, 2026-11-29);
  // behind another GEMV (gate/up, down) the extra requests made the step slower.
  if (prefetch_l2 && active) {
    constexpr int kRegisterLines = 2 * U * 32 * 16 / 128;  // what groups 0 and 1 cover
    const int row_lines = k8 * 16 / 128;
#pragma unroll 1
    for (int line = kRegisterLines + lane; line < row_lines; line += 32)
#pragma unroll
      for (int q = 0; q < R; ++q) {
        const char* a = reinterpret_cast<const char*>(wrow[q] - lane) + static_cast<size_t>(line) * 128;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
      }
  }
  PdlWaitForPrimary();
  // Only now: a kernel launched after this one may read, before its own wait, what was written
  // before this one (pdl.h; the paged attention's old keys). Measured no slower than the early
  // trigger: 4.201 against 4.215 ms a decode step (H200, 2026-11-29).
  PdlAllowDependents();
  // The rotary angle of this warp's pair for token `lane` (lane < M), computed now so that its fp64
  // latency hides under the weight loads in flight instead of adding to the kernel's tail.
  float rot_c = 1.f, rot_s = 0.f;
  if constexpr (kRotary) {
    if (active && lane < M) {
      const int h = static_cast<int>(unit / rot.half), j = static_cast<int>(unit - static_cast<int64_t>(h) * rot.half);
      if (h < rot.heads + rot.kv_heads) RotaryCosSin(rot.positions[lane], rot.inv_freq[j], rot.scaling, &rot_c, &rot_s);
    }
  }

  const uint4* xv = reinterpret_cast<const uint4*>(x);
  if constexpr (kNorm) NormPrologue<T, M>(xv, norm_w, norm_w_f32, eps, norm_width, norm_block, k8, ys);
  if (!active) return;
  auto x_chunk = [&](int r, int c) -> uint4 {
    if constexpr (kNorm) return ys[r * k8 + c];
    else return xv[r * k8 + c];  // coherent: see NormPrologue
  };
  float acc[R][M];
#pragma unroll
  for (int q = 0; q < R; ++q)
#pragma unroll
    for (int r = 0; r < M; ++r) acc[q][r] = 0.f;
  // acc += this lane's chunk lane + 32 * j, held in wv[R].
  auto consume = [&](const uint4 (&wv)[R], int j) {
    const int c = 32 * j + lane;
#pragma unroll
    for (int r = 0; r < M; ++r) {
      const uint4 xr = x_chunk(r, c);
#pragma unroll
      for (int q = 0; q < R; ++q) Dot8<T>(acc[q][r], wv[q], xr);
    }
  };

  for (int g = 0; g < groups; ++g) {
    if (g + 1 >= groups) {  // warp-uniform; the last group: nothing left to request
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int q = 0; q < R; ++q) nxt[q][u] = make_uint4(0, 0, 0, 0);
    } else if (g > 0) {  // group g + 1 (group 1 was requested before the wait)
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int q = 0; q < R; ++q) nxt[q][u] = LoadStreaming(wrow[q] + 32 * ((g + 1) * U + u));
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      uint4 wv[R];
#pragma unroll
      for (int q = 0; q < R; ++q) wv[q] = cur[q][u];
      consume(wv, g * U + u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int q = 0; q < R; ++q) cur[q][u] = nxt[q][u];
  }
  // The chunks after the last full group (fewer than 32 * U): one at a time, in order.
  for (int j = groups * U; 32 * j + lane < k8; ++j) {
    uint4 wv[R];
#pragma unroll
    for (int q = 0; q < R; ++q) wv[q] = LoadStreaming(wrow[q] + 32 * j);
    consume(wv, j);
  }

#pragma unroll
  for (int q = 0; q < R; ++q)
#pragma unroll
    for (int r = 0; r < M; ++r)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[q][r] += __shfl_xor_sync(0xffffffffu, acc[q][r], o);

  // Every lane holds every sum; lane r finishes row r (static indices keep acc in registers).
#pragma unroll
  for (int r = 0; r < M; ++r) {
    if constexpr (kRotary) {
      if (lane == r) {  // token r: the pair as linear stores it, rotated as QkvRotaryCache does
        float a = acc[0][r], b = acc[1][r];
        if (bias) {
          a = __fadd_rn(a, LoadAny(bias, first_row, bias_type));
          b = __fadd_rn(b, LoadAny(bias, first_row + rot.half, bias_type));
        }
        a = RoundTo(a, out_type);
        b = RoundTo(b, out_type);
        const int h = static_cast<int>(unit / rot.half), j = static_cast<int>(unit - static_cast<int64_t>(h) * rot.half);
        const int qk_heads = rot.heads + rot.kv_heads;
        if (h < qk_heads) {
          const float c = rot_c, s = rot_s;  // lane r computed token r's angle
          const float x1 = a, x2 = b;
          a = rotary::RotateFirst(x1, x2, c, s);
          b = rotary::RotateSecond(x1, x2, c, s);
        }
        void* dst = nullptr;
        int64_t at = 0;
        if (h < rot.heads) {
          dst = rot.q;
          at = (static_cast<int64_t>(r) * rot.heads + h) * rot.head_dim + j;
        } else {
          const int32_t slot = rot.slot_mapping[r];
          if (slot >= 0 && slot < rot.capacity) {
            const bool is_k = h < qk_heads;
            dst = is_k ? rot.k_cache : rot.v_cache;
            at = (static_cast<int64_t>(slot) * rot.kv_heads + (is_k ? h - rot.heads : h - qk_heads)) * rot.head_dim + j;
          }
        }
        if (dst) {
          StoreAny(dst, at, out_type, a);
          StoreAny(dst, at + rot.half, out_type, b);
        }
      }
      continue;
    }
    if (lane == r) {
      const int64_t oi = r * units + unit;
      float o = acc[0][r];
      if (bias) o = __fadd_rn(o, LoadAny(bias, first_row, bias_type));
      if constexpr (R == 2) {
        float up = acc[1][r];
        if (bias) up = __fadd_rn(up, LoadAny(bias, first_row + row_step, bias_type));
        o = act::Swiglu(RoundTo(o, out_type), RoundTo(up, out_type));
      }
      if (residual) o = __fadd_rn(LoadAny(residual, oi, out_type), RoundTo(o, out_type));
      StoreAny(out, oi, out_type, o);
    }
  }
}

// RmsNormCuda's launch shape for rows of nvec 16-byte bf16 packs (norm.cu: PlanRows with 1, 4 and 4
// packs per thread): lane groups of NextPow2(nvec) up to 32 packs, a warp up to 128, else a block of
// ceil(nvec / 4) threads rounded up to warps, within [64, 512].
struct NormPlan {
  int width;
  bool block;
};

NormPlan PlanNorm(int64_t nvec) {
  if (nvec <= 32) {
    int g = 1;
    while (g < nvec) g <<= 1;
    return {g, false};
  }
  if (nvec <= 128) return {32, false};
  const int64_t t = ((nvec + 3) / 4 + 31) / 32 * 32;
  return {static_cast<int>(std::min<int64_t>(512, std::max<int64_t>(64, t))), true};
}

constexpr int kMaxDevices = 64;

// Largest dynamic shared memory a block may use on the current device, cached (0: unknown device).
size_t NormSmemLimit(int dev) {
  static std::atomic<int> optin[kMaxDevices];
  if (dev < 0 || dev >= kMaxDevices) return 0;
  int v = optin[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    CheckCuda(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "fusedGemv: shared memory limit");
    optin[dev].store(v, std::memory_order_relaxed);
  }
  const size_t statics = 1024;  // NormPrologue's warp sums and rstd, with room to spare
  return std::min(kMaxNormSmem, v > static_cast<int>(statics) ? static_cast<size_t>(v) - statics : 0);
}

template <typename T, int M, int R, bool kNorm, bool kRotary = false>
void Launch(const FusedGemvArgs& p, int dev, size_t smem_limit, cudaStream_t stream) {
  auto kernel = FusedGemvKernel<T, M, R, kNorm, kRotary>;
  RotaryParams rot{};
  if (const FusedGemvRotary* r = p.rotary) {
    rot = {r->q, r->k_cache, r->v_cache, r->positions, r->slot_mapping, r->inv_freq, static_cast<int>(r->heads),
           static_cast<int>(r->kv_heads), static_cast<int>(r->head_dim), static_cast<int>(r->head_dim / 2),
           r->num_blocks * r->block_size, r->attention_scaling};
  }
  const int64_t units = p.n_w / R;
  const int k8 = static_cast<int>(p.k / 8);
  size_t smem = 0;
  NormPlan plan{1, false};
  if constexpr (kNorm) {
    smem = static_cast<size_t>(M * p.k) * sizeof(T);
    plan = PlanNorm(k8);
    // Opt in once per device to the most any call may use.
    static std::atomic<bool> opted[kMaxDevices];
    if (smem > 48 * 1024 && !opted[dev].load(std::memory_order_relaxed)) {
      CheckCuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_limit)),
                "fusedGemv: shared memory attribute");
      opted[dev].store(true, std::memory_order_relaxed);
    }
  }
  const unsigned blocks = static_cast<unsigned>((units + kWarps - 1) / kWarps);
  LaunchPdl(kernel, dim3(blocks), dim3(kThreads), smem, stream, static_cast<const T*>(p.x), static_cast<const T*>(p.w), p.out,
            p.residual, p.out_type, p.bias, p.bias_type, p.norm_w, p.norm_w_type == DType::F32, p.eps, plan.width, plan.block,
            units, k8, rot, p.prefetch_l2, p.swiglu_pairs);
}

template <typename T, int M>
void LaunchFusions(const FusedGemvArgs& p, int dev, size_t smem_limit, cudaStream_t stream) {
  constexpr bool kCanNorm = std::is_same<T, __nv_bfloat16>::value;  // rmsnorm's x dtypes: f32, bf16
  if constexpr (M <= kFusedRotaryMaxRows) {
    if (p.rotary) {
      if constexpr (kCanNorm) {
        if (p.norm_w) return Launch<T, M, 2, true, true>(p, dev, smem_limit, stream);
      }
      return Launch<T, M, 2, false, true>(p, dev, smem_limit, stream);
    }
  }
  if (p.rotary) throw std::logic_error("fusedGemv: the rotary epilogue takes at most 4 rows");  // FusedGemvCuda declines first
  if (p.swiglu) {
    if constexpr (kCanNorm) {
      if (p.norm_w) return Launch<T, M, 2, true>(p, dev, smem_limit, stream);
    }
    Launch<T, M, 2, false>(p, dev, smem_limit, stream);
  } else {
    if constexpr (kCanNorm) {
      if (p.norm_w) return Launch<T, M, 1, true>(p, dev, smem_limit, stream);
    }
    Launch<T, M, 1, false>(p, dev, smem_limit, stream);
  }
}

template <typename T>
void LaunchRows(const FusedGemvArgs& p, int dev, size_t smem_limit, cudaStream_t stream) {
  static_assert(kFusedGemvMaxRows == 8, "one case per row count");
  switch (p.m) {
    case 1: LaunchFusions<T, 1>(p, dev, smem_limit, stream); break;
    case 2: LaunchFusions<T, 2>(p, dev, smem_limit, stream); break;
    case 3: LaunchFusions<T, 3>(p, dev, smem_limit, stream); break;
    case 4: LaunchFusions<T, 4>(p, dev, smem_limit, stream); break;
    case 5: LaunchFusions<T, 5>(p, dev, smem_limit, stream); break;
    case 6: LaunchFusions<T, 6>(p, dev, smem_limit, stream); break;
    case 7: LaunchFusions<T, 7>(p, dev, smem_limit, stream); break;
    default: LaunchFusions<T, 8>(p, dev, smem_limit, stream); break;  // m == 8 (checked by the caller)
  }
}

bool FusedGemvDisabled() {
  static const bool off = [] {
    const char* e = std::getenv("AERIE_NO_FUSED_GEMV");
    return e && *e && std::string(e) != "0";
  }();
  return off;
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool FusedGemvCuda(const FusedGemvArgs& p, cudaStream_t stream) {
  FusedGemvValidate(p);
  if (FusedGemvDisabled()) return false;
  if (p.x_type != DType::BF16 && p.x_type != DType::F16) return false;
  if (p.m < 1 || p.m > kFusedGemvMaxRows || p.n_w < 1 || p.k < 8 || p.k % 8 != 0) return false;
  if (p.rotary && (p.m > kFusedRotaryMaxRows || p.rotary->head_dim > (int64_t{1} << 16) ||
                   p.rotary->heads + 2 * p.rotary->kv_heads > (int64_t{1} << 16)))
    return false;
  const int64_t units = p.swiglu || p.rotary ? p.n_w / 2 : p.n_w;
  if ((units + kWarps - 1) / kWarps > 0x7fffffffLL) return false;  // grid.x
  if (p.m * p.k / 8 > 0x7fffffffLL) return false;                    // int chunk indices into x
  if (!Aligned16(p.x) || !Aligned16(p.w)) return false;
  int dev = 0;
  CheckCuda(cudaGetDevice(&dev), "cudaGetDevice");
  size_t smem_limit = 0;
  if (p.norm_w) {
    // 16-byte norm weight packs, as RmsNormCuda's vector path (the plan PlanNorm reproduces) needs.
    if (!Aligned16(p.norm_w)) return false;
    smem_limit = NormSmemLimit(dev);
    if (static_cast<size_t>(p.m * p.k) * DTypeSize(p.x_type) > smem_limit) return false;
  }
  if (p.x_type == DType::BF16) LaunchRows<__nv_bfloat16>(p, dev, smem_limit, stream);
  else LaunchRows<__half>(p, dev, smem_limit, stream);
  return true;
}

}  // namespace aerie
