/*
 * Attention backward on CUDA (semantics in attention.h). With P = exp(scale q.k - lse) recomputed
 * from the saved lse, dP = dO v, delta = rowsum(dO o) and dS = P (dP - delta):
 *   dv = P^T dO,  dk = scale dS^T q,  dq = scale dS k.
 *
 * Kernels, in launch order:
 *  - AttnDelta<T>: delta (nH, T), one warp per (row, head).
 *  - AttnBwdMma<D> (bf16, hd D in {64, 128}): FlashAttention-2 style. A CTA of 4 warps owns 64 keys
 *    of one kv head (16 per warp) and keeps their dk, dv in registers while it walks every query
 *    head of the group and every query block of 64 that can see those keys (block 0 keys: queries
 *    [first key, last visible query], from cu_seqlens and the window; a TTT step's keys: their
 *    diagonal block only), so GQA needs no atomics on dk/dv. Per query block: S^T = K Q^T and
 *    dP^T = V dO^T (mma.sync from ldmatrix'ed shared tiles), P^T and dS^T in registers, dv += P^T dO
 *    and dk += dS^T Q with the accumulators fed straight back as A fragments; dS^T goes through
 *    shared memory so each warp can form 16 rows of dQ = dS K, added to an fp32 buffer with float2
 *    atomics. Q/dO/lse/delta blocks are double-buffered with cp.async. Grid (nKV, key tiles), the
 *    tiles with the most queries (the first) scheduled first.
 *  - AttnDqConvert: dq = scale * dq_accum in bf16.
 *  - AttnBwdDqSimt<T> / AttnBwdDkvSimt<T> (f32 or bf16, hd <= 256): the reference path; one warp per
 *    query row (dq) or per key row (dk, dv, looping over the group's heads), lanes taking one key or
 *    query of a chunk of 32 for the dot products and a slice of the head dim for the accumulation.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attention.h"
#include "attention_common.cuh"

namespace aerie {
namespace attn {

struct BwdParams {
  const void* dout;  // (T, nH, hd)
  const void* q;     // (T, nH, hd)
  const void* k;     // (Tk, nKV, hd)
  const void* v;     // (Tk, nKV, hd)
  const void* o;     // (T, nH, hd)
  const float* lse;  // (nH, T)
  const int32_t* cu_seqlens;  // (B+1)
  void* dq;          // (T, nH, hd)
  void* dk;          // (Tk, nKV, hd)
  void* dv;          // (Tk, nKV, hd)
  float* delta;      // (nH, T)
  float* dq_accum;   // (T, nH, hd), mma path only
  int tokens, keys, num_heads, num_kv_heads, group, head_dim, batch;
  AttentionMask mask;
  int window, steps;
  float scale;
};

constexpr int kWarps = 4, kSimtMaxD = 256;

template <typename TS>
__global__ void __launch_bounds__(kWarps * 32) AttnDelta(BwdParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t x = (int64_t)blockIdx.x * kWarps + warp;  // row * nH + head
  if (x >= (int64_t)p.tokens * p.num_heads) return;
  const TS* a = static_cast<const TS*>(p.dout) + x * p.head_dim;
  const TS* b = static_cast<const TS*>(p.o) + x * p.head_dim;
  float sum = 0.f;
  for (int c = lane; c < p.head_dim; c += 32) sum += ToFloat(a[c]) * ToFloat(b[c]);
  sum = WarpSum(sum);
  if (lane == 0) p.delta[(x % p.num_heads) * p.tokens + x / p.num_heads] = sum;
}

// ---------------------------------------------------------------------------------------------
// mma.sync path

constexpr int kBwdBM = 64, kBwdBN = 64, kBwdThreads = 128;

template <int D>
constexpr int BwdSmemBytes() {
  // K, V, 2 x Q, 2 x dO (bf16, padded rows), dS^T (bf16), 2 x lse, 2 x delta (fp32)
  return (2 * kBwdBN + 4 * kBwdBM) * (D + kPad) * 2 + kBwdBN * (kBwdBM + kPad) * 2 + 4 * kBwdBM * 4;
}

template <int D>
__global__ void __launch_bounds__(kBwdThreads, 2) AttnBwdMma(BwdParams p) {
  constexpr int BM = kBwdBM, BN = kBwdBN, LD = D + kPad, LDS = BM + kPad, NT_S = BM / 8, NT_D = D / 8, CH = D / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // (BN, LD)
  __nv_bfloat16* Vs = Ks + BN * LD;                                 // (BN, LD)
  __nv_bfloat16* Qs = Vs + BN * LD;                                 // 2 x (BM, LD)
  __nv_bfloat16* dOs = Qs + 2 * BM * LD;                            // 2 x (BM, LD)
  __nv_bfloat16* dSs = dOs + 2 * BM * LD;                           // (BN keys, LDS): dS^T
  float* lse_s = reinterpret_cast<float*>(dSs + BN * LDS);          // 2 x (BM)
  float* delta_s = lse_s + 2 * BM;                                  // 2 x (BM)

  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q);
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k);
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(p.v);
  const __nv_bfloat16* dout = static_cast<const __nv_bfloat16*>(p.dout);
  const int T = p.tokens, g = blockIdx.x, nbT = (T + BN - 1) / BN;
  const int step = blockIdx.y / nbT, n0 = (blockIdx.y % nbT) * BN;  // keys step*T + n0 + [0, BN)
  const int nvalid = min(BN, T - n0), jbase = step * T + n0;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, grp = lane >> 2, tig = lane & 3;
  const float sl2 = p.scale * kLog2e;

  for (int x = tid; x < BN * CH; x += kBwdThreads) {
    const int r = x / CH, c = (x % CH) * 8;
    const bool ok = r < nvalid;
    const size_t off = ((size_t)(ok ? jbase + r : 0) * p.num_kv_heads + g) * D + c;
    CpAsync16(&Ks[r * LD + c], k + off, ok);
    CpAsync16(&Vs[r * LD + c], v + off, ok);
  }

  // Query blocks that can see these keys: block 0 keys are seen by [n0, QueryHi(last key)]; a TTT
  // step's key n0 + c only by query n0 + c.
  int nqb = 1, qhi_min = -1;
  if (step == 0) {
    const int qhi_max = (int)AttentionQueryHi(p.cu_seqlens, p.batch, T, p.mask, p.window, n0 + nvalid - 1);
    qhi_min = (int)AttentionQueryHi(p.cu_seqlens, p.batch, T, p.mask, p.window, n0);
    nqb = (qhi_max - n0 + BM) / BM;
  }
  const int niter = p.group * nqb;
  auto load_q = [&](int it, int buf) {
    const int h = g * p.group + it / nqb, q0 = n0 + (it % nqb) * BM;
    for (int x = tid; x < BM * CH; x += kBwdThreads) {
      const int r = x / CH, c = (x % CH) * 8;
      const bool ok = q0 + r < T;
      const size_t off = ((size_t)(ok ? q0 + r : 0) * p.num_heads + h) * D + c;
      CpAsync16(&Qs[buf * BM * LD + r * LD + c], q + off, ok);
      CpAsync16(&dOs[buf * BM * LD + r * LD + c], dout + off, ok);
    }
    if (tid < BM) {
      const bool ok = q0 + tid < T;
      const size_t off = (size_t)h * T + (ok ? q0 + tid : 0);
      CpAsync4(&lse_s[buf * BM + tid], p.lse + off, ok);
      CpAsync4(&delta_s[buf * BM + tid], p.delta + off, ok);
    }
  };
  load_q(0, 0);
  CpAsyncCommit();

  // This thread's 2 keys (local row warp*16 + hh*8 + grp) and the queries that see them: [lo, hi].
  int key_lo[2], key_hi[2];
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int kr = warp * 16 + hh * 8 + grp, jl = n0 + kr;
    const bool ok = kr < nvalid;
    key_lo[hh] = ok ? jl : INT_MAX;
    key_hi[hh] = !ok ? -1 : step == 0 ? (int)AttentionQueryHi(p.cu_seqlens, p.batch, T, p.mask, p.window, jl) : jl;
  }

  // Lane addresses (bytes) of the fragments at their tile origins.
  constexpr uint32_t kQBuf = BM * LD * 2;
  const uint32_t k_a = SmemAddr(Ks) + 2 * (ALaneOffset(LD, lane) + warp * 16 * LD);
  const uint32_t v_a = SmemAddr(Vs) + 2 * (ALaneOffset(LD, lane) + warp * 16 * LD);
  const uint32_t q_b = SmemAddr(Qs) + 2 * BLaneOffset(LD, lane);
  const uint32_t do_b = SmemAddr(dOs) + 2 * BLaneOffset(LD, lane);
  const uint32_t q_bt = SmemAddr(Qs) + 2 * BTransLaneOffset(LD, lane);
  const uint32_t do_bt = SmemAddr(dOs) + 2 * BTransLaneOffset(LD, lane);
  const uint32_t k_bt = SmemAddr(Ks) + 2 * BTransLaneOffset(LD, lane);
  const uint32_t ds_at = SmemAddr(dSs) + 2 * (BLaneOffset(LDS, lane) + warp * 16);

  float dk_acc[NT_D][4], dv_acc[NT_D][4];
#pragma unroll
  for (int nt = 0; nt < NT_D; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[nt][e] = dv_acc[nt][e] = 0.f;

  for (int it = 0; it < niter; ++it) {
    CpAsyncWaitAll();
    __syncthreads();  // block it is in; every warp is done with iteration it-1 (buffers and dS)
    if (it + 1 < niter) load_q(it + 1, (it + 1) & 1);
    CpAsyncCommit();
    const int buf = it & 1, h = g * p.group + it / nqb, q0 = n0 + (it % nqb) * BM;
    const uint32_t qo = buf * kQBuf;
    const float* lse_b = lse_s + buf * BM;
    const float* delta_b = delta_s + buf * BM;

    // S^T = K_w Q^T and dP^T = V_w dO^T: this warp's 16 keys x 64 queries.
    float st[NT_S][4], dpt[NT_S][4];
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nt][e] = dpt[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ak[4], av[4];
      Ldmatrix4(ak, k_a + 2 * kk * 16);
      Ldmatrix4(av, v_a + 2 * kk * 16);
#pragma unroll
      for (int np = 0; np < BM / 16; ++np) {
        uint32_t bq[4], bd[4];
        Ldmatrix4(bq, q_b + qo + 2 * (np * 16 * LD + kk * 16));
        Ldmatrix4(bd, do_b + qo + 2 * (np * 16 * LD + kk * 16));
        Mma(st[2 * np], ak, bq[0], bq[1]);
        Mma(st[2 * np + 1], ak, bq[2], bq[3]);
        Mma(dpt[2 * np], av, bd[0], bd[1]);
        Mma(dpt[2 * np + 1], av, bd[2], bd[3]);
      }
    }

    // P^T (masked) into st, dS^T = P^T (dP^T - delta) into dpt. A query with lse = -inf (no
    // visible key) has P = 0. Blocks where every key sees every query skip the mask.
    const bool full = step == 0 && nvalid == BN && q0 >= n0 + BN - 1 && q0 + BM - 1 <= qhi_min;
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hh = e >> 1, qc = nt * 8 + 2 * tig + (e & 1), i = q0 + qc;
        const float row_lse = lse_b[qc];
        const bool vis = (full || (i >= key_lo[hh] && i <= key_hi[hh])) && row_lse != -INFINITY;
        const float pv = vis ? FastExp2(fmaf(st[nt][e], sl2, -row_lse * kLog2e)) : 0.f;
        st[nt][e] = pv;
        dpt[nt][e] = pv * (dpt[nt][e] - delta_b[qc]);
      }

    // dV_w += P^T dO and dK_w += dS^T Q (k-dim: the 64 queries).
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t ap[4], ads[4];
      AccToA(ap, st, kk);
      AccToA(ads, dpt, kk);
#pragma unroll
      for (int np = 0; np < D / 16; ++np) {
        uint32_t bd[4], bq[4];
        Ldmatrix4Trans(bd, do_bt + qo + 2 * (kk * 16 * LD + np * 16));
        Ldmatrix4Trans(bq, q_bt + qo + 2 * (kk * 16 * LD + np * 16));
        Mma(dv_acc[2 * np], ap, bd[0], bd[1]);
        Mma(dv_acc[2 * np + 1], ap, bd[2], bd[3]);
        Mma(dk_acc[2 * np], ads, bq[0], bq[1]);
        Mma(dk_acc[2 * np + 1], ads, bq[2], bq[3]);
      }
    }

    // dS^T to shared memory, then dQ rows [warp*16, +16) of this block = dS K, added atomically.
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh)
        *reinterpret_cast<uint32_t*>(&dSs[(warp * 16 + hh * 8 + grp) * LDS + nt * 8 + 2 * tig]) =
            PackBf16(dpt[nt][2 * hh], dpt[nt][2 * hh + 1]);
    __syncthreads();
#pragma unroll
    for (int half = 0; half < D / 64; ++half) {
      float dq[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dq[nt][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[4];
        Ldmatrix4Trans(a, ds_at + 2 * (kk * 16 * LDS));
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          Ldmatrix4Trans(b, k_bt + 2 * (kk * 16 * LD + half * 64 + np * 16));
          Mma(dq[2 * np], a, b[0], b[1]);
          Mma(dq[2 * np + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int i = q0 + warp * 16 + hh * 8 + grp;
        if (i >= T) continue;
        float* dst = p.dq_accum + ((size_t)i * p.num_heads + h) * D + half * 64 + 2 * tig;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          atomicAdd(reinterpret_cast<float2*>(dst + nt * 8), make_float2(dq[nt][2 * hh], dq[nt][2 * hh + 1]));
      }
    }
  }

  // dk = scale * dS^T Q, dv = P^T dO for this warp's keys.
  __nv_bfloat16* dk = static_cast<__nv_bfloat16*>(p.dk);
  __nv_bfloat16* dv = static_cast<__nv_bfloat16*>(p.dv);
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int kr = warp * 16 + hh * 8 + grp;
    if (kr >= nvalid) continue;
    const size_t off = ((size_t)(jbase + kr) * p.num_kv_heads + g) * D + 2 * tig;
#pragma unroll
    for (int nt = 0; nt < NT_D; ++nt) {
      *reinterpret_cast<uint32_t*>(dk + off + nt * 8) = PackBf16(dk_acc[nt][2 * hh] * p.scale, dk_acc[nt][2 * hh + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv + off + nt * 8) = PackBf16(dv_acc[nt][2 * hh], dv_acc[nt][2 * hh + 1]);
    }
  }
}

__global__ void AttnDqConvert(const float* __restrict__ acc, __nv_bfloat16* __restrict__ dq, int64_t n2, float scale) {
  for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < n2; x += (int64_t)gridDim.x * blockDim.x) {
    const float2 a = reinterpret_cast<const float2*>(acc)[x];
    reinterpret_cast<uint32_t*>(dq)[x] = PackBf16(a.x * scale, a.y * scale);
  }
}

// ---------------------------------------------------------------------------------------------
// SIMT reference path

template <typename TS>
__global__ void __launch_bounds__(kWarps * 32) AttnBwdDqSimt(BwdParams p) {
  __shared__ float qs[kWarps][kSimtMaxD], dos[kWarps][kSimtMaxD];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int i = blockIdx.x * kWarps + warp, h = blockIdx.y, hd = p.head_dim;
  if (i >= p.tokens) return;  // whole warps only: no block-wide barrier below
  const int T = p.tokens, g = h / p.group;
  const TS* k = static_cast<const TS*>(p.k);
  const TS* v = static_cast<const TS*>(p.v);
  const size_t row = ((size_t)i * p.num_heads + h) * hd;
  for (int c = lane; c < hd; c += 32) {
    qs[warp][c] = ToFloat(static_cast<const TS*>(p.q)[row + c]);
    dos[warp][c] = ToFloat(static_cast<const TS*>(p.dout)[row + c]);
  }
  __syncwarp();
  const float row_lse = p.lse[(size_t)h * T + i], row_delta = p.delta[(size_t)h * T + i];
  const int lo = (int)AttentionKeyLo(p.cu_seqlens, p.batch, T, p.mask, p.window, i);
  const int n0 = i - lo + 1, nkeys = n0 + p.steps;
  float acc[kSimtMaxD / 32];
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c) acc[c] = 0.f;
  for (int base = 0; base < nkeys; base += 32) {
    const int idx = base + lane;
    const bool valid = idx < nkeys;
    const int j = !valid ? 0 : idx < n0 ? lo + idx : (idx - n0 + 1) * T + i;
    float ds = 0.f;
    if (valid && row_lse != -INFINITY) {
      const size_t kr = ((size_t)j * p.num_kv_heads + g) * hd;
      float s = 0.f, dp = 0.f;
      for (int c = 0; c < hd; ++c) {
        s += qs[warp][c] * ToFloat(k[kr + c]);
        dp += dos[warp][c] * ToFloat(v[kr + c]);
      }
      ds = expf(s * p.scale - row_lse) * (dp - row_delta);
    }
    const int n = min(32, nkeys - base);
    for (int x = 0; x < n; ++x) {
      const float dsx = __shfl_sync(0xffffffffu, ds, x);
      const int jx = __shfl_sync(0xffffffffu, j, x);
      const TS* kr = k + ((size_t)jx * p.num_kv_heads + g) * hd;
#pragma unroll
      for (int c = 0; c < kSimtMaxD / 32; ++c)
        if (c * 32 + lane < hd) acc[c] += dsx * ToFloat(kr[c * 32 + lane]);
    }
  }
  TS* dq = static_cast<TS*>(p.dq) + row;
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c)
    if (c * 32 + lane < hd) dq[c * 32 + lane] = FromFloat<TS>(acc[c] * p.scale);
}

template <typename TS>
__global__ void __launch_bounds__(kWarps * 32) AttnBwdDkvSimt(BwdParams p) {
  __shared__ float ks[kWarps][kSimtMaxD], vs[kWarps][kSimtMaxD];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * kWarps + warp, g = blockIdx.y, hd = p.head_dim;
  if (j >= p.keys) return;  // whole warps only: no block-wide barrier below
  const int T = p.tokens;
  const TS* q = static_cast<const TS*>(p.q);
  const TS* dout = static_cast<const TS*>(p.dout);
  const size_t krow = ((size_t)j * p.num_kv_heads + g) * hd;
  for (int c = lane; c < hd; c += 32) {
    ks[warp][c] = ToFloat(static_cast<const TS*>(p.k)[krow + c]);
    vs[warp][c] = ToFloat(static_cast<const TS*>(p.v)[krow + c]);
  }
  __syncwarp();
  // Queries that see key j: block 0 keys [j, QueryHi(j)]; a TTT step's key r*T + jl only query jl.
  const int step = j / T, jl = j - step * T;
  const int nq = step == 0 ? (int)AttentionQueryHi(p.cu_seqlens, p.batch, T, p.mask, p.window, jl) - jl + 1 : 1;
  float dk_acc[kSimtMaxD / 32], dv_acc[kSimtMaxD / 32];
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c) dk_acc[c] = dv_acc[c] = 0.f;
  for (int h = g * p.group; h < (g + 1) * p.group; ++h) {
    for (int base = 0; base < nq; base += 32) {
      const int idx = base + lane, i = jl + (idx < nq ? idx : 0);
      float pv = 0.f, ds = 0.f;
      const float row_lse = p.lse[(size_t)h * T + i];
      if (idx < nq && row_lse != -INFINITY) {
        const size_t qrow = ((size_t)i * p.num_heads + h) * hd;
        float s = 0.f, dp = 0.f;
        for (int c = 0; c < hd; ++c) {
          s += ToFloat(q[qrow + c]) * ks[warp][c];
          dp += ToFloat(dout[qrow + c]) * vs[warp][c];
        }
        pv = expf(s * p.scale - row_lse);
        ds = pv * (dp - p.delta[(size_t)h * T + i]);
      }
      const int n = min(32, nq - base);
      for (int x = 0; x < n; ++x) {
        const float px = __shfl_sync(0xffffffffu, pv, x), dsx = __shfl_sync(0xffffffffu, ds, x);
        const size_t qrow = ((size_t)(jl + base + x) * p.num_heads + h) * hd;
#pragma unroll
        for (int c = 0; c < kSimtMaxD / 32; ++c)
          if (c * 32 + lane < hd) {
            dv_acc[c] += px * ToFloat(dout[qrow + c * 32 + lane]);
            dk_acc[c] += dsx * ToFloat(q[qrow + c * 32 + lane]);
          }
      }
    }
  }
  TS* dk = static_cast<TS*>(p.dk) + krow;
  TS* dv = static_cast<TS*>(p.dv) + krow;
#pragma unroll
  for (int c = 0; c < kSimtMaxD / 32; ++c)
    if (c * 32 + lane < hd) {
      dk[c * 32 + lane] = FromFloat<TS>(dk_acc[c] * p.scale);
      dv[c * 32 + lane] = FromFloat<TS>(dv_acc[c]);
    }
}

template <int D>
void LaunchBwdMma(const BwdParams& p, cudaStream_t stream) {
  const int bytes = BwdSmemBytes<D>();
  static bool configured[64] = {};  // per device: the > 48 KiB dynamic shared memory opt-in
  int device = 0;
  CheckCuda(cudaGetDevice(&device), "attentionBackward");
  if (device >= 64 || !configured[device]) {
    CheckCuda(cudaFuncSetAttribute(AttnBwdMma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), "attentionBackward");
    if (device < 64) configured[device] = true;
  }
  const int nbT = (p.tokens + kBwdBN - 1) / kBwdBN;
  dim3 grid(p.num_kv_heads, nbT * (p.steps + 1));
  AttnBwdMma<D><<<grid, kBwdThreads, bytes, stream>>>(p);
}

}  // namespace attn

void AttentionBackwardCuda(const AttentionDims& d, const void* dout, const void* q, const void* k, const void* v,
                           const void* o, const float* lse, const int32_t* cu_seqlens, void* dq, void* dk, void* dv,
                           float* delta, float* dq_accum, cudaStream_t stream) {
  const char* op = "attentionBackward";
  ValidateAttentionDims(d, op);
  if (d.dtype != DType::F32 && d.dtype != DType::BF16)
    throw std::invalid_argument(std::string(op) + ": CUDA supports float32 and bfloat16, got " + DTypeName(d.dtype));
  if (d.tokens == 0) return;
  if (d.keys > INT_MAX / 2 || d.num_heads > 65535 || d.num_kv_heads > 65535 ||
      d.tokens * d.num_heads * d.head_dim > (int64_t(1) << 40))
    throw std::invalid_argument(std::string(op) + ": sizes too large");
  attn::BwdParams p{dout, q, k, v, o, lse, cu_seqlens, dq, dk, dv, delta, dq_accum,
                    (int)d.tokens, (int)d.keys, (int)d.num_heads, (int)d.num_kv_heads, (int)(d.num_heads / d.num_kv_heads),
                    (int)d.head_dim, (int)d.batch, d.mask, (int)std::min<int64_t>(d.window, INT_MAX),
                    d.mask == AttentionMask::kTtt ? (int)d.ttt_step : 0, d.scale};
  const bool mma = attn::UsesMma(d, {dout, q, k, v, o, dq, dk, dv, dq_accum});
  if (!mma && d.head_dim > attn::kSimtMaxD)
    throw std::invalid_argument(std::string(op) + ": head_dim " + std::to_string(d.head_dim) + " > 256 is not supported on CUDA");
  if (mma && !dq_accum) throw std::invalid_argument(std::string(op) + ": the bf16 kernels need the dq_accum workspace");
  const int64_t rows = d.tokens * d.num_heads;
  const int threads = attn::kWarps * 32;
  if (d.dtype == DType::F32) attn::AttnDelta<float><<<(rows + attn::kWarps - 1) / attn::kWarps, threads, 0, stream>>>(p);
  else attn::AttnDelta<__nv_bfloat16><<<(rows + attn::kWarps - 1) / attn::kWarps, threads, 0, stream>>>(p);
  if (mma) {
    const int64_t n = rows * d.head_dim;
    CheckCuda(cudaMemsetAsync(dq_accum, 0, n * sizeof(float), stream), op);
    if (d.head_dim == 64) attn::LaunchBwdMma<64>(p, stream);
    else attn::LaunchBwdMma<128>(p, stream);
    const int64_t blocks = std::min<int64_t>((n / 2 + 255) / 256, 65536);
    attn::AttnDqConvert<<<blocks, 256, 0, stream>>>(dq_accum, static_cast<__nv_bfloat16*>(dq), n / 2, d.scale);
    return;
  }
  dim3 dq_grid((d.tokens + attn::kWarps - 1) / attn::kWarps, d.num_heads);
  dim3 dkv_grid((d.keys + attn::kWarps - 1) / attn::kWarps, d.num_kv_heads);
  if (d.dtype == DType::F32) {
    attn::AttnBwdDqSimt<float><<<dq_grid, threads, 0, stream>>>(p);
    attn::AttnBwdDkvSimt<float><<<dkv_grid, threads, 0, stream>>>(p);
  } else {
    attn::AttnBwdDqSimt<__nv_bfloat16><<<dq_grid, threads, 0, stream>>>(p);
    attn::AttnBwdDkvSimt<__nv_bfloat16><<<dkv_grid, threads, 0, stream>>>(p);
  }
}

}  // namespace aerie
