// JavaScript glue of the norm family.
//   rmsnorm(x, residual|null, hOut|null, w, y, rstd, xDType, wDType, rows, cols, eps)
//   rmsnormBackward(dy, dhIn|null, h, w, rstd, dx, dw, xDType, wDType, rows, cols)
#include <string>

#include "napi_util.h"
#include "norm.h"

namespace aerie {
namespace {

void CheckNormTypes(const char* op, DType x_type, DType w_type) {
  if (!RmsNormTypesSupported(x_type, w_type))
    throw std::invalid_argument(std::string(op) + ": x " + DTypeName(x_type) + " with w " + DTypeName(w_type) +
                                " is not supported (x float32 with w float32, or x bfloat16 with w bfloat16 or float32)");
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "rmsnorm";
  TensorArg x = ArgTensor(info, 0, "x");
  TensorArg residual = ArgOptionalTensor(info, 1, "residual");
  TensorArg h_out = ArgOptionalTensor(info, 2, "hOut");
  TensorArg w = ArgTensor(info, 3, "w"), y = ArgTensor(info, 4, "y"), rstd = ArgTensor(info, 5, "rstd");
  DType xt = ArgDType(info, 6, "xDType"), wt = ArgDType(info, 7, "wDType");
  size_t rows = ArgSize(info, 8, "rows"), cols = ArgSize(info, 9, "cols");
  float eps = static_cast<float>(ArgDouble(info, 10, "eps"));
  CheckNormTypes(op, xt, wt);
  if (cols == 0) throw std::invalid_argument("rmsnorm: cols must be positive");
  if (!residual.data != !h_out.data) throw std::invalid_argument("rmsnorm: residual and hOut come together (the fused add) or not at all");
  int device = RequireSameDevice(op, {{"x", x}, {"residual", residual}, {"hOut", h_out}, {"w", w}, {"y", y}, {"rstd", rstd}});
  const size_t n = rows * cols;
  RequireElems(op, "x", x, n, xt);
  if (residual.data) {
    RequireElems(op, "residual", residual, n, xt);
    RequireElems(op, "hOut", h_out, n, xt);
  }
  RequireElems(op, "w", w, cols, wt);
  RequireElems(op, "y", y, n, xt);
  RequireElems(op, "rstd", rstd, rows, DType::F32);
  float* rs = static_cast<float*>(rstd.data);
  if (device < 0) RmsNormCpu(x.data, residual.data, h_out.data, w.data, y.data, rs, xt, wt, rows, cols, eps);
  else
    AERIE_CUDA_CALL(op, device, RmsNormCuda(x.data, residual.data, h_out.data, w.data, y.data, rs, xt, wt, rows, cols, eps, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "rmsnormBackward";
  TensorArg dy = ArgTensor(info, 0, "dy");
  TensorArg dh_in = ArgOptionalTensor(info, 1, "dhIn");
  TensorArg h = ArgTensor(info, 2, "h"), w = ArgTensor(info, 3, "w"), rstd = ArgTensor(info, 4, "rstd");
  TensorArg dx = ArgTensor(info, 5, "dx"), dw = ArgTensor(info, 6, "dw");
  DType xt = ArgDType(info, 7, "xDType"), wt = ArgDType(info, 8, "wDType");
  size_t rows = ArgSize(info, 9, "rows"), cols = ArgSize(info, 10, "cols");
  CheckNormTypes(op, xt, wt);
  if (cols == 0) throw std::invalid_argument("rmsnormBackward: cols must be positive");
  int device = RequireSameDevice(op, {{"dy", dy}, {"dhIn", dh_in}, {"h", h}, {"w", w}, {"rstd", rstd}, {"dx", dx}, {"dw", dw}});
  const size_t n = rows * cols;
  RequireElems(op, "dy", dy, n, xt);
  if (dh_in.data) RequireElems(op, "dhIn", dh_in, n, xt);
  RequireElems(op, "h", h, n, xt);
  RequireElems(op, "w", w, cols, wt);
  RequireElems(op, "rstd", rstd, rows, DType::F32);
  RequireElems(op, "dx", dx, n, xt);
  RequireElems(op, "dw", dw, cols, DType::F32);
  const float* rs = static_cast<const float*>(rstd.data);
  float* dwp = static_cast<float*>(dw.data);
  if (device < 0) RmsNormBackwardCpu(dy.data, dh_in.data, h.data, w.data, rs, dx.data, dwp, xt, wt, rows, cols);
  else
    AERIE_CUDA_CALL(op, device,
                    RmsNormBackwardCuda(dy.data, dh_in.data, h.data, w.data, rs, dx.data, dwp, xt, wt, rows, cols, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterNorm(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "rmsnorm", RmsNorm);
  Export(env, exports, "rmsnormBackward", RmsNormBackward);
}

}  // namespace

AERIE_REGISTER_BINDINGS(norm, RegisterNorm);

}  // namespace aerie
