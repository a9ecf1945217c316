// SwiGLU, the gated MLP activation of Llama/Qwen: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// gate and up come as two (rows, inter) tensors or as one fused (rows, 2*inter) tensor (first half
// gate, second half up): the kernels take row strides, and the glue passes up = gate + inter with
// stride 2*inter for the fused layout. The gradients can likewise be written as two tensors or one
// fused (rows, 2*inter) tensor. All tensors share one float dtype; fp32 math.
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

void SwigluCpu(const void* gate,  // (rows, in_stride): columns [0, inter) used
               const void* up,    // (rows, in_stride): columns [0, inter) used
               int64_t in_stride,
               void* out,  // (rows, inter)
               DType type, int64_t rows, int64_t inter);
void SwigluCuda(const void* gate, const void* up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter,
                cudaStream_t stream);

// The same for gate and up interleaved by pairs: gate_up (rows, in_stride) holds gate c at column 2c
// and up c at 2c + 1 (columns [0, 2 inter) used), as a GEMM against weight rows stacked
// gate 0, up 0, gate 1, up 1, ... gives them. Forward only.
void SwigluPairsCpu(const void* gate_up,  // (rows, in_stride)
                    int64_t in_stride,
                    void* out,  // (rows, inter)
                    DType type, int64_t rows, int64_t inter);
void SwigluPairsCuda(const void* gate_up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter,
                     cudaStream_t stream);

// dgate = dout * up * silu'(gate), dup = dout * silu(gate), with silu'(g) = s * (1 + g * (1 - s)),
// s = sigmoid(g).
void SwigluBackwardCpu(const void* dout,  // (rows, inter)
                       const void* gate,  // (rows, in_stride)
                       const void* up,    // (rows, in_stride)
                       int64_t in_stride,
                       void* dgate,  // (rows, grad_stride)
                       void* dup,    // (rows, grad_stride)
                       int64_t grad_stride, DType type, int64_t rows, int64_t inter);
void SwigluBackwardCuda(const void* dout, const void* gate, const void* up, int64_t in_stride, void* dgate, void* dup,
                        int64_t grad_stride, DType type, int64_t rows, int64_t inter, cudaStream_t stream);

}  // namespace aerie
