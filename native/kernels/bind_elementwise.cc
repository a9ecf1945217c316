// JavaScript glue of the elementwise family.
//   cast(x, xDType, y, yDType, n)             fill(y, dtype, n, value)
//   add(a, b, out, dtype, n, nb)              mul(a, b, out, dtype, n, nb)
//   scale(x, out, dtype, n, alpha)            axpy(y, yDType, x, xDType, n, alpha)
//   reduceSum(x, dtype, n, out)               reduceMax(x, dtype, n, out)
//   rowSum(x, dtype, rows, cols, out)         rowMax(x, dtype, rows, cols, out)
#include <string>

#include "elementwise.h"
#include "napi_util.h"

namespace aerie {
namespace {

void RequireFloatArg(const char* op, const char* name, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": " + name + " must have a floating dtype, got " + DTypeName(t));
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  const char* op = "cast";
  TensorArg x = ArgTensor(info, 0, "x"), y = ArgTensor(info, 2, "y");
  DType xt = ArgDType(info, 1, "xDType"), yt = ArgDType(info, 3, "yDType");
  size_t n = ArgSize(info, 4, "n");
  if (!CastSupported(xt, yt))
    throw std::invalid_argument(std::string("cast: ") + DTypeName(xt) + " -> " + DTypeName(yt) + " is not supported");
  int device = RequireSameDevice(op, {{"x", x}, {"y", y}});
  RequireElems(op, "x", x, n, xt);
  RequireElems(op, "y", y, n, yt);
  if (device < 0) CastCpu(x.data, xt, y.data, yt, n);
  else AERIE_CUDA_CALL(op, device, CastCuda(x.data, xt, y.data, yt, n, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  const char* op = "fill";
  TensorArg y = ArgTensor(info, 0, "y");
  DType t = ArgDType(info, 1, "dtype");
  size_t n = ArgSize(info, 2, "n");
  double value = ArgDouble(info, 3, "value");
  RequireElems(op, "y", y, n, t);
  if (y.device < 0) FillCpu(y.data, t, n, value);
  else AERIE_CUDA_CALL(op, y.device, FillCuda(y.data, t, n, value, CurrentStream(y.device)));
  return info.Env().Undefined();
}

template <bool kMul>
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* op = kMul ? "mul" : "add";
  TensorArg a = ArgTensor(info, 0, "a"), b = ArgTensor(info, 1, "b"), out = ArgTensor(info, 2, "out");
  DType t = ArgDType(info, 3, "dtype");
  size_t n = ArgSize(info, 4, "n"), nb = ArgSize(info, 5, "nb");
  RequireFloatArg(op, "dtype", t);
  if (n > 0 && (nb == 0 || n % nb != 0))
    throw std::invalid_argument(std::string(op) + ": b's " + std::to_string(nb) + " elements do not divide a's " + std::to_string(n));
  int device = RequireSameDevice(op, {{"a", a}, {"b", b}, {"out", out}});
  RequireElems(op, "a", a, n, t);
  RequireElems(op, "b", b, nb, t);
  RequireElems(op, "out", out, n, t);
  if (device < 0) {
    if (kMul) MulCpu(a.data, b.data, out.data, t, n, nb);
    else AddCpu(a.data, b.data, out.data, t, n, nb);
  } else if (kMul) {
    AERIE_CUDA_CALL(op, device, MulCuda(a.data, b.data, out.data, t, n, nb, CurrentStream(device)));
  } else {
    AERIE_CUDA_CALL(op, device, AddCuda(a.data, b.data, out.data, t, n, nb, CurrentStream(device)));
  }
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  TensorArg x = ArgTensor(info, 0, "x"), out = ArgTensor(info, 1, "out");
  DType t = ArgDType(info, 2, "dtype");
  size_t n = ArgSize(info, 3, "n");
  float alpha = static_cast<float>(ArgDouble(info, 4, "alpha"));
  RequireFloatArg(op, "dtype", t);
  int device = RequireSameDevice(op, {{"x", x}, {"out", out}});
  RequireElems(op, "x", x, n, t);
  RequireElems(op, "out", out, n, t);
  if (device < 0) ScaleCpu(x.data, out.data, t, n, alpha);
  else AERIE_CUDA_CALL(op, device, ScaleCuda(x.data, out.data, t, n, alpha, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* op = "axpy";
  TensorArg y = ArgTensor(info, 0, "y"), x = ArgTensor(info, 2, "x");
  DType yt = ArgDType(info, 1, "yDType"), xt = ArgDType(info, 3, "xDType");
  size_t n = ArgSize(info, 4, "n");
  float alpha = static_cast<float>(ArgDouble(info, 5, "alpha"));
  RequireFloatArg(op, "yDType", yt);
  RequireFloatArg(op, "xDType", xt);
  int device = RequireSameDevice(op, {{"y", y}, {"x", x}});
  RequireElems(op, "y", y, n, yt);
  RequireElems(op, "x", x, n, xt);
  if (device < 0) AxpyCpu(y.data, yt, x.data, xt, n, alpha);
  else AERIE_CUDA_CALL(op, device, AxpyCuda(y.data, yt, x.data, xt, n, alpha, CurrentStream(device)));
  return info.Env().Undefined();
}

template <bool kMax>
Napi::Value ReduceAll(const Napi::CallbackInfo& info) {
  const char* op = kMax ? "reduceMax" : "reduceSum";
  TensorArg x = ArgTensor(info, 0, "x"), out = ArgTensor(info, 3, "out");
  DType t = ArgDType(info, 1, "dtype");
  size_t n = ArgSize(info, 2, "n");
  RequireFloatArg(op, "dtype", t);
  int device = RequireSameDevice(op, {{"x", x}, {"out", out}});
  RequireElems(op, "x", x, n, t);
  RequireElems(op, "out", out, 1, DType::F32);
  float* o = static_cast<float*>(out.data);
  if (device < 0) {
    if (kMax) ReduceMaxCpu(x.data, t, n, o);
    else ReduceSumCpu(x.data, t, n, o);
  } else if (kMax) {
    AERIE_CUDA_CALL(op, device, ReduceMaxCuda(x.data, t, n, o, CurrentStream(device)));
  } else {
    AERIE_CUDA_CALL(op, device, ReduceSumCuda(x.data, t, n, o, CurrentStream(device)));
  }
  return info.Env().Undefined();
}

template <bool kMax>
Napi::Value ReduceRows(const Napi::CallbackInfo& info) {
  const char* op = kMax ? "rowMax" : "rowSum";
  TensorArg x = ArgTensor(info, 0, "x"), out = ArgTensor(info, 4, "out");
  DType t = ArgDType(info, 1, "dtype");
  size_t rows = ArgSize(info, 2, "rows"), cols = ArgSize(info, 3, "cols");
  RequireFloatArg(op, "dtype", t);
  int device = RequireSameDevice(op, {{"x", x}, {"out", out}});
  RequireElems(op, "x", x, rows * cols, t);
  RequireElems(op, "out", out, rows, DType::F32);
  float* o = static_cast<float*>(out.data);
  if (device < 0) {
    if (kMax) RowMaxCpu(x.data, t, rows, cols, o);
    else RowSumCpu(x.data, t, rows, cols, o);
  } else if (kMax) {
    AERIE_CUDA_CALL(op, device, RowMaxCuda(x.data, t, rows, cols, o, CurrentStream(device)));
  } else {
    AERIE_CUDA_CALL(op, device, RowSumCuda(x.data, t, rows, cols, o, CurrentStream(device)));
  }
  return info.Env().Undefined();
}

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "cast", Cast);
  Export(env, exports, "fill", Fill);
  Export(env, exports, "add", Binary<false>);
  Export(env, exports, "mul", Binary<true>);
  Export(env, exports, "scale", Scale);
  Export(env, exports, "axpy", Axpy);
  Export(env, exports, "reduceSum", ReduceAll<false>);
  Export(env, exports, "reduceMax", ReduceAll<true>);
  Export(env, exports, "rowSum", ReduceRows<false>);
  Export(env, exports, "rowMax", ReduceRows<true>);
}

}  // namespace

AERIE_REGISTER_BINDINGS(elementwise, RegisterElementwise);

}  // namespace aerie
