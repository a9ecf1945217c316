// Prefill/training attention over packed variable-length sequences, forward and backward, flash
// style (no T x T score matrix is ever materialised, on either backend).
//
// Layout. q is (T, nH, hd); k and v are (Tk, nKV, hd) with nH % nKV == 0: query head h reads kv head
// h / (nH / nKV) (grouped-query attention). cu_seqlens (B+1) int32 holds cumulative document lengths
// over the T query rows: 0 = c[0] <= c[1] <= ... <= c[B] = T; document b is rows [c[b], c[b+1]) and a
// token's position is its index within its document. Softmax scale `scale` (callers default it to
// 1/sqrt(hd)). Outputs: o (T, nH, hd) in q's dtype, and lse (nH, T) float32, the natural-log
// log-sum-exp of the scaled scores of each row, saved for backward.
//
// Masks (key j visible to query i), with d(i) = document of row i:
//   causal  (Tk == T): d(j) == d(i) and pos(j) <= pos(i), i.e. c[d(i)] <= j <= i.
//   sliding (Tk == T, window W > 0): causal and pos(i) - pos(j) < W.
//   ttt     (EAGLE-3 training-time test at step s >= 0, Tk == (s+1) T): the keys are s+1 blocks of T
//           rows (block r = the keys of TTT step r). Query i sees the causal same-document keys of
//           block 0, plus exactly key r*T + i for each r = 1..s (one diagonal per later step).
// A row with no visible key (impossible with well-formed cu_seqlens) gets o = 0 and lse = -inf.
// Malformed cu_seqlens never cause out-of-bounds accesses (document bounds are clamped to [0, T)),
// but the result is then unspecified; the CPU twin rejects them.
//
// Backward: given dO (T, nH, hd), o and lse, computes dq (T, nH, hd) and dk, dv (Tk, nKV, hd) (kv
// gradients summed over the query heads that share a kv head), with delta = rowsum(dO * o) (nH, T)
// computed first into a caller-provided float32 workspace.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

enum class AttentionMask : int32_t { kCausal = 0, kSliding = 1, kTtt = 2 };

// Which CUDA kernels run: kAuto picks the flash kernels for bf16 with hd 64 or 128 (the wgmma forward
// for hd 128 on compute capability 9.0, mma.sync otherwise) and the plain fp32 SIMT kernels
// otherwise; kSimt forces the SIMT kernels (the reference path, for tests); kMmaSync is kAuto without
// the wgmma forward (so tests cover the mma.sync kernel on Hopper too).
enum class AttentionImpl : int32_t { kAuto = 0, kSimt = 1, kMmaSync = 2 };

struct AttentionDims {
  int64_t tokens = 0;        // T: query rows
  int64_t keys = 0;          // Tk: T, or (ttt_step + 1) * T for the TTT mask
  int64_t num_heads = 0;     // nH
  int64_t num_kv_heads = 0;  // nKV, divides nH
  int64_t head_dim = 0;      // hd
  int64_t batch = 0;         // B: documents, cu_seqlens has B+1 entries
  AttentionMask mask = AttentionMask::kCausal;
  int64_t window = 0;        // sliding mask only: W > 0
  int64_t ttt_step = 0;      // TTT mask only: s >= 0
  float scale = 1.0f;        // applied to q.k before the softmax
  DType dtype = DType::F32;  // storage of q, k, v, o, dO, dq, dk, dv
  AttentionImpl impl = AttentionImpl::kAuto;
};

// Throws std::invalid_argument unless the dims are consistent (shared by both backends).
void ValidateAttentionDims(const AttentionDims& d, const char* op);

// Forward. o and lse are written.
void AttentionForwardCpu(const AttentionDims& d,
                         const void* q,               // (T, nH, hd)
                         const void* k,               // (Tk, nKV, hd)
                         const void* v,               // (Tk, nKV, hd)
                         const int32_t* cu_seqlens,   // (B+1)
                         void* o,                     // (T, nH, hd)
                         float* lse);                 // (nH, T)
void AttentionForwardCuda(const AttentionDims& d, const void* q, const void* k, const void* v, const int32_t* cu_seqlens,
                          void* o, float* lse, cudaStream_t stream);

// Backward. dq, dk, dv, delta are written; dq_accum is a CUDA-only fp32 workspace (the CPU twin
// ignores it and accepts nullptr).
void AttentionBackwardCpu(const AttentionDims& d,
                          const void* dout,            // (T, nH, hd)
                          const void* q,               // (T, nH, hd)
                          const void* k,               // (Tk, nKV, hd)
                          const void* v,               // (Tk, nKV, hd)
                          const void* o,               // (T, nH, hd)
                          const float* lse,            // (nH, T)
                          const int32_t* cu_seqlens,   // (B+1)
                          void* dq,                    // (T, nH, hd)
                          void* dk,                    // (Tk, nKV, hd)
                          void* dv,                    // (Tk, nKV, hd)
                          float* delta,                // (nH, T) workspace: rowsum(dO * o)
                          float* dq_accum);            // (T, nH, hd) fp32 workspace (CUDA only)
void AttentionBackwardCuda(const AttentionDims& d, const void* dout, const void* q, const void* k, const void* v,
                           const void* o, const float* lse, const int32_t* cu_seqlens, void* dq, void* dk, void* dv,
                           float* delta, float* dq_accum, cudaStream_t stream);

// ---- Mask geometry shared by the CPU twin and the CUDA kernels (global row indices). ----

// Document [*start, *end) of row i (0 <= i < T), clamped so that start <= i < end <= T.
AERIE_HD void AttentionDocOf(const int32_t* cu_seqlens, int64_t batch, int64_t tokens, int64_t i, int64_t* start,
                             int64_t* end) {
  int64_t lo = 0, hi = batch - 1;  // last b with cu[b] <= i
  while (lo < hi) {
    int64_t mid = (lo + hi + 1) >> 1;
    if (cu_seqlens[mid] <= i) lo = mid; else hi = mid - 1;
  }
  int64_t s = batch > 0 ? cu_seqlens[lo] : i;
  int64_t e = batch > 0 ? cu_seqlens[lo + 1] : i + 1;
  *start = s < 0 ? 0 : (s > i ? i : s);
  *end = e <= i ? i + 1 : (e > tokens ? tokens : e);
}

// Block-0 keys visible to query row i: [*lo, i] (hi is always i).
AERIE_HD int64_t AttentionKeyLo(const int32_t* cu_seqlens, int64_t batch, int64_t tokens, AttentionMask mask,
                                int64_t window, int64_t i) {
  int64_t s, e;
  AttentionDocOf(cu_seqlens, batch, tokens, i, &s, &e);
  if (mask == AttentionMask::kSliding && i - window + 1 > s) s = i - window + 1;
  return s;
}

// Query rows that see block-0 key j: [j, return value] (inclusive).
AERIE_HD int64_t AttentionQueryHi(const int32_t* cu_seqlens, int64_t batch, int64_t tokens, AttentionMask mask,
                                  int64_t window, int64_t j) {
  int64_t s, e;
  AttentionDocOf(cu_seqlens, batch, tokens, j, &s, &e);
  if (mask == AttentionMask::kSliding && j + window < e) e = j + window;
  return e - 1;
}

}  // namespace aerie
