// JavaScript glue of the qkv_rotary family.
//   qkvRotary(qkv, q, k, v, positions, invFreq, dtype, tokens, heads, kvHeads, headDim, rotDim, attentionScaling)
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

void RegisterQkvRotary(Napi::Env env, Napi::Object exports) { Export(env, exports, "qkvRotary", QkvRotary); }

}  // namespace

AERIE_REGISTER_BINDINGS(qkv_rotary, RegisterQkvRotary);

}  // namespace aerie
