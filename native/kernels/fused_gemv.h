// Few-rows linear layer with its neighbours fused in, for decode: out = f(x) @ W^T, where
//   y   = rmsnorm(x, norm_w, eps) (optional prologue; else y = x), rounded to x's dtype as rmsnorm does;
//   acc = y @ W^T + bias in fp32; a = acc rounded to out_type (no rounding for an f32 output);
//   swiglu (optional): W holds 2I rows, gate rows [0, I) then up rows [I, 2I) (swiglu_pairs: gate i
//     at row 2i, up i at 2i + 1); o = silu(a_gate) * a_up
//     (activation_math.h), rounded to out_type; output width I; else o = a, output width N_w;
//   residual (optional, out_type): out = round(residual + o), else out = o.
// Every rounding point is one of the unfused ops' (rmsnorm -> linear -> swigluFused -> add), so the
// fused result equals their composition bit for bit: by construction on the CPU, and on CUDA by
// reproducing the summation orders of RmsNormCuda and of MatmulGemvCuda's GEMV kernel.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// Optional epilogue for decode's stacked q|k|v projection, in place of writing `out`: the q and k
// heads rotated and q written to `q`, k and v written to the paged caches -- exactly what
// QkvRotaryCache without q/k norms (qkv_rotary.h) makes of the rounded product, so the pair equals
// fusedGemv -> qkvRotaryCache bit for bit. Full rotary only (rotary dim = head_dim).
struct FusedGemvRotary {
  void* q = nullptr;                      // (m, heads, head_dim), x's dtype
  void* k_cache = nullptr;                // (capacity, kv_heads, head_dim), x's dtype
  void* v_cache = nullptr;                // (capacity, kv_heads, head_dim), x's dtype
  const int32_t* positions = nullptr;     // (m,)
  const int32_t* slot_mapping = nullptr;  // (m,); -1 skips a token's k and v (CPU: other bad slots throw; CUDA skips them)
  const float* inv_freq = nullptr;        // (head_dim / 2,)
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t num_blocks = 0, block_size = 0;  // capacity = num_blocks * block_size slots
  float attention_scaling = 1.f;
};

struct FusedGemvArgs {
  const void* x = nullptr;         // (m, k)
  const void* w = nullptr;         // (n_w, k), x's dtype
  void* out = nullptr;             // (m, n_out): n_out = n_w / 2 with swiglu, else n_w
  const void* bias = nullptr;      // (n_w,) or nullptr
  const void* norm_w = nullptr;    // (k,) or nullptr: no norm prologue
  const void* residual = nullptr;  // (m, n_out) or nullptr; may be `out` itself (in place)
  DType x_type = DType::F32;       // x and w: f32, bf16 or f16
  DType out_type = DType::F32;     // out and residual: any float dtype
  DType bias_type = DType::F32;    // any float dtype
  DType norm_w_type = DType::F32;  // as rmsnorm: x_type or f32 (x f32 or bf16 only)
  int64_t m = 0, n_w = 0, k = 0;
  float eps = 0.f;
  bool swiglu = false;
  // With swiglu: gate row i and up row i at rows 2i and 2i + 1 (else at i and I + i); bias likewise.
  bool swiglu_pairs = false;
  // CUDA hint, no effect on the result: before its PDL wait each warp also asks L2 for the rest of
  // its weight rows (past the part it loads into registers), so a projection launched behind kernels
  // that leave memory idle -- decode's o projection behind attention -- streams during them.
  bool prefetch_l2 = false;
  // With a rotary epilogue: n_w = (heads + 2 kv_heads) * head_dim rows, out_type = x_type, and
  // out, residual and swiglu unused.
  const FusedGemvRotary* rotary = nullptr;
};

// Checks what both backends need (dtypes, swiglu's even n_w, norm dtypes); throws
// std::invalid_argument naming the problem.
void FusedGemvValidate(const FusedGemvArgs& args);

// Plain C++ twin (fused_gemv_cpu.cc): RmsNormCpu, then MatmulCpu (threaded, fp32 accumulation), then
// the epilogue; any m and float dtype.
void FusedGemvCpu(const FusedGemvArgs& args);

// One kernel on `stream` (fused_gemv.cu), launched with programmatic dependent launch (pdl.h): for
// bf16/f16 x and W, 1 <= m <= kFusedGemvMaxRows, k % 8 == 0, x, W (and norm_w) 16-byte aligned, and
// m * k * 2 bytes of normalised rows fitting in shared memory. Returns false without doing anything
// otherwise (the caller then composes the unfused ops). AERIE_NO_FUSED_GEMV=1 always returns false.
// No allocation, no host sync: capturable in a CUDA graph.
constexpr int64_t kFusedGemvMaxRows = 8;
constexpr int kFusedRotaryMaxRows = 4;  // the rotary epilogue: up to 4 tokens (else false)
bool FusedGemvCuda(const FusedGemvArgs& args, cudaStream_t stream);

}  // namespace aerie
