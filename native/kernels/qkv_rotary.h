// Split of a stacked q|k|v projection with the rotary embedding applied to q and k, in one pass.
//   qkv  (tokens, (heads + 2 kv_heads) * head_dim)   the product of the stacked [q; k; v] weight
//   q    (tokens, heads, head_dim)      = rotary(qkv[:, :heads*hd])
//   k    (tokens, kv_heads, head_dim)   = rotary(qkv[:, heads*hd : (heads+kv_heads)*hd])
//   v    (tokens, kv_heads, head_dim)   = qkv[:, (heads+kv_heads)*hd :]
// The rotation is exactly the rotary family's (rotary.h, rotary_math.h: NeoX rotate_half layout,
// correctly rounded fp32 cos/sin, one product and one fma per output), so the results equal a split
// followed by rotary() on q and k bit for bit, on both twins. Elements of a head at and past rot_dim
// pass through.
//
// QkvRotaryCache: the same split and rotation for decode (and verification of a few drafted tokens)
// with the optional Qwen3 q/k norm before the rotation and the paged cache write after it, in one
// pass (one CUDA launch instead of rmsnorm x2, rotary x2 and cacheWrite):
//   q                      = rotary(rmsnorm(qkv q part, q_norm))                (tokens, heads, head_dim)
//   k_cache[slot_mapping[t]] = rotary(rmsnorm(qkv k part, k_norm))[t]           (kv_heads, head_dim)
//   v_cache[slot_mapping[t]] = qkv v part [t]
// Without a norm the rows go straight to the rotation. The norm is the norm family's (norm.h, rows =
// heads, cols = head_dim): y = h * rstd * w rounded to the storage dtype, then rotated from those
// rounded values. The CPU twin takes every step of norm_cpu.cc (fp64 sum of squares in column order,
// rstd = float(1 / sqrt(ss / cols + eps)), (h * rstd) * w in fp32), so it equals views -> rmsnorm ->
// rotary -> cacheWrite of the CPU ops bit for bit. The CUDA kernel takes norm.cu's steps (fp32 sum
// of squares, rstd = 1 / sqrtf(ss / cols + eps), the same products) but adds the squares in its own
// order (per lane, then a shuffle tree over the lanes of a head), so its rstd may differ from the
// rmsnorm kernel's, and from the CPU twin's fp64 one, in the last bits; normed values can then round
// one ulp apart. Without norms CUDA and CPU agree bit for bit, as for QkvRotary.
// Slots: slot -1 skips the token's cache write (padding; its q is still produced). Other slots
// outside [0, num_blocks * block_size): the CPU throws naming the token and the slot before writing
// anything, CUDA skips the write (it cannot report without a host sync), as CacheWrite does
// (paged_attention.h).
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

struct QkvRotaryCacheArgs {
  const void* qkv = nullptr;              // (tokens, (heads + 2 kv_heads) * head_dim)
  void* q = nullptr;                      // (tokens, heads, head_dim), must not overlap qkv or the caches
  void* k_cache = nullptr;                // (num_blocks, block_size, kv_heads, head_dim)
  void* v_cache = nullptr;                // (num_blocks, block_size, kv_heads, head_dim)
  const int32_t* positions = nullptr;     // (tokens,)
  const int32_t* slot_mapping = nullptr;  // (tokens,), -1 skips a token's cache write
  const float* inv_freq = nullptr;        // (rot_dim / 2,)
  const void* q_norm = nullptr;           // (head_dim,) of w_dtype, or nullptr: no q norm
  const void* k_norm = nullptr;           // (head_dim,) of w_dtype, or nullptr: no k norm
  DType dtype = DType::F32;               // qkv, q and the caches: f32, bf16 or f16 (f32 or bf16 with a norm)
  DType w_dtype = DType::F32;             // the norm weights: RmsNormTypesSupported(dtype, w_dtype)
  int64_t tokens = 0, heads = 0, kv_heads = 0, head_dim = 0, rot_dim = 0;
  int64_t num_blocks = 0, block_size = 0;
  float attention_scaling = 1.0f;
  float eps = 1e-6f;                      // the norms' epsilon
};

// Throws std::invalid_argument unless the sizes and types are consistent (shared by both twins).
void CheckQkvRotaryCacheArgs(const QkvRotaryCacheArgs& a);

void QkvRotaryCacheCpu(const QkvRotaryCacheArgs& args);
// Launched with programmatic dependent launch (pdl.h): it reads inv_freq and the norm weights before
// waiting for the previous kernel, everything else after.
void QkvRotaryCacheCuda(const QkvRotaryCacheArgs& args, cudaStream_t stream);

}  // namespace aerie
