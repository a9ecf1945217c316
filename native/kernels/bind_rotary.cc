// JavaScript glue of the rotary family.
//   rotary(x, out, positions, invFreq, dtype, tokens, heads, headDim, rotDim, attentionScaling, inverse)
#include <string>

#include "napi_util.h"
#include "rotary.h"

namespace aerie {
namespace {

Napi::Value Rotary(const Napi::CallbackInfo& info) {
  const char* op = "rotary";
  TensorArg x = ArgTensor(info, 0, "x"), out = ArgTensor(info, 1, "out");
  TensorArg positions = ArgTensor(info, 2, "positions"), inv_freq = ArgTensor(info, 3, "invFreq");
  RotaryArgs a;
  a.dtype = ArgDType(info, 4, "dtype");
  a.tokens = ArgSize(info, 5, "tokens");
  a.heads = ArgSize(info, 6, "heads");
  a.head_dim = ArgSize(info, 7, "headDim");
  a.rot_dim = ArgSize(info, 8, "rotDim");
  a.attention_scaling = static_cast<float>(ArgDouble(info, 9, "attentionScaling"));
  a.inverse = ArgBool(info, 10, "inverse");
  CheckRotaryArgs(a);
  int device = RequireSameDevice(op, {{"x", x}, {"out", out}, {"positions", positions}, {"invFreq", inv_freq}});
  const size_t elems = static_cast<size_t>(a.tokens * a.heads * a.head_dim);
  RequireElems(op, "x", x, elems, a.dtype);
  RequireElems(op, "out", out, elems, a.dtype);
  RequireElems(op, "positions", positions, static_cast<size_t>(a.tokens), DType::I32);
  RequireElems(op, "invFreq", inv_freq, static_cast<size_t>(a.rot_dim / 2), DType::F32);
  a.x = x.data;
  a.out = out.data;
  a.positions = static_cast<const int32_t*>(positions.data);
  a.inv_freq = static_cast<const float*>(inv_freq.data);
  if (device < 0) RotaryCpu(a);
  else AERIE_CUDA_CALL("rotary", device, RotaryCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterRotary(Napi::Env env, Napi::Object exports) { Export(env, exports, "rotary", Rotary); }

}  // namespace

AERIE_REGISTER_BINDINGS(rotary, RegisterRotary);

}  // namespace aerie
