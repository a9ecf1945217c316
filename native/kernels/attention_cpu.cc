// CPU twin of the attention kernels: the same flash algorithm as the CUDA path (key blocks with an
// online softmax, never a T x T matrix), fp32 math on any float storage, threaded over
// (head, query block) for the forward and dq, and over (kv head, key block) for dk/dv so that no two
// threads write the same row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.h"
#include "thread_pool.h"

namespace aerie {
namespace {

constexpr int64_t kBlock = 32;  // query and key rows per tile
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Widens n elements starting at element `offset` of `base` into dst.
void LoadRow(const void* base, size_t offset, DType t, int64_t n, float* dst) {
  switch (t) {
    case DType::F32: {
      const float* p = static_cast<const float*>(base) + offset;
      std::copy(p, p + n, dst);
      return;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(p[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToFloat(p[i]);
      return;
    }
    default:
      throw std::invalid_argument(std::string("attention: expected a floating dtype, got ") + DTypeName(t));
  }
}

void StoreRow(void* base, size_t offset, DType t, int64_t n, const float* src, float mul) {
  for (int64_t i = 0; i < n; ++i) StoreF(base, offset + i, t, src[i] * mul);
}

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void ValidateCuSeqlens(const AttentionDims& d, const int32_t* cu, const char* op) {
  if (d.batch == 0) return;  // only with T == 0 (ValidateAttentionDims)
  bool ok = cu[0] == 0 && cu[d.batch] == d.tokens;
  for (int64_t b = 0; ok && b < d.batch; ++b) ok = cu[b] <= cu[b + 1];
  if (!ok)
    throw std::invalid_argument(std::string(op) + ": cu_seqlens must rise from 0 to T = " + std::to_string(d.tokens) +
                                " without decreasing (got first " + std::to_string(cu[0]) + ", last " +
                                std::to_string(cu[d.batch]) + ")");
}

// Online-softmax state of one query row.
struct RowState {
  float m = kNegInf;  // running max of the scaled scores
  float l = 0.f;      // running sum of exp(score - m)
};

// Folds scaled scores s[0..n) (kNegInf = masked) with value rows v[j*hd ..] into (state, acc).
void OnlineUpdate(RowState& st, float* acc, const float* s, const float* v, int64_t n, int64_t hd) {
  float mb = kNegInf;
  for (int64_t j = 0; j < n; ++j) mb = std::max(mb, s[j]);
  if (mb == kNegInf) return;
  float m_new = std::max(st.m, mb);
  float alpha = st.m == kNegInf ? 0.f : std::exp(st.m - m_new);
  if (alpha != 1.f) {
    for (int64_t c = 0; c < hd; ++c) acc[c] *= alpha;
    st.l *= alpha;
  }
  for (int64_t j = 0; j < n; ++j) {
    if (s[j] == kNegInf) continue;
    float p = std::exp(s[j] - m_new);
    st.l += p;
    Axpy(p, v + j * hd, acc, hd);
  }
  st.m = m_new;
}

}  // namespace

void ValidateAttentionDims(const AttentionDims& d, const char* op) {
  auto fail = [&](const std::string& m) { throw std::invalid_argument(std::string(op) + ": " + m); };
  if (d.tokens < 0 || d.keys < 0) fail("negative sequence length");
  if (d.num_heads < 1 || d.num_kv_heads < 1 || d.num_heads % d.num_kv_heads != 0)
    fail("num_heads (" + std::to_string(d.num_heads) + ") must be a positive multiple of num_kv_heads (" +
         std::to_string(d.num_kv_heads) + ")");
  if (d.head_dim < 1) fail("head_dim must be positive");
  if (d.batch < 0 || (d.tokens > 0 && d.batch < 1)) fail("cu_seqlens must hold at least 2 entries when T > 0");
  if (!IsFloating(d.dtype)) fail(std::string("expected a floating dtype, got ") + DTypeName(d.dtype));
  if (!std::isfinite(d.scale)) fail("scale must be finite");
  switch (d.mask) {
    case AttentionMask::kCausal:
    case AttentionMask::kSliding:
      if (d.keys != d.tokens) fail("causal and sliding masks need Tk == T, got Tk = " + std::to_string(d.keys) + ", T = " + std::to_string(d.tokens));
      if (d.mask == AttentionMask::kSliding && d.window < 1) fail("sliding mask needs window > 0");
      break;
    case AttentionMask::kTtt:
      if (d.ttt_step < 0) fail("ttt_step must be >= 0");
      if (d.keys != (d.ttt_step + 1) * d.tokens)
        fail("TTT step " + std::to_string(d.ttt_step) + " needs Tk == (step + 1) * T = " + std::to_string((d.ttt_step + 1) * d.tokens) +
             ", got " + std::to_string(d.keys));
      break;
    default:
      fail("unknown mask code " + std::to_string(static_cast<int>(d.mask)));
  }
}

void AttentionForwardCpu(const AttentionDims& d, const void* q, const void* k, const void* v, const int32_t* cu_seqlens,
                         void* o, float* lse) {
  ValidateAttentionDims(d, "attentionForward");
  ValidateCuSeqlens(d, cu_seqlens, "attentionForward");
  const int64_t T = d.tokens, nH = d.num_heads, nKV = d.num_kv_heads, hd = d.head_dim;
  const int64_t group = nH / nKV, nqb = (T + kBlock - 1) / kBlock;
  const int64_t steps = d.mask == AttentionMask::kTtt ? d.ttt_step : 0;
  ParallelFor(nH * nqb, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qs(kBlock * hd), ks(kBlock * hd), vs(kBlock * hd), acc(kBlock * hd), s(kBlock);
    std::vector<int64_t> lo(kBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task / nqb, g = h / group;
      const int64_t i0 = (task % nqb) * kBlock, rows = std::min(kBlock, T - i0);
      std::vector<RowState> st(rows);
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t r = 0; r < rows; ++r) {
        LoadRow(q, ((i0 + r) * nH + h) * hd, d.dtype, hd, &qs[r * hd]);
        lo[r] = AttentionKeyLo(cu_seqlens, d.batch, T, d.mask, d.window, i0 + r);
      }
      // Block-0 keys [lo of the first row, last row]: lo never decreases along the rows.
      for (int64_t j0 = lo[0]; j0 < i0 + rows; j0 += kBlock) {
        const int64_t n = std::min(kBlock, i0 + rows - j0);
        for (int64_t c = 0; c < n; ++c) {
          LoadRow(k, ((j0 + c) * nKV + g) * hd, d.dtype, hd, &ks[c * hd]);
          LoadRow(v, ((j0 + c) * nKV + g) * hd, d.dtype, hd, &vs[c * hd]);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          for (int64_t c = 0; c < n; ++c) {
            const int64_t j = j0 + c;
            s[c] = (j >= lo[r] && j <= i) ? d.scale * Dot(&qs[r * hd], &ks[c * hd], hd) : kNegInf;
          }
          OnlineUpdate(st[r], &acc[r * hd], s.data(), vs.data(), n, hd);
        }
      }
      // TTT: key r*T + i for each later step r.
      for (int64_t step = 1; step <= steps; ++step) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t j = step * T + i0 + r;
          LoadRow(k, (j * nKV + g) * hd, d.dtype, hd, ks.data());
          LoadRow(v, (j * nKV + g) * hd, d.dtype, hd, vs.data());
          s[0] = d.scale * Dot(&qs[r * hd], ks.data(), hd);
          OnlineUpdate(st[r], &acc[r * hd], s.data(), vs.data(), 1, hd);
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        const bool empty = st[r].l == 0.f;
        StoreRow(o, (i * nH + h) * hd, d.dtype, hd, &acc[r * hd], empty ? 0.f : 1.f / st[r].l);
        lse[h * T + i] = empty ? kNegInf : st[r].m + std::log(st[r].l);
      }
    }
  });
}

