// JavaScript glue of the optimizer family.
//   adamwStep(param, grad, gradDType, expAvg, expAvgSq, modelCopy|null, copyDType, clipCoef|null, n,
//             lr, beta1, beta2, eps, weightDecay, step)
//   sumSquaresAccumulate(x, xDType, n, acc)
//   gradNormFinish(sumSquares, norm)
//   clipCoefficient(norm, coef, maxNorm)
#include <cmath>
#include <string>

#include "napi_util.h"
#include "optimizer.h"

namespace aerie {
namespace {

Napi::Value AdamWStep(const Napi::CallbackInfo& info) {
  const char* op = "adamwStep";
  TensorArg param = ArgTensor(info, 0, "param"), grad = ArgTensor(info, 1, "grad");
  TensorArg exp_avg = ArgTensor(info, 3, "expAvg"), exp_avg_sq = ArgTensor(info, 4, "expAvgSq");
  TensorArg copy = ArgOptionalTensor(info, 5, "modelCopy"), clip = ArgOptionalTensor(info, 7, "clipCoef");
  AdamWArgs a;
  a.grad_type = ArgDType(info, 2, "gradDType");
  a.copy_type = ArgDType(info, 6, "copyDType");
  a.n = ArgSize(info, 8, "n");
  a.lr = ArgDouble(info, 9, "lr");
  a.beta1 = ArgDouble(info, 10, "beta1");
  a.beta2 = ArgDouble(info, 11, "beta2");
  a.eps = ArgDouble(info, 12, "eps");
  a.weight_decay = ArgDouble(info, 13, "weightDecay");
  a.step = ArgInt(info, 14, "step");
  int device = RequireSameDevice(op, {{"param", param}, {"grad", grad}, {"expAvg", exp_avg}, {"expAvgSq", exp_avg_sq},
                                      {"modelCopy", copy}, {"clipCoef", clip}});
  if (!IsFloating(a.grad_type)) throw std::invalid_argument(std::string("grad must be floating, got ") + DTypeName(a.grad_type));
  if (copy.data && !IsFloating(a.copy_type))
    throw std::invalid_argument(std::string("modelCopy must be floating, got ") + DTypeName(a.copy_type));
  const size_t n = a.n;
  RequireElems(op, "param", param, n, DType::F32);
  RequireElems(op, "grad", grad, n, a.grad_type);
  RequireElems(op, "expAvg", exp_avg, n, DType::F32);
  RequireElems(op, "expAvgSq", exp_avg_sq, n, DType::F32);
  if (copy.data) RequireElems(op, "modelCopy", copy, n, a.copy_type);
  if (clip.data) RequireElems(op, "clipCoef", clip, 1, DType::F32);
  a.param = static_cast<float*>(param.data);
  a.grad = grad.data;
  a.exp_avg = static_cast<float*>(exp_avg.data);
  a.exp_avg_sq = static_cast<float*>(exp_avg_sq.data);
  a.model_copy = copy.data;
  a.clip_coef = static_cast<const float*>(clip.data);
  if (device < 0) AdamWStepCpu(a);
  else AERIE_CUDA_CALL(op, device, AdamWStepCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value SumSquaresAccumulate(const Napi::CallbackInfo& info) {
  const char* op = "sumSquaresAccumulate";
  TensorArg x = ArgTensor(info, 0, "x"), acc = ArgTensor(info, 3, "acc");
  DType x_type = ArgDType(info, 1, "xDType");
  size_t n = ArgSize(info, 2, "n");
  if (!IsFloating(x_type)) throw std::invalid_argument(std::string("x must be floating, got ") + DTypeName(x_type));
  int device = RequireSameDevice(op, {{"x", x}, {"acc", acc}});
  RequireElems(op, "x", x, n, x_type);
  RequireElems(op, "acc", acc, 1, DType::F32);
  float* out = static_cast<float*>(acc.data);
  if (device < 0) SumSquaresAccumulateCpu(x.data, x_type, n, out);
  else AERIE_CUDA_CALL(op, device, SumSquaresAccumulateCuda(x.data, x_type, n, out, device, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value GradNormFinish(const Napi::CallbackInfo& info) {
  const char* op = "gradNormFinish";
  TensorArg sum_squares = ArgTensor(info, 0, "sumSquares"), norm = ArgTensor(info, 1, "norm");
  int device = RequireSameDevice(op, {{"sumSquares", sum_squares}, {"norm", norm}});
  RequireElems(op, "sumSquares", sum_squares, 1, DType::F32);
  RequireElems(op, "norm", norm, 1, DType::F32);
  const float* in = static_cast<const float*>(sum_squares.data);
  float* out = static_cast<float*>(norm.data);
  if (device < 0) GradNormFinishCpu(in, out);
  else AERIE_CUDA_CALL(op, device, GradNormFinishCuda(in, out, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value ClipCoefficient(const Napi::CallbackInfo& info) {
  const char* op = "clipCoefficient";
  TensorArg norm = ArgTensor(info, 0, "norm"), coef = ArgTensor(info, 1, "coef");
  double max_norm = ArgDouble(info, 2, "maxNorm");
  if (!(max_norm > 0) || !std::isfinite(max_norm))
    throw std::invalid_argument("maxNorm must be finite and > 0, got " + std::to_string(max_norm));
  int device = RequireSameDevice(op, {{"norm", norm}, {"coef", coef}});
  RequireElems(op, "norm", norm, 1, DType::F32);
  RequireElems(op, "coef", coef, 1, DType::F32);
  const float* in = static_cast<const float*>(norm.data);
  float* out = static_cast<float*>(coef.data);
  if (device < 0) ClipCoefficientCpu(in, static_cast<float>(max_norm), out);
  else AERIE_CUDA_CALL(op, device, ClipCoefficientCuda(in, static_cast<float>(max_norm), out, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterOptimizer(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "adamwStep", AdamWStep);
  Export(env, exports, "sumSquaresAccumulate", SumSquaresAccumulate);
  Export(env, exports, "gradNormFinish", GradNormFinish);
  Export(env, exports, "clipCoefficient", ClipCoefficient);
}

}  // namespace

AERIE_REGISTER_BINDINGS(optimizer, RegisterOptimizer);

}  // namespace aerie
