// CPU twin of the paged_attention family (see paged_attention.h): fp32 online softmax per query row.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "paged_attention.h"
#include "thread_pool.h"

namespace aerie {
namespace {

void RequireFloating(const char* op, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(t));
}

void RequirePositive(const char* op, const char* name, int64_t v) {
  if (v <= 0) throw std::invalid_argument(std::string(op) + ": " + name + " must be positive, got " + std::to_string(v));
}

}  // namespace

void CheckCacheWriteArgs(const CacheWriteArgs& a) {
  const char* op = "cacheWrite";
  RequireFloating(op, a.dtype);
  if (a.tokens < 0) throw std::invalid_argument("cacheWrite: negative token count");
  RequirePositive(op, "num_blocks", a.num_blocks);
  RequirePositive(op, "block_size", a.block_size);
  RequirePositive(op, "kv_heads", a.kv_heads);
  RequirePositive(op, "head_dim", a.head_dim);
}

void CheckPagedAttentionArgs(const PagedAttentionArgs& a) {
  const char* op = "pagedAttention";
  RequireFloating(op, a.dtype);
  if (a.batch < 0) throw std::invalid_argument("pagedAttention: negative batch");
  RequirePositive(op, "queries", a.queries);
  RequirePositive(op, "heads", a.heads);
  RequirePositive(op, "kv_heads", a.kv_heads);
  RequirePositive(op, "head_dim", a.head_dim);
  RequirePositive(op, "num_blocks", a.num_blocks);
  RequirePositive(op, "block_size", a.block_size);
  RequirePositive(op, "max_blocks", a.max_blocks);
  RequirePositive(op, "num_splits", a.num_splits);
  if (a.heads % a.kv_heads != 0)
    throw std::invalid_argument("pagedAttention: heads " + std::to_string(a.heads) + " is not a multiple of kv_heads " +
                                std::to_string(a.kv_heads));
  if (a.window < 0) throw std::invalid_argument("pagedAttention: window must be >= 0 (0: none), got " + std::to_string(a.window));
  if (!std::isfinite(a.scale)) throw std::invalid_argument("pagedAttention: scale must be finite");
}

int64_t PagedAttentionWorkspaceElems(const PagedAttentionArgs& a) {
  if (a.num_splits <= 1) return 0;
  return a.batch * a.queries * a.heads * a.num_splits * (a.head_dim + 2);
}

void CacheWriteCpu(const CacheWriteArgs& a) {
  CheckCacheWriteArgs(a);
  const int64_t capacity = a.num_blocks * a.block_size;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t s = a.slot_mapping[t];
    if (s < -1 || s >= capacity)
      throw std::out_of_range("cacheWrite: slot " + std::to_string(s) + " at position " + std::to_string(t) +
                              " is outside the cache [0, " + std::to_string(capacity) + ") (-1 skips a token)");
  }
  // A slot holds kv_heads * head_dim contiguous elements: slot s starts at s * row.
  const size_t row = static_cast<size_t>(a.kv_heads * a.head_dim) * DTypeSize(a.dtype);
  ParallelFor(a.tokens, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t s = a.slot_mapping[t];
      if (s < 0) continue;
      memcpy(static_cast<char*>(a.k_cache) + s * row, static_cast<const char*>(a.k) + t * row, row);
      memcpy(static_cast<char*>(a.v_cache) + s * row, static_cast<const char*>(a.v) + t * row, row);
    }
  });
}

void PagedAttentionCpu(const PagedAttentionArgs& a) {
  CheckPagedAttentionArgs(a);
  const int64_t capacity = a.max_blocks * a.block_size;
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t len = a.seq_lens[b];
    if (len < 0 || len > capacity)
      throw std::out_of_range("pagedAttention: seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) + " is outside [0, " +
                              std::to_string(capacity) + "] (max_blocks * block_size)");
    for (int64_t i = 0; i < (len + a.block_size - 1) / a.block_size; ++i) {
      const int64_t blk = a.block_table[b * a.max_blocks + i];
      if (blk < 0 || blk >= a.num_blocks)
        throw std::out_of_range("pagedAttention: block_table[" + std::to_string(b) + ", " + std::to_string(i) + "] = " +
                                std::to_string(blk) + " is outside [0, " + std::to_string(a.num_blocks) + ")");
    }
  }
  const int64_t group = a.heads / a.kv_heads, hd = a.head_dim, rows = a.batch * a.queries * a.heads;
  ParallelFor(rows, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> q(hd), acc(hd);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t h = r % a.heads, t = (r / a.heads) % a.queries, b = r / (a.heads * a.queries);
      const int64_t kvh = h / group, len = a.seq_lens[b];
      const int64_t p = len - a.queries + t;  // this query's position
      const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
      for (int64_t d = 0; d < hd; ++d) q[d] = LoadF(a.q, r * hd + d, a.dtype);
      std::fill(acc.begin(), acc.end(), 0.0f);
      float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
      for (int64_t j = lo; j <= p; ++j) {
        const int64_t blk = a.block_table[b * a.max_blocks + j / a.block_size];
        const size_t base = static_cast<size_t>(((blk * a.block_size + j % a.block_size) * a.kv_heads + kvh) * hd);
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s += q[d] * LoadF(a.k_cache, base + d, a.dtype);
        s *= a.scale;
        const float m_new = std::max(m, s);
        const float c = std::exp(m - m_new), w = std::exp(s - m_new);  // c = 0 on the first key (m = -inf)
        l = l * c + w;
        for (int64_t d = 0; d < hd; ++d) acc[d] = acc[d] * c + w * LoadF(a.v_cache, base + d, a.dtype);
        m = m_new;
      }
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no keys: zeros
      for (int64_t d = 0; d < hd; ++d) StoreF(a.out, r * hd + d, a.dtype, acc[d] * inv);
    }
  });
}

}  // namespace aerie
