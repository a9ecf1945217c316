// CPU twin of the embedding family (see embedding.h).
#include <cstring>
#include <stdexcept>
#include <string>

#include "embedding.h"
#include "thread_pool.h"

namespace aerie {
namespace {

int64_t IdAt(const void* ids, DType t, int64_t i) {
  return t == DType::I64 ? static_cast<const int64_t*>(ids)[i] : static_cast<const int32_t*>(ids)[i];
}

void CheckIds(const char* op, const void* ids, DType t, int64_t tokens, int64_t vocab) {
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t id = IdAt(ids, t, i);
    if (id < 0 || id >= vocab)
      throw std::out_of_range(std::string(op) + ": id " + std::to_string(id) + " at position " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  }
}

void CheckSizes(const char* op, DType id_type, int64_t tokens, int64_t vocab, int64_t hidden) {
  if (id_type != DType::I32 && id_type != DType::I64)
    throw std::invalid_argument(std::string(op) + ": ids must be int32 or int64, got " + DTypeName(id_type));
  if (tokens < 0 || vocab < 0 || hidden < 0) throw std::invalid_argument(std::string(op) + ": negative size");
}

}  // namespace

void CheckEmbeddingArgs(const EmbeddingArgs& a) {
  CheckSizes("embedding", a.id_type, a.tokens, a.vocab, a.hidden);
  if (!IsFloating(a.weight_type))
    throw std::invalid_argument(std::string("embedding: weight must be floating, got ") + DTypeName(a.weight_type));
}

void CheckEmbeddingBackwardArgs(const EmbeddingBackwardArgs& a) {
  CheckSizes("embeddingBackward", a.id_type, a.tokens, a.vocab, a.hidden);
  if (!IsFloating(a.dout_type))
    throw std::invalid_argument(std::string("embeddingBackward: dout must be floating, got ") + DTypeName(a.dout_type));
}

void EmbeddingCpu(const EmbeddingArgs& a) {
  CheckEmbeddingArgs(a);
  CheckIds("embedding", a.ids, a.id_type, a.tokens, a.vocab);
  const size_t row = static_cast<size_t>(a.hidden) * DTypeSize(a.weight_type);
  const char* w = static_cast<const char*>(a.weight);
  char* out = static_cast<char*>(a.out);
  ParallelFor(a.tokens, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) memcpy(out + t * row, w + IdAt(a.ids, a.id_type, t) * row, row);
  });
}

void EmbeddingBackwardCpu(const EmbeddingBackwardArgs& a) {
  CheckEmbeddingBackwardArgs(a);
  CheckIds("embeddingBackward", a.ids, a.id_type, a.tokens, a.vocab);
  // Threads own disjoint column ranges and add tokens in order: deterministic and race-free.
  ParallelFor(a.hidden, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < a.tokens; ++t) {
      float* dst = a.dweight + IdAt(a.ids, a.id_type, t) * a.hidden;
      const size_t src = static_cast<size_t>(t * a.hidden);
      for (int64_t h = begin; h < end; ++h) dst[h] += LoadF(a.dout, src + h, a.dout_type);
    }
  });
}

}  // namespace aerie
