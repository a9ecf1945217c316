/*
 * Attention forward on CUDA (semantics in attention.h).
 *
 * Two kernels here, and for bf16 hd 128 on compute capability 9.0 a third, AttnFwdWg (wgmma:
 * attention_fwd_hopper.cu), which AttentionForwardCuda tries first:
 *  - AttnFwdMma<D> (bf16, hd D in {64, 128}): FlashAttention-2 style. A CTA of 4 warps owns 128
 *    query rows of one head (32 per warp, two m16 tiles) and walks key blocks of 64: S = Q K^T and
 *    O += P V with mma.sync m16n8k16 from ldmatrix'ed shared tiles, the online softmax
 *    in registers in the log2 domain (ex2.approx of scores prescaled by scale * log2 e), P converted from
 *    the S accumulators straight into A fragments. K/V blocks are double-buffered with cp.async;
 *    shared rows are padded by 16 bytes so ldmatrix is free of bank conflicts.
 *    Only key blocks that can hold visible keys are visited: block 0 keys from the first row's lower
 *    bound (document start, or the sliding window) up to the last row (the diagonal), walked from the
 *    diagonal down; then, for the TTT mask, the blocks r*T + [m0, m0+128) that hold each step's
 *    diagonal (masked to j == r*T + i). A per-element mask runs only on blocks that need it.
 *    Grid (nH, query blocks) with the heaviest query blocks scheduled first.
 *  - AttnFwdSimt<T> (f32 or bf16, hd <= 256): the reference path. One warp per (query row, head);
 *    a lane scores one key of a chunk of 32, then the warp folds the chunk into per-lane slices of
 *    the output row. Plain fp32 arithmetic, no shared tiles beyond the query row.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attention.h"
#include "attention_common.cuh"
#include "attention_fwd.cuh"

namespace aerie {
namespace attn {

constexpr int kFwdBM = 128, kFwdBN = 64, kFwdThreads = 128;

template <int D>
constexpr int FwdSmemBytes() {
  return (kFwdBM + 4 * kFwdBN) * (D + kPad) * 2 + kFwdBM * 4;  // Q, 2 x K, 2 x V (bf16), row_lo
}

template <int D>
__global__ void __launch_bounds__(kFwdThreads, 2) AttnFwdMma(FwdParams p) {
  constexpr int BM = kFwdBM, BN = kFwdBN, LD = D + kPad, NT_S = BN / 8, NT_O = D / 8, CH = D / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // (BM, LD)
  __nv_bfloat16* Ks = Qs + BM * LD;                                 // 2 x (BN, LD)
  __nv_bfloat16* Vs = Ks + 2 * BN * LD;                             // 2 x (BN, LD)
  int* row_lo = reinterpret_cast<int*>(Vs + 2 * BN * LD);           // (BM)

  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q);
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k);
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(p.v);
  const int T = p.tokens, h = blockIdx.x, g = h / p.group;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * BM;  // heaviest (last) query blocks first
  const int rows = min(BM, T - m0);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, grp = lane >> 2, tig = lane & 3;
  const float sl2 = p.scale * kLog2e;

  // Query tile (zero rows past T) and each row's lowest visible block-0 key (INT_MAX: no row).
  for (int x = tid; x < BM * CH; x += kFwdThreads) {
    const int r = x / CH, c = (x % CH) * 8;
    const bool ok = r < rows;
    CpAsync16(&Qs[r * LD + c], q + ((size_t)(ok ? m0 + r : 0) * p.num_heads + h) * D + c, ok);
  }
  for (int r = tid; r < BM; r += kFwdThreads)
    row_lo[r] = r < rows ? (int)AttentionKeyLo(p.cu_seqlens, p.batch, T, p.mask, p.window, m0 + r) : INT_MAX;
  __syncthreads();

  // Key blocks: KeyBlockWalk.
  const int lo_max = row_lo[rows - 1];
  const KeyBlockWalk<BN> walk(m0, rows, row_lo[0], p.steps, T);
  const int nblk = walk.count;
  auto load_kv = [&](int it, int buf) {
    const int j0 = walk.Start(it);
    __nv_bfloat16* kd = Ks + buf * BN * LD;
    __nv_bfloat16* vd = Vs + buf * BN * LD;
    for (int x = tid; x < BN * CH; x += kFwdThreads) {
      const int r = x / CH, c = (x % CH) * 8, j = j0 + r;
      const bool ok = j >= 0 && j < p.keys;
      const size_t off = ((size_t)(ok ? j : 0) * p.num_kv_heads + g) * D + c;
      CpAsync16(&kd[r * LD + c], k + off, ok);
      CpAsync16(&vd[r * LD + c], v + off, ok);
    }
  };
  load_kv(0, 0);
  CpAsyncCommit();

  // This thread's 4 rows: local row warp*32 + mi*16 + hh*8 + grp (hh 0: c0,c1; hh 1: c2,c3).
  int my_lo[2][2];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) my_lo[mi][hh] = row_lo[warp * 32 + mi * 16 + hh * 8 + grp];
  const int row0 = m0 + warp * 32 + grp;  // global row of (mi 0, hh 0)

  // Lane addresses (bytes, shared window) of the fragments at their tile origins.
  const uint32_t q_addr = SmemAddr(Qs) + 2 * (ALaneOffset(LD, lane) + warp * 32 * LD);
  const uint32_t k_addr = SmemAddr(Ks) + 2 * BLaneOffset(LD, lane);
  const uint32_t v_addr = SmemAddr(Vs) + 2 * BTransLaneOffset(LD, lane);
  constexpr uint32_t kBufBytes = BN * LD * 2;

  float o_acc[2][NT_O][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int nt = 0; nt < NT_O; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o_acc[mi][nt][e] = 0.f;
  float m_run[2][2], l_run[2][2];  // running max (log2 units) and this thread's partial row sums
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) { m_run[mi][hh] = -INFINITY; l_run[mi][hh] = 0.f; }

  for (int it = 0; it < nblk; ++it) {
    CpAsyncWaitAll();
    __syncthreads();  // block it is in; every warp is done with the buffer the prefetch overwrites
    if (it + 1 < nblk) load_kv(it + 1, (it + 1) & 1);
    CpAsyncCommit();
    const uint32_t kb = k_addr + (it & 1) * kBufBytes, vb = v_addr + (it & 1) * kBufBytes;
    const int j0 = walk.Start(it);

    // S = Q K^T for this warp's 32 rows x 64 keys.
    float s[2][NT_S][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mi][nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) Ldmatrix4(a[mi], q_addr + 2 * (mi * 16 * LD + kk * 16));
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t b[4];
        Ldmatrix4(b, kb + 2 * (np * 16 * LD + kk * 16));
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          Mma(s[mi][2 * np], a[mi], b[0], b[1]);
          Mma(s[mi][2 * np + 1], a[mi], b[2], b[3]);
        }
      }
    }

    // Scale into log2 units and mask. Block-0 blocks entirely inside every row's [lo, i] skip the mask.
    const bool diag_block = it >= walk.diagonal;
    const int ttt_base = walk.StepBase(it);
    const bool full = !diag_block && j0 >= lo_max && j0 + BN - 1 <= m0;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hh = e >> 1;
          float x = s[mi][nt][e] * sl2;
          if (!full) {
            const int i = row0 + mi * 16 + hh * 8;
            const int j = j0 + nt * 8 + 2 * tig + (e & 1);
            const bool vis = diag_block ? (j - ttt_base == i && i < T) : (j >= my_lo[mi][hh] && j <= i);
            if (!vis) x = -INFINITY;
          }
          s[mi][nt][e] = x;
        }

    // Online softmax; a row's 64 scores live in the 4 threads of a quad.
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt) mx = fmaxf(mx, fmaxf(s[mi][nt][2 * hh], s[mi][nt][2 * hh + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mi][hh], mx);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // all masked so far: avoid inf - inf
        const float alpha = FastExp2(m_run[mi][hh] - m_use);
        m_run[mi][hh] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt) {
          const float p0 = FastExp2(s[mi][nt][2 * hh] - m_use), p1 = FastExp2(s[mi][nt][2 * hh + 1] - m_use);
          s[mi][nt][2 * hh] = p0;
          s[mi][nt][2 * hh + 1] = p1;
          sum += p0 + p1;
        }
        l_run[mi][hh] = l_run[mi][hh] * alpha + sum;
#pragma unroll
        for (int nt = 0; nt < NT_O; ++nt) {
          o_acc[mi][nt][2 * hh] *= alpha;
          o_acc[mi][nt][2 * hh + 1] *= alpha;
        }
      }

    // O += P V, P (bf16) straight from the S accumulators.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) AccToA(a[mi], s[mi], kk);
#pragma unroll
      for (int np = 0; np < D / 16; ++np) {
        uint32_t b[4];
        Ldmatrix4Trans(b, vb + 2 * (kk * 16 * LD + np * 16));
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          Mma(o_acc[mi][2 * np], a[mi], b[0], b[1]);
          Mma(o_acc[mi][2 * np + 1], a[mi], b[2], b[3]);
        }
      }
    }
  }

  // Normalise and store; lse = (m + log2 l) * ln 2. A row with no visible key: o = 0, lse = -inf.
  __nv_bfloat16* o = static_cast<__nv_bfloat16*>(p.o);
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float l = l_run[mi][hh];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int i = row0 + mi * 16 + hh * 8;
      if (i >= T) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      uint32_t* orow = reinterpret_cast<uint32_t*>(o + ((size_t)i * p.num_heads + h) * D);
#pragma unroll
      for (int nt = 0; nt < NT_O; ++nt)
        orow[nt * 4 + tig] = PackBf16(o_acc[mi][nt][2 * hh] * inv, o_acc[mi][nt][2 * hh + 1] * inv);
      if (tig == 0) p.lse[(size_t)h * T + i] = l > 0.f ? (m_run[mi][hh] + log2f(l)) * kLn2 : -INFINITY;
    }
}

constexpr int kSimtMaxD = 256, kSimtWarps = 4;

template <typename TS>
__global__ void __launch_bounds__(kSimtWarps * 32) AttnFwdSimt(FwdParams p) {
  __shared__ float qs[kSimtWarps][kSimtMaxD];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int i = blockIdx.x * kSimtWarps + warp, h = blockIdx.y, hd = p.head_dim;
  if (i >= p.tokens) return;  // whole warps only: no block-wide barrier below
  const int T = p.tokens, g = h / p.group;
  const TS* q = static_cast<const TS*>(p.q);
  const TS* k = static_cast<const TS*>(p.k);
  const TS* v = static_cast<const TS*>(p.v);
  for (int c = lane; c < hd; c += 32) qs[warp][c] = ToFloat(q[((size_t)i * p.num_heads + h) * hd + c]);
  __syncwarp();

  // Visible keys, enumerated: block-0 keys [lo, i], then r*T + i for r = 1..steps.
  const int lo = (int)AttentionKeyLo(p.cu_seqlens, p.batch, T, p.mask, p.window, i);
  const int n0 = i - lo + 1, nkeys = n0 + p.steps;
  float acc[kSimtMaxD / 32];
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c) acc[c] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int base = 0; base < nkeys; base += 32) {
    const int idx = base + lane;
    const bool valid = idx < nkeys;
    const int j = !valid ? 0 : idx < n0 ? lo + idx : (idx - n0 + 1) * T + i;
    float sc = -INFINITY;
    if (valid) {
      const TS* kr = k + ((size_t)j * p.num_kv_heads + g) * hd;
      float dot = 0.f;
      for (int c = 0; c < hd; ++c) dot += qs[warp][c] * ToFloat(kr[c]);
      sc = dot * p.scale;
    }
    const float m_new = fmaxf(m, WarpMax(sc));  // finite: lane 0 of a chunk is always valid
    const float alpha = m == -INFINITY ? 0.f : expf(m - m_new);
    const float pj = valid ? expf(sc - m_new) : 0.f;
    l = l * alpha + WarpSum(pj);
#pragma unroll
    for (int c = 0; c < kSimtMaxD / 32; ++c) acc[c] *= alpha;
    const int n = min(32, nkeys - base);
    for (int x = 0; x < n; ++x) {
      const float px = __shfl_sync(0xffffffffu, pj, x);
      const int jx = __shfl_sync(0xffffffffu, j, x);
      const TS* vr = v + ((size_t)jx * p.num_kv_heads + g) * hd;
#pragma unroll
      for (int c = 0; c < kSimtMaxD / 32; ++c)
        if (c * 32 + lane < hd) acc[c] += px * ToFloat(vr[c * 32 + lane]);
    }
    m = m_new;
  }
  TS* o = static_cast<TS*>(p.o) + ((size_t)i * p.num_heads + h) * hd;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c)
    if (c * 32 + lane < hd) o[c * 32 + lane] = FromFloat<TS>(acc[c] * inv);
  if (lane == 0) p.lse[(size_t)h * T + i] = l > 0.f ? m + logf(l) : -INFINITY;
}

template <int D>
void LaunchFwdMma(const FwdParams& p, cudaStream_t stream) {
  const int bytes = FwdSmemBytes<D>();
  static bool configured[64] = {};  // per device: the > 48 KiB dynamic shared memory opt-in
  int device = 0;
  CheckCuda(cudaGetDevice(&device), "attentionForward");
  if (device >= 64 || !configured[device]) {
    CheckCuda(cudaFuncSetAttribute(AttnFwdMma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), "attentionForward");
    if (device < 64) configured[device] = true;
  }
  dim3 grid(p.num_heads, (p.tokens + kFwdBM - 1) / kFwdBM);
  AttnFwdMma<D><<<grid, kFwdThreads, bytes, stream>>>(p);
}

}  // namespace attn

void AttentionForwardCuda(const AttentionDims& d, const void* q, const void* k, const void* v, const int32_t* cu_seqlens,
                          void* o, float* lse, cudaStream_t stream) {
  const char* op = "attentionForward";
  ValidateAttentionDims(d, op);
  if (d.dtype != DType::F32 && d.dtype != DType::BF16)
    throw std::invalid_argument(std::string(op) + ": CUDA supports float32 and bfloat16, got " + DTypeName(d.dtype));
  if (d.tokens == 0) return;
  if (d.keys > INT_MAX / 2 || d.num_heads > 65535 || d.tokens * d.num_heads * d.head_dim > (int64_t(1) << 40))
    throw std::invalid_argument(std::string(op) + ": sizes too large");
  attn::FwdParams p{q, k, v, cu_seqlens, o, lse,
                    (int)d.tokens, (int)d.keys, (int)d.num_heads, (int)d.num_kv_heads, (int)(d.num_heads / d.num_kv_heads),
                    (int)d.head_dim, (int)d.batch, d.mask, (int)std::min<int64_t>(d.window, INT_MAX),
                    d.mask == AttentionMask::kTtt ? (int)d.ttt_step : 0, d.scale};
  if (attn::UsesMma(d, {q, k, v, o})) {
    if (d.head_dim == 128 && d.impl == AttentionImpl::kAuto && attn::LaunchFwdHopper(p, stream)) return;
    if (d.head_dim == 64) attn::LaunchFwdMma<64>(p, stream);
    else attn::LaunchFwdMma<128>(p, stream);
    return;
  }
  if (d.head_dim > attn::kSimtMaxD)
    throw std::invalid_argument(std::string(op) + ": head_dim " + std::to_string(d.head_dim) + " > 256 is not supported on CUDA");
  dim3 grid((d.tokens + attn::kSimtWarps - 1) / attn::kSimtWarps, d.num_heads);
  if (d.dtype == DType::F32) attn::AttnFwdSimt<float><<<grid, attn::kSimtWarps * 32, 0, stream>>>(p);
  else attn::AttnFwdSimt<__nv_bfloat16><<<grid, attn::kSimtWarps * 32, 0, stream>>>(p);
}

}  // namespace aerie
