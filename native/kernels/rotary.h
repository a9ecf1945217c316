// Rotary position embedding, the Hugging Face Llama/Qwen "rotate_half" (NeoX) layout: within each
// head, element j (j < rot_dim/2) pairs with element j + rot_dim/2. For token t with position p and
// pair j the angle is a = float(p) * inv_freq[j], computed in fp32 as transformers does, and
//   out[j]             = s * (x[j] * cos a - x[j + rot/2] * sin a)
//   out[j + rot/2]     = s * (x[j + rot/2] * cos a + x[j] * sin a)
// with s = attention_scaling (1 except YaRN/LongRoPE). Elements at and past rot_dim (partial rotary)
// pass through unchanged. `inverse` rotates by -a instead: that is the backward pass (the rotation
// is orthogonal, so dx = s * R(-a) dout). `out` may alias `x` (in place).
// Both twins take every step from rotary_math.h: cos a and sin a correctly rounded to fp32 (for every
// finite angle), each output one rounded product plus one fma in fp32, then one rounding to the
// storage dtype, so CUDA and CPU agree bit for bit (NaN payloads aside).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

struct RotaryArgs {
  const void* x = nullptr;          // (tokens, heads, head_dim)
  void* out = nullptr;              // (tokens, heads, head_dim), may alias x
  const int32_t* positions = nullptr;  // (tokens,)
  const float* inv_freq = nullptr;  // (rot_dim / 2,)
  DType dtype = DType::F32;         // x and out: f32, bf16 or f16
  int64_t tokens = 0, heads = 0, head_dim = 0;
  int64_t rot_dim = 0;              // even, <= head_dim; usually head_dim
  float attention_scaling = 1.0f;
  bool inverse = false;             // rotate by -angle (the backward pass)
};

// Throws std::invalid_argument unless the sizes are consistent (shared by both twins).
void CheckRotaryArgs(const RotaryArgs& a);

void RotaryCpu(const RotaryArgs& args);
void RotaryCuda(const RotaryArgs& args, cudaStream_t stream);

}  // namespace aerie
