// Split of a stacked q|k|v projection with the rotary embedding applied to q and k, in one pass.
//   qkv  (tokens, (heads + 2 kv_heads) * head_dim)   the product of the stacked [q; k; v] weight
//   q    (tokens, heads, head_dim)      = rotary(qkv[:, :heads*hd])
//   k    (tokens, kv_heads, head_dim)   = rotary(qkv[:, heads*hd : (heads+kv_heads)*hd])
//   v    (tokens, kv_heads, head_dim)   = qkv[:, (heads+kv_heads)*hd :]
// The rotation is exactly the rotary family's (rotary.h, rotary_math.h: NeoX rotate_half layout,
// correctly rounded fp32 cos/sin, one product and one fma per output), so the results equal a split
// followed by rotary() on q and k bit for bit, on both twins. Elements of a head at and past rot_dim
// pass through.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

struct QkvRotaryArgs {
  const void* qkv = nullptr;
  void* q = nullptr;
  void* k = nullptr;
  void* v = nullptr;
  const int32_t* positions = nullptr;  // (tokens,)
  const float* inv_freq = nullptr;     // (rot_dim / 2,)
  DType dtype = DType::F32;            // qkv, q, k, v: f32, bf16 or f16
  int64_t tokens = 0, heads = 0, kv_heads = 0, head_dim = 0, rot_dim = 0;
  float attention_scaling = 1.0f;
};

// Throws std::invalid_argument unless the sizes are consistent (shared by both twins).
void CheckQkvRotaryArgs(const QkvRotaryArgs& a);

void QkvRotaryCpu(const QkvRotaryArgs& args);
void QkvRotaryCuda(const QkvRotaryArgs& args, cudaStream_t stream);

}  // namespace aerie
