// JavaScript glue of the loss family.
//   softmax(x, xDType, y, yDType, rows, cols, log)
//   softmaxBackward(y, yDType, dy, dx, gradDType, rows, cols, log)
//   fusedLinearCrossEntropy(h, w, hDType, targets, weights, lossSum, tokenLoss, dh|null, dhDType, dw|null,
//                           gradScale, tokens, vocab, hidden, chunkRows)
//   fusedLinearKl(h, w, hDType, ht, wt, htDType, weights, lossSum, tokenLoss, argmaxMatch|null, dh|null, dhDType,
//                 dw|null, gradScale, tokens, vocab, hidden, targetHidden, chunkRows)
#include <string>

#include "loss.h"
#include "napi_util.h"

namespace aerie {
namespace {

// Guard prefixes invalid_argument messages with the op name.
void RequireFloating(const char* name, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(name) + " must be float32, bfloat16 or float16, got " + DTypeName(t));
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  TensorArg x = ArgTensor(info, 0, "x"), y = ArgTensor(info, 2, "y");
  DType x_type = ArgDType(info, 1, "xDType"), y_type = ArgDType(info, 3, "yDType");
  size_t rows = ArgSize(info, 4, "rows"), cols = ArgSize(info, 5, "cols");
  bool log = ArgBool(info, 6, "log");
  const char* op = "softmax";
  RequireFloating("x", x_type);
  RequireFloating("y", y_type);
  int device = RequireSameDevice(op, {{"x", x}, {"y", y}});
  RequireElems(op, "x", x, rows * cols, x_type);
  RequireElems(op, "y", y, rows * cols, y_type);
  if (device < 0) SoftmaxForwardCpu(x.data, x_type, y.data, y_type, rows, cols, log);
  else AERIE_CUDA_CALL(op, device, SoftmaxForwardCuda(x.data, x_type, y.data, y_type, rows, cols, log, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  TensorArg y = ArgTensor(info, 0, "y"), dy = ArgTensor(info, 2, "dy"), dx = ArgTensor(info, 3, "dx");
  DType y_type = ArgDType(info, 1, "yDType"), grad_type = ArgDType(info, 4, "gradDType");
  size_t rows = ArgSize(info, 5, "rows"), cols = ArgSize(info, 6, "cols");
  bool log = ArgBool(info, 7, "log");
  const char* op = "softmaxBackward";
  RequireFloating("y", y_type);
  RequireFloating("dy", grad_type);
  int device = RequireSameDevice(op, {{"y", y}, {"dy", dy}, {"dx", dx}});
  RequireElems(op, "y", y, rows * cols, y_type);
  RequireElems(op, "dy", dy, rows * cols, grad_type);
  RequireElems(op, "dx", dx, rows * cols, grad_type);
  if (device < 0) SoftmaxBackwardCpu(y.data, y_type, dy.data, dx.data, grad_type, rows, cols, log);
  else
    AERIE_CUDA_CALL(op, device,
                    SoftmaxBackwardCuda(y.data, y_type, dy.data, dx.data, grad_type, rows, cols, log, CurrentStream(device)));
  return info.Env().Undefined();
}

// Reads the arguments both fused losses share; `kl` selects the layout above.
Napi::Value FusedLoss(const Napi::CallbackInfo& info, bool kl) {
  const char* op = kl ? "fusedLinearKl" : "fusedLinearCrossEntropy";
  size_t i = 0;
  TensorArg h = ArgTensor(info, i++, "h"), w = ArgTensor(info, i++, "w");
  FusedLossArgs a;
  a.h_type = ArgDType(info, i++, "hDType");
  TensorArg targets, ht, wt;
  if (kl) {
    ht = ArgTensor(info, i++, "ht");
    wt = ArgTensor(info, i++, "wt");
    a.ht_type = ArgDType(info, i++, "htDType");
  } else {
    targets = ArgTensor(info, i++, "targets");
  }
  TensorArg weights = ArgTensor(info, i++, "weights");
  TensorArg loss_sum = ArgTensor(info, i++, "lossSum"), token_loss = ArgTensor(info, i++, "tokenLoss");
  TensorArg argmax_match = kl ? ArgOptionalTensor(info, i++, "argmaxMatch") : TensorArg{};
  TensorArg dh = ArgOptionalTensor(info, i++, "dh");
  a.dh_type = ArgDType(info, i++, "dhDType");
  TensorArg dw = ArgOptionalTensor(info, i++, "dw");
  a.grad_scale = static_cast<float>(ArgDouble(info, i++, "gradScale"));
  a.tokens = ArgSize(info, i++, "tokens");
  a.vocab = ArgSize(info, i++, "vocab");
  a.hidden = ArgSize(info, i++, "hidden");
  if (kl) a.target_hidden = ArgSize(info, i++, "targetHidden");
  a.chunk_rows = ArgSize(info, i++, "chunkRows");

  RequireFloating("h", a.h_type);
  if (kl) RequireFloating("ht", a.ht_type);
  if (dh.data) RequireFloating("dh", a.dh_type);
  int device = RequireSameDevice(op, {{"h", h}, {"w", w}, {"targets", targets}, {"ht", ht}, {"wt", wt}, {"weights", weights},
                                      {"lossSum", loss_sum}, {"tokenLoss", token_loss}, {"argmaxMatch", argmax_match},
                                      {"dh", dh}, {"dw", dw}});
  size_t T = a.tokens, V = a.vocab, H = a.hidden, Ht = a.target_hidden;
  RequireElems(op, "h", h, T * H, a.h_type);
  RequireElems(op, "w", w, V * H, a.h_type);
  if (kl) {
    RequireElems(op, "ht", ht, T * Ht, a.ht_type);
    RequireElems(op, "wt", wt, V * Ht, a.ht_type);
  } else {
    RequireElems(op, "targets", targets, T, DType::I32);
  }
  RequireElems(op, "weights", weights, T, DType::F32);
  RequireElems(op, "lossSum", loss_sum, 1, DType::F32);
  RequireElems(op, "tokenLoss", token_loss, T, DType::F32);
  if (argmax_match.data) RequireElems(op, "argmaxMatch", argmax_match, T, DType::U8);
  if (dh.data) RequireElems(op, "dh", dh, T * H, a.dh_type);
  if (dw.data) RequireElems(op, "dw", dw, V * H, DType::F32);

  a.h = h.data;
  a.w = w.data;
  a.targets = static_cast<const int32_t*>(targets.data);
  a.ht = ht.data;
  a.wt = wt.data;
  a.weights = static_cast<const float*>(weights.data);
  a.loss_sum = static_cast<float*>(loss_sum.data);
  a.token_loss = static_cast<float*>(token_loss.data);
  a.argmax_match = static_cast<uint8_t*>(argmax_match.data);
  a.dh = dh.data;
  a.dw = static_cast<float*>(dw.data);
  if (device < 0) {
    if (kl) FusedLinearKlCpu(a);
    else FusedLinearCrossEntropyCpu(a);
  } else if (kl) {
    AERIE_CUDA_CALL(op, device, FusedLinearKlCuda(a, device, CurrentStream(device)));
  } else {
    AERIE_CUDA_CALL(op, device, FusedLinearCrossEntropyCuda(a, device, CurrentStream(device)));
  }
  return info.Env().Undefined();
}

void RegisterLoss(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "softmax", Softmax);
  Export(env, exports, "softmaxBackward", SoftmaxBackward);
  Export(env, exports, "fusedLinearCrossEntropy", [](const Napi::CallbackInfo& info) { return FusedLoss(info, false); });
  Export(env, exports, "fusedLinearKl", [](const Napi::CallbackInfo& info) { return FusedLoss(info, true); });
}

}  // namespace

AERIE_REGISTER_BINDINGS(loss, RegisterLoss);

}  // namespace aerie
