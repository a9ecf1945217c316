// CPU twin of the fused_gemv family (fused_gemv.h). It runs the unfused CPU kernels themselves --
// RmsNormCpu into a scratch copy of x, MatmulCpu (threaded, fp32 accumulation) into an fp32 scratch
// of acc + bias, then the rounding / swiglu / residual epilogue with activation_math.h -- so its
// result is, by construction, the bits of rmsnorm -> linear -> swigluFused -> add on the CPU. The
// rotary epilogue runs QkvRotaryCacheCpu on that product.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "activation_math.h"
#include "fused_gemv.h"
#include "matmul.h"
#include "norm.h"
#include "qkv_rotary.h"
#include "thread_pool.h"

namespace aerie {
namespace {

// v rounded to t and widened back: what a store to t followed by a load gives.
float RoundTo(float v, DType t) {
  switch (t) {
    case DType::BF16: return Bf16ToFloat(FloatToBf16(v));
    case DType::F16: return F16ToFloat(FloatToF16(v));
    default: return v;
  }
}

}  // namespace

void FusedGemvValidate(const FusedGemvArgs& p) {
  const std::string op = "fusedGemv";
  if (p.m < 0 || p.n_w < 0 || p.k < 0) throw std::invalid_argument(op + ": sizes must be non-negative");
  if (!IsFloating(p.x_type) || !IsFloating(p.out_type) || (p.bias && !IsFloating(p.bias_type)))
    throw std::invalid_argument(op + ": x/w, out and bias must have floating dtypes");
  if (p.swiglu_pairs && !p.swiglu) throw std::invalid_argument(op + ": swiglu_pairs is a layout of swiglu's rows; set swiglu too");
  if (p.swiglu && p.n_w % 2 != 0)
    throw std::invalid_argument(op + ": swiglu needs an even number of weight rows (gate | up), got " + std::to_string(p.n_w));
  if (const FusedGemvRotary* r = p.rotary) {
    if (p.swiglu || p.swiglu_pairs || p.residual) throw std::invalid_argument(op + ": the rotary epilogue takes no swiglu and no residual");
    if (p.out_type != p.x_type) throw std::invalid_argument(op + ": the rotary epilogue writes x's dtype");
    if (r->heads <= 0 || r->kv_heads <= 0 || r->head_dim <= 0 || r->head_dim % 2 != 0)
      throw std::invalid_argument(op + ": the rotary epilogue needs heads, kv_heads > 0 and an even head_dim > 0");
    if (p.n_w != (r->heads + 2 * r->kv_heads) * r->head_dim)
      throw std::invalid_argument(op + ": the rotary epilogue needs n_w = (heads + 2 kv_heads) * head_dim = " +
                                  std::to_string((r->heads + 2 * r->kv_heads) * r->head_dim) + ", got " + std::to_string(p.n_w));
    if (!r->q || !r->k_cache || !r->v_cache || !r->positions || !r->slot_mapping || !r->inv_freq)
      throw std::invalid_argument(op + ": the rotary epilogue needs q, both caches, positions, slot_mapping and inv_freq");
  }
  if (p.norm_w) {
    if (!RmsNormTypesSupported(p.x_type, p.norm_w_type))
      throw std::invalid_argument(op + ": the norm prologue takes x " + DTypeName(p.x_type) + " with norm weight " +
                                  DTypeName(p.norm_w_type) +
                                  " (as rmsnorm: x float32 with float32, or x bfloat16 with bfloat16 or float32)");
    if (p.k == 0) throw std::invalid_argument(op + ": the norm prologue needs k > 0");
    if (!(std::isfinite(p.eps) && p.eps >= 0.f)) throw std::invalid_argument(op + ": eps must be finite and >= 0");
  }
}

void FusedGemvCpu(const FusedGemvArgs& p) {
  FusedGemvValidate(p);
  if (const FusedGemvRotary* r = p.rotary) {  // the product into a scratch qkv, then QkvRotaryCacheCpu
    std::vector<float> qkv(static_cast<size_t>((p.m * p.n_w * static_cast<int64_t>(DTypeSize(p.x_type)) + 3) / 4));
    FusedGemvArgs plain = p;
    plain.rotary = nullptr;
    plain.out = qkv.data();
    FusedGemvCpu(plain);
    QkvRotaryCacheArgs a;
    a.qkv = qkv.data();
    a.q = r->q;
    a.k_cache = r->k_cache;
    a.v_cache = r->v_cache;
    a.positions = r->positions;
    a.slot_mapping = r->slot_mapping;
    a.inv_freq = r->inv_freq;
    a.dtype = p.x_type;
    a.w_dtype = p.x_type;
    a.tokens = p.m;
    a.heads = r->heads;
    a.kv_heads = r->kv_heads;
    a.head_dim = r->head_dim;
    a.rot_dim = r->head_dim;
    a.num_blocks = r->num_blocks;
    a.block_size = r->block_size;
    a.attention_scaling = r->attention_scaling;
    QkvRotaryCacheCpu(a);
    return;
  }
  const int64_t n_out = p.swiglu ? p.n_w / 2 : p.n_w;
  if (p.m == 0 || n_out == 0) return;

  const void* y = p.x;
  std::vector<float> y_buf;  // float storage: aligned for any x dtype
  if (p.norm_w) {
    y_buf.resize(static_cast<size_t>((p.m * p.k * static_cast<int64_t>(DTypeSize(p.x_type)) + 3) / 4));
    std::vector<float> rstd(static_cast<size_t>(p.m));
    RmsNormCpu(p.x, nullptr, nullptr, p.norm_w, y_buf.data(), rstd.data(), p.x_type, p.norm_w_type, p.m, p.k, p.eps);
    y = y_buf.data();
  }

  MatmulArgs mm;  // exactly linear(y, w, bias): one GEMM, W stored [N, K]
  mm.a = y;
  mm.b = p.w;
  mm.bias = p.bias;
  mm.ab_type = p.x_type;
  mm.bias_type = p.bias_type;
  mm.m = p.m;
  mm.n = p.n_w;
  mm.k = p.k;
  mm.trans_b = true;
  if (!p.swiglu && !p.residual) {
    mm.c = p.out;
    mm.c_type = p.out_type;
    MatmulCpu(mm);
    return;
  }
  // acc + bias in fp32; rounding it to out_type gives what linear would have stored.
  std::vector<float> acc(static_cast<size_t>(p.m * p.n_w));
  mm.c = acc.data();
  mm.c_type = DType::F32;
  MatmulCpu(mm);

  const int64_t total = p.m * n_out;
  ParallelFor(total, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t r = i / n_out, c = i - r * n_out;
      const float* row = acc.data() + r * p.n_w;
      float o = row[c];
      if (p.swiglu) {
        const float gate = p.swiglu_pairs ? row[2 * c] : row[c], up = p.swiglu_pairs ? row[2 * c + 1] : row[n_out + c];
        o = act::Swiglu(RoundTo(gate, p.out_type), RoundTo(up, p.out_type));
      }
      // add(residual, o): both operands as stored, one rounding.
      if (p.residual) o = LoadF(p.residual, static_cast<size_t>(i), p.out_type) + RoundTo(o, p.out_type);
      StoreF(p.out, static_cast<size_t>(i), p.out_type, o);
    }
  });
}

}  // namespace aerie
