// JavaScript glue of the qkv_rotary family.
//   qkvRotary(qkv, q, k, v, positions, invFreq, dtype, tokens, heads, kvHeads, headDim, rotDim, attentionScaling)
//   qkvRotaryCache(qkv, q, kCache, vCache, positions, slotMapping, invFreq, qNorm|null, kNorm|null, dtype, wDType,
//                  tokens, heads, kvHeads, headDim, rotDim, numBlocks, blockSize, attentionScaling, eps)
#include <string>

#include "napi_util.h"
#include "qkv_rotary.h"

namespace aerie {
namespace {

Napi::Value QkvRotary(const Napi::CallbackInfo& info) {
  const char* op = "qkvRotary";
  TensorArg qkv = ArgTensor(info, 0, "qkv"), q = ArgTensor(info, 1, "q"), k = ArgTensor(info, 2, "k"), v = ArgTensor(info, 3, "v");
  TensorArg positions = ArgTensor(info, 4, "positions"), inv_freq = ArgTensor(info, 5, "invFreq");
  QkvRotaryArgs a;
  a.dtype = ArgDType(info, 6, "dtype");
  a.tokens = ArgSize(info, 7, "tokens");
  a.heads = ArgSize(info, 8, "heads");
  a.kv_heads = ArgSize(info, 9, "kvHeads");
  a.head_dim = ArgSize(info, 10, "headDim");
  a.rot_dim = ArgSize(info, 11, "rotDim");
  a.attention_scaling = static_cast<float>(ArgDouble(info, 12, "attentionScaling"));
  CheckQkvRotaryArgs(a);
  int device = RequireSameDevice(op, {{"qkv", qkv}, {"q", q}, {"k", k}, {"v", v}, {"positions", positions}, {"invFreq", inv_freq}});
  const size_t qe = static_cast<size_t>(a.tokens * a.heads * a.head_dim), ke = static_cast<size_t>(a.tokens * a.kv_heads * a.head_dim);
  RequireElems(op, "qkv", qkv, qe + 2 * ke, a.dtype);
  RequireElems(op, "q", q, qe, a.dtype);
  RequireElems(op, "k", k, ke, a.dtype);
  RequireElems(op, "v", v, ke, a.dtype);
  RequireElems(op, "positions", positions, static_cast<size_t>(a.tokens), DType::I32);
  RequireElems(op, "invFreq", inv_freq, static_cast<size_t>(a.rot_dim / 2), DType::F32);
  a.qkv = qkv.data;
  a.q = q.data;
  a.k = k.data;
  a.v = v.data;
  a.positions = static_cast<const int32_t*>(positions.data);
  a.inv_freq = static_cast<const float*>(inv_freq.data);
  if (device < 0) QkvRotaryCpu(a);
  else AERIE_CUDA_CALL("qkvRotary", device, QkvRotaryCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value QkvRotaryCache(const Napi::CallbackInfo& info) {
  const char* op = "qkvRotaryCache";
  TensorArg qkv = ArgTensor(info, 0, "qkv"), q = ArgTensor(info, 1, "q"), k_cache = ArgTensor(info, 2, "kCache"),
            v_cache = ArgTensor(info, 3, "vCache");
  TensorArg positions = ArgTensor(info, 4, "positions"), slots = ArgTensor(info, 5, "slotMapping"), inv_freq = ArgTensor(info, 6, "invFreq");
  TensorArg q_norm = ArgOptionalTensor(info, 7, "qNorm"), k_norm = ArgOptionalTensor(info, 8, "kNorm");
  QkvRotaryCacheArgs a;
  a.dtype = ArgDType(info, 9, "dtype");
  a.w_dtype = ArgDType(info, 10, "wDType");
  a.tokens = ArgSize(info, 11, "tokens");
  a.heads = ArgSize(info, 12, "heads");
  a.kv_heads = ArgSize(info, 13, "kvHeads");
  a.head_dim = ArgSize(info, 14, "headDim");
  a.rot_dim = ArgSize(info, 15, "rotDim");
  a.num_blocks = ArgSize(info, 16, "numBlocks");
  a.block_size = ArgSize(info, 17, "blockSize");
  a.attention_scaling = static_cast<float>(ArgDouble(info, 18, "attentionScaling"));
  a.eps = static_cast<float>(ArgDouble(info, 19, "eps"));
  a.q_norm = q_norm.data;
  a.k_norm = k_norm.data;
  CheckQkvRotaryCacheArgs(a);
  int device = RequireSameDevice(op, {{"qkv", qkv}, {"q", q}, {"kCache", k_cache}, {"vCache", v_cache}, {"positions", positions},
                                      {"slotMapping", slots}, {"invFreq", inv_freq}, {"qNorm", q_norm}, {"kNorm", k_norm}});
  const size_t qe = static_cast<size_t>(a.tokens * a.heads * a.head_dim), ke = static_cast<size_t>(a.tokens * a.kv_heads * a.head_dim);
  const size_t ce = static_cast<size_t>(a.num_blocks * a.block_size * a.kv_heads * a.head_dim);
  RequireElems(op, "qkv", qkv, qe + 2 * ke, a.dtype);
  RequireElems(op, "q", q, qe, a.dtype);
  RequireElems(op, "kCache", k_cache, ce, a.dtype);
  RequireElems(op, "vCache", v_cache, ce, a.dtype);
  RequireElems(op, "positions", positions, static_cast<size_t>(a.tokens), DType::I32);
  RequireElems(op, "slotMapping", slots, static_cast<size_t>(a.tokens), DType::I32);
  RequireElems(op, "invFreq", inv_freq, static_cast<size_t>(a.rot_dim / 2), DType::F32);
  if (q_norm.data) RequireElems(op, "qNorm", q_norm, static_cast<size_t>(a.head_dim), a.w_dtype);
  if (k_norm.data) RequireElems(op, "kNorm", k_norm, static_cast<size_t>(a.head_dim), a.w_dtype);
  a.qkv = qkv.data;
  a.q = q.data;
  a.k_cache = k_cache.data;
  a.v_cache = v_cache.data;
  a.positions = static_cast<const int32_t*>(positions.data);
  a.slot_mapping = static_cast<const int32_t*>(slots.data);
  a.inv_freq = static_cast<const float*>(inv_freq.data);
  if (device < 0) QkvRotaryCacheCpu(a);
  else AERIE_CUDA_CALL("qkvRotaryCache", device, QkvRotaryCacheCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterQkvRotary(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "qkvRotary", QkvRotary);
  Export(env, exports, "qkvRotaryCache", QkvRotaryCache);
}

}  // namespace

AERIE_REGISTER_BINDINGS(qkv_rotary, RegisterQkvRotary);

}  // namespace aerie
