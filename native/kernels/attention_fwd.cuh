// What attention_fwd.cu's dispatch shares with the Hopper forward kernel (attention_fwd_hopper.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "attention.h"

namespace aerie {
namespace attn {

struct FwdParams {
  const void* q;  // (T, nH, hd)
  const void* k;  // (Tk, nKV, hd)
  const void* v;  // (Tk, nKV, hd)
  const int32_t* cu_seqlens;  // (B+1)
  void* o;        // (T, nH, hd)
  float* lse;     // (nH, T)
  int tokens, keys, num_heads, num_kv_heads, group, head_dim, batch;
  AttentionMask mask;
  int window, steps;  // steps: TTT diagonals (0 unless mask == kTtt)
  float scale;
};

// Runs the wgmma forward (bf16, hd 128, CUDA's sm_90a machine code) when the current device is
// compute capability 9.0; false otherwise, with nothing launched.
bool LaunchFwdHopper(const FwdParams& p, cudaStream_t stream);

}  // namespace attn
}  // namespace aerie
