// The fused losses' GEMM descriptions (loss_gemms.h).
#include "loss_gemms.h"

namespace aerie {

MatmulArgs LossProjectGemm(const void* x, const void* w, DType type, float* out, int64_t rows, int64_t vocab, int64_t hidden) {
  MatmulArgs p;
  p.a = x;
  p.b = w;
  p.c = out;
  p.ab_type = type;
  p.c_type = DType::F32;
  p.m = rows;
  p.n = vocab;
  p.k = hidden;
  p.trans_b = true;
  p.stride_a = rows * hidden;
  p.stride_b = vocab * hidden;
  p.stride_c = rows * vocab;
  return p;
}

LossBackwardGemms LossBackwardGemmArgs(const FusedLossArgs& a, const void* dz, int64_t row0, int64_t rows) {
  LossBackwardGemms g;
  MatmulArgs& dh = g.dh;
  dh.a = dz;
  dh.b = a.w;
  dh.c = static_cast<char*>(a.dh) + static_cast<size_t>(row0) * a.hidden * DTypeSize(a.dh_type);
  dh.ab_type = a.h_type;
  dh.c_type = a.dh_type;
  dh.m = rows;
  dh.n = a.hidden;
  dh.k = a.vocab;
  dh.stride_a = rows * a.vocab;
  dh.stride_b = a.vocab * a.hidden;
  dh.stride_c = rows * a.hidden;
  MatmulArgs& dw = g.dw;
  dw.a = dz;
  dw.b = static_cast<const char*>(a.h) + static_cast<size_t>(row0) * a.hidden * DTypeSize(a.h_type);
  dw.c = a.dw;
  dw.ab_type = a.h_type;
  dw.c_type = DType::F32;
  dw.m = a.vocab;
  dw.n = a.hidden;
  dw.k = rows;
  dw.trans_a = true;
  dw.beta = 1.0f;
  dw.stride_a = rows * a.vocab;
  dw.stride_b = rows * a.hidden;
  dw.stride_c = a.vocab * a.hidden;
  return g;
}

}  // namespace aerie
