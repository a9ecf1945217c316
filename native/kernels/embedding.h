// Token embedding lookup and its gradient.
//   forward:  out[t, :] = weight[ids[t], :]
//   backward: dweight[ids[t], :] += dout[t, :]   (dweight float32, accumulated into)
// ids are int32 or int64. An id outside [0, vocab) is an error on the CPU (naming the id and its
// position); the CUDA kernels cannot report without a host sync, so the forward writes a zero row
// and the backward skips the token. The CUDA backward accumulates with fp32 atomicAdd, so the
// order of additions (and the last bits of repeated-id rows) varies from run to run; the CPU
// backward adds tokens in order and is deterministic.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

struct EmbeddingArgs {
  const void* weight = nullptr;  // (vocab, hidden)
  const void* ids = nullptr;     // (tokens,)
  void* out = nullptr;           // (tokens, hidden), the weight's dtype
  DType weight_type = DType::F32;  // any float dtype (rows are copied bit for bit)
  DType id_type = DType::I32;      // i32 or i64
  int64_t tokens = 0, vocab = 0, hidden = 0;
};

struct EmbeddingBackwardArgs {
  const void* dout = nullptr;    // (tokens, hidden)
  const void* ids = nullptr;     // (tokens,)
  float* dweight = nullptr;      // (vocab, hidden), accumulated into
  DType dout_type = DType::F32;  // f32, bf16 or f16
  DType id_type = DType::I32;
  int64_t tokens = 0, vocab = 0, hidden = 0;
};

void CheckEmbeddingArgs(const EmbeddingArgs& a);
void CheckEmbeddingBackwardArgs(const EmbeddingBackwardArgs& a);

void EmbeddingCpu(const EmbeddingArgs& args);
void EmbeddingCuda(const EmbeddingArgs& args, cudaStream_t stream);
void EmbeddingBackwardCpu(const EmbeddingBackwardArgs& args);
void EmbeddingBackwardCuda(const EmbeddingBackwardArgs& args, cudaStream_t stream);

}  // namespace aerie
