// Device helpers shared by attention_fwd.cu and attention_bwd.cu: storage conversions, ldmatrix and
// mma.sync m16n8k16 (bf16 in, fp32 accumulate) as inline PTX, and the padded layout of the shared
// bf16 tiles (cp.async: cp_async.cuh).
//
// mma.sync m16n8k16 fragment layouts (lane = 4 * grp + tig): A (16x16, row-major) regs a0..a3 hold
// (row grp, cols 2tig..+1), (row grp+8, same), (row grp, cols 2tig+8..+9), (row grp+8, same); B (16x8)
// regs b0, b1 hold (k 2tig..+1, col grp), (k 2tig+8..+9, col grp); C (16x8 fp32) c0..c3 hold (row grp,
// cols 2tig, 2tig+1), (row grp+8, same). Two C tiles side by side are therefore, packed to bf16, the
// A fragment of the next product (how P and dS feed the second matmul without shared memory).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "attention.h"
#include "cp_async.cuh"

namespace aerie {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T FromFloat(float x);
template <> __device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Shared bf16 tiles are row-major with rows padded by 8 elements (16 bytes): the 8 rows that one
// ldmatrix phase reads then start 16 bytes apart modulo 128 and hit 8 different bank groups, and
// fragment addresses are a per-lane base plus compile-time offsets.
constexpr int kPad = 8;

__device__ __forceinline__ void Ldmatrix4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void Ldmatrix4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a * b for one 16x8x16 tile.
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x on the SFU (ex2.approx, ~2 ulp; flushes subnormals; 2^-inf = +0), what exp2f becomes under
// --use_fast_math. Used for the softmax probabilities, which are rounded to bf16 afterwards anyway.
__device__ __forceinline__ float FastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as a bf16 pair: `lo` in the low half (the lower column index).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// The A fragment of columns [16kk, 16kk+16) of a 16-row accumulator held as n8 tiles acc[nt][4].
template <int NT>
__device__ __forceinline__ void AccToA(uint32_t (&a)[4], const float (&acc)[NT][4], int kk) {
  a[0] = PackBf16(acc[2 * kk][0], acc[2 * kk][1]);
  a[1] = PackBf16(acc[2 * kk][2], acc[2 * kk][3]);
  a[2] = PackBf16(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
  a[3] = PackBf16(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
}

// ldmatrix lane offsets, in elements, into a tile with `ld` elements per row; add the fragment's
// origin (r0 * ld + c0) to get the lane's address.
// A fragment (16x16 at the origin) of a row-major (m, k) tile; Ldmatrix4 gives a0..a3.
__device__ __forceinline__ int ALaneOffset(int ld, int lane) { return (lane & 15) * ld + ((lane >> 4) << 3); }
// B fragments of two n8 tiles (n 16 x k 16 at the origin) of a tile stored as (n, k) rows (K for
// Q K^T); Ldmatrix4 gives {b0, b1} of the first n8 tile, then {b0, b1} of the second. The same
// offsets with Ldmatrix4Trans read the A fragment (m 16 x k 16) of a tile stored as (k, m) rows.
__device__ __forceinline__ int BLaneOffset(int ld, int lane) {
  return ((lane & 7) + ((lane >> 4) << 3)) * ld + (((lane >> 3) & 1) << 3);
}
// B fragments of two n8 tiles (k 16 x n 16 at the origin) of a tile stored as (k, n) rows (V for
// P V), with Ldmatrix4Trans.
__device__ __forceinline__ int BTransLaneOffset(int ld, int lane) {
  return ((lane & 7) + (((lane >> 3) & 1) << 3)) * ld + ((lane >> 4) << 3);
}

// The key blocks of BN keys a forward CTA visits for query rows [m0, m0 + rows) (both flash forward
// kernels walk them in this order): `diagonal` blocks of block 0 ending at the last row and walked down
// to the first row's lowest visible key `klo`, then for the TTT mask, per step r = 1..steps, the
// blocks r*T + m0 + [0, rows) that hold that step's diagonal.
template <int BN>
struct KeyBlockWalk {
  int kend, m0, tokens, diagonal, ttt_per, count;
  __device__ KeyBlockWalk(int m0_, int rows, int klo, int steps, int tokens_)
      : kend(m0_ + rows), m0(m0_), tokens(tokens_), diagonal((m0_ + rows - klo + BN - 1) / BN),
        ttt_per((rows + BN - 1) / BN), count(diagonal + steps * ttt_per) {}
  // First key of block `it`.
  __device__ int Start(int it) const {
    if (it < diagonal) return kend - (it + 1) * BN;
    const int e = it - diagonal;
    return (1 + e / ttt_per) * tokens + m0 + (e % ttt_per) * BN;
  }
  // For a TTT block, the key offset of its step (r * T); 0 for block 0.
  __device__ int StepBase(int it) const { return it < diagonal ? 0 : (1 + (it - diagonal) / ttt_per) * tokens; }
};

// Whether the flash kernels run: bf16, hd 64 or 128, impl kAuto or kMmaSync, and 16-byte aligned tensors
// (cp.async and the vector stores need aligned rows; views at odd offsets take the SIMT path).
inline bool UsesMma(const AttentionDims& d, std::initializer_list<const void*> ptrs) {
  if (d.impl == AttentionImpl::kSimt || d.dtype != DType::BF16 || (d.head_dim != 64 && d.head_dim != 128)) return false;
  for (const void* ptr : ptrs)
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  return true;
}

}  // namespace attn
}  // namespace aerie