void AttentionBackwardCpu(const AttentionDims& d, const void* dout, const void* q, const void* k, const void* v,
                          const void* o, const float* lse, const int32_t* cu_seqlens, void* dq, void* dk, void* dv,
                          float* delta, float* /*dq_accum*/) {
  ValidateAttentionDims(d, "attentionBackward");
  ValidateCuSeqlens(d, cu_seqlens, "attentionBackward");
  const int64_t T = d.tokens, nH = d.num_heads, nKV = d.num_kv_heads, hd = d.head_dim;
  const int64_t group = nH / nKV, nb = (T + kBlock - 1) / kBlock;
  const int64_t steps = d.mask == AttentionMask::kTtt ? d.ttt_step : 0;
  const float scale = d.scale;
  // P recomputed from the saved lse; a row with lse = -inf (no visible key) has P = 0.
  auto prob = [&](float raw, float row_lse) { return row_lse == kNegInf ? 0.f : std::exp(scale * raw - row_lse); };

  // delta = rowsum(dO * o), in double: it is subtracted from dP, where cancellation would show.
  ParallelFor(T * nH, 256, [&](int64_t begin, int64_t end) {
    std::vector<float> a(hd), b(hd);
    for (int64_t x = begin; x < end; ++x) {
      const int64_t i = x / nH, h = x % nH;
      LoadRow(dout, x * hd, d.dtype, hd, a.data());
      LoadRow(o, x * hd, d.dtype, hd, b.data());
      double sum = 0;
      for (int64_t c = 0; c < hd; ++c) sum += static_cast<double>(a[c]) * b[c];
      delta[h * T + i] = static_cast<float>(sum);
    }
  });

  // dq, one (head, query block) per task: dq_i = scale * sum_j P_ij (dP_ij - delta_i) k_j.
  ParallelFor(nH * nb, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qs(kBlock * hd), dos(kBlock * hd), ks(kBlock * hd), vs(kBlock * hd), acc(kBlock * hd);
    std::vector<int64_t> lo(kBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task / nb, g = h / group;
      const int64_t i0 = (task % nb) * kBlock, rows = std::min(kBlock, T - i0);
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t r = 0; r < rows; ++r) {
        LoadRow(q, ((i0 + r) * nH + h) * hd, d.dtype, hd, &qs[r * hd]);
        LoadRow(dout, ((i0 + r) * nH + h) * hd, d.dtype, hd, &dos[r * hd]);
        lo[r] = AttentionKeyLo(cu_seqlens, d.batch, T, d.mask, d.window, i0 + r);
      }
      auto accumulate = [&](int64_t r, const float* kr, const float* vr) {
        const int64_t i = i0 + r;
        const float p = prob(Dot(&qs[r * hd], kr, hd), lse[h * T + i]);
        const float ds = p * (Dot(&dos[r * hd], vr, hd) - delta[h * T + i]);
        Axpy(ds, kr, &acc[r * hd], hd);
      };
      for (int64_t j0 = lo[0]; j0 < i0 + rows; j0 += kBlock) {
        const int64_t n = std::min(kBlock, i0 + rows - j0);
        for (int64_t c = 0; c < n; ++c) {
          LoadRow(k, ((j0 + c) * nKV + g) * hd, d.dtype, hd, &ks[c * hd]);
          LoadRow(v, ((j0 + c) * nKV + g) * hd, d.dtype, hd, &vs[c * hd]);
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < n; ++c)
            if (j0 + c >= lo[r] && j0 + c <= i0 + r) accumulate(r, &ks[c * hd], &vs[c * hd]);
      }
      for (int64_t step = 1; step <= steps; ++step) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t j = step * T + i0 + r;
          LoadRow(k, (j * nKV + g) * hd, d.dtype, hd, ks.data());
          LoadRow(v, (j * nKV + g) * hd, d.dtype, hd, vs.data());
          accumulate(r, ks.data(), vs.data());
        }
      }
      for (int64_t r = 0; r < rows; ++r) StoreRow(dq, ((i0 + r) * nH + h) * hd, d.dtype, hd, &acc[r * hd], scale);
    }
  });

  // dk, dv, one (kv head, step, key block) per task, summing over the heads of the group:
  // dv_j = sum_i P_ij dO_i, dk_j = scale * sum_i P_ij (dP_ij - delta_i) q_i.
  ParallelFor(nKV * (steps + 1) * nb, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> ks(kBlock * hd), vs(kBlock * hd), qs(kBlock * hd), dos(kBlock * hd);
    std::vector<float> dk_acc(kBlock * hd), dv_acc(kBlock * hd);
    std::vector<int64_t> qhi(kBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / ((steps + 1) * nb), step = (task / nb) % (steps + 1);
      const int64_t n0 = (task % nb) * kBlock, n = std::min(kBlock, T - n0);  // rows within the step's block
      const int64_t jbase = step * T + n0;                                      // first global key row
      std::fill(dk_acc.begin(), dk_acc.end(), 0.f);
      std::fill(dv_acc.begin(), dv_acc.end(), 0.f);
      for (int64_t c = 0; c < n; ++c) {
        LoadRow(k, ((jbase + c) * nKV + g) * hd, d.dtype, hd, &ks[c * hd]);
        LoadRow(v, ((jbase + c) * nKV + g) * hd, d.dtype, hd, &vs[c * hd]);
        qhi[c] = step == 0 ? AttentionQueryHi(cu_seqlens, d.batch, T, d.mask, d.window, n0 + c) : n0 + c;
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        auto accumulate = [&](int64_t c, int64_t i, const float* qr, const float* dor) {
          const float p = prob(Dot(qr, &ks[c * hd], hd), lse[h * T + i]);
          const float ds = p * (Dot(dor, &vs[c * hd], hd) - delta[h * T + i]);
          Axpy(p, dor, &dv_acc[c * hd], hd);
          Axpy(ds, qr, &dk_acc[c * hd], hd);
        };
        if (step > 0) {  // the diagonal: key (step, n0 + c) is seen by query n0 + c only
          for (int64_t c = 0; c < n; ++c) {
            LoadRow(q, ((n0 + c) * nH + h) * hd, d.dtype, hd, qs.data());
            LoadRow(dout, ((n0 + c) * nH + h) * hd, d.dtype, hd, dos.data());
            accumulate(c, n0 + c, qs.data(), dos.data());
          }
          continue;
        }
        // Queries [n0, qhi of the last key]: qhi never decreases along the keys.
        for (int64_t i0 = n0; i0 <= qhi[n - 1]; i0 += kBlock) {
          const int64_t rows = std::min(kBlock, qhi[n - 1] + 1 - i0);
          for (int64_t r = 0; r < rows; ++r) {
            LoadRow(q, ((i0 + r) * nH + h) * hd, d.dtype, hd, &qs[r * hd]);
            LoadRow(dout, ((i0 + r) * nH + h) * hd, d.dtype, hd, &dos[r * hd]);
          }
          for (int64_t c = 0; c < n; ++c)
            for (int64_t r = 0; r < rows; ++r)
              if (i0 + r >= n0 + c && i0 + r <= qhi[c]) accumulate(c, i0 + r, &qs[r * hd], &dos[r * hd]);
        }
      }
      for (int64_t c = 0; c < n; ++c) {
        StoreRow(dk, ((jbase + c) * nKV + g) * hd, d.dtype, hd, &dk_acc[c * hd], scale);
        StoreRow(dv, ((jbase + c) * nKV + g) * hd, d.dtype, hd, &dv_acc[c * hd], 1.f);
      }
    }
  });
}

}  // namespace aerie
