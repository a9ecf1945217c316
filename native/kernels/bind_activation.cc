// JavaScript glue of the activation family.
//   swiglu(gate, up|null, out, dtype, rows, inter[, pairs])
//     up null: gate is the fused (rows, 2*inter) tensor [gate | up], or with pairs true
//     [gate 0, up 0, gate 1, up 1, ...] (SwigluPairs*).
//   swigluBackward(dout, gate, up|null, dgate, dup|null, dtype, rows, inter)
//     up null: fused input as above; dup null: dgate is the fused (rows, 2*inter) gradient.
#include <string>

#include "activation.h"
#include "napi_util.h"

namespace aerie {
namespace {

void RequireFloat(const char* op, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(t));
}

// The byte offset of column `inter` of a fused (rows, 2*inter) tensor: where `up` starts.
const void* SecondHalf(const TensorArg& t, size_t inter, DType type) { return static_cast<const char*>(t.data) + inter * DTypeSize(type); }

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const char* op = "swiglu";
  TensorArg gate = ArgTensor(info, 0, "gate"), up = ArgOptionalTensor(info, 1, "up"), out = ArgTensor(info, 2, "out");
  DType t = ArgDType(info, 3, "dtype");
  size_t rows = ArgSize(info, 4, "rows"), inter = ArgSize(info, 5, "inter");
  RequireFloat(op, t);
  int device = RequireSameDevice(op, {{"gate", gate}, {"up", up}, {"out", out}});
  const bool fused = !up.data;
  const bool pairs = info.Length() > 6 && ArgBool(info, 6, "pairs");
  if (pairs && !fused) throw std::invalid_argument(std::string(op) + ": pairs takes one fused gateUp tensor (up must be null)");
  const size_t in_stride = fused ? 2 * inter : inter;
  RequireElems(op, fused ? "gateUp" : "gate", gate, rows * in_stride, t);
  if (!fused) RequireElems(op, "up", up, rows * inter, t);
  RequireElems(op, "out", out, rows * inter, t);
  if (pairs) {
    if (device < 0) SwigluPairsCpu(gate.data, in_stride, out.data, t, rows, inter);
    else AERIE_CUDA_CALL(op, device, SwigluPairsCuda(gate.data, in_stride, out.data, t, rows, inter, CurrentStream(device)));
    return info.Env().Undefined();
  }
  const void* up_ptr = fused ? SecondHalf(gate, inter, t) : up.data;
  if (device < 0) SwigluCpu(gate.data, up_ptr, in_stride, out.data, t, rows, inter);
  else AERIE_CUDA_CALL(op, device, SwigluCuda(gate.data, up_ptr, in_stride, out.data, t, rows, inter, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* op = "swigluBackward";
  TensorArg dout = ArgTensor(info, 0, "dout"), gate = ArgTensor(info, 1, "gate"), up = ArgOptionalTensor(info, 2, "up");
  TensorArg dgate = ArgTensor(info, 3, "dgate"), dup = ArgOptionalTensor(info, 4, "dup");
  DType t = ArgDType(info, 5, "dtype");
  size_t rows = ArgSize(info, 6, "rows"), inter = ArgSize(info, 7, "inter");
  RequireFloat(op, t);
  int device = RequireSameDevice(op, {{"dout", dout}, {"gate", gate}, {"up", up}, {"dgate", dgate}, {"dup", dup}});
  const bool fused_in = !up.data, fused_grad = !dup.data;
  const size_t in_stride = fused_in ? 2 * inter : inter, grad_stride = fused_grad ? 2 * inter : inter;
  RequireElems(op, "dout", dout, rows * inter, t);
  RequireElems(op, fused_in ? "gateUp" : "gate", gate, rows * in_stride, t);
  if (!fused_in) RequireElems(op, "up", up, rows * inter, t);
  RequireElems(op, fused_grad ? "dgateUp" : "dgate", dgate, rows * grad_stride, t);
  if (!fused_grad) RequireElems(op, "dup", dup, rows * inter, t);
  const void* up_ptr = fused_in ? SecondHalf(gate, inter, t) : up.data;
  void* dup_ptr = fused_grad ? const_cast<void*>(SecondHalf(dgate, inter, t)) : dup.data;
  if (device < 0) {
    SwigluBackwardCpu(dout.data, gate.data, up_ptr, in_stride, dgate.data, dup_ptr, grad_stride, t, rows, inter);
  } else {
    AERIE_CUDA_CALL(op, device,
                    SwigluBackwardCuda(dout.data, gate.data, up_ptr, in_stride, dgate.data, dup_ptr, grad_stride, t, rows, inter,
                                       CurrentStream(device)));
  }
  return info.Env().Undefined();
}

void RegisterActivation(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "swiglu", Swiglu);
  Export(env, exports, "swigluBackward", SwigluBackward);
}

}  // namespace

AERIE_REGISTER_BINDINGS(activation, RegisterActivation);

}  // namespace aerie
