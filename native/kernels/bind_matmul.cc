// JavaScript glue of the matmul family.
//   matmul(a, b, c, bias|null, abDType, cDType, biasDType, m, n, k, transA, transB,
//          batch, strideA, strideB, strideC, alpha, beta)
#include <algorithm>
#include <string>

#include "matmul.h"
#include "napi_util.h"

namespace aerie {
namespace {

// Elements a strided batch touches: the last batch entry starts at (batch-1)*stride and spans one
// matrix; stride 0 broadcasts. Zero-size problems touch nothing.
size_t BatchedElems(int64_t batch, int64_t stride, int64_t matrix) {
  if (batch == 0 || matrix == 0) return 0;
  return static_cast<size_t>((batch - 1) * stride + matrix);
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* op = "matmul";
  TensorArg a = ArgTensor(info, 0, "a"), b = ArgTensor(info, 1, "b"), c = ArgTensor(info, 2, "c");
  TensorArg bias = ArgOptionalTensor(info, 3, "bias");
  MatmulArgs p;
  p.ab_type = ArgDType(info, 4, "abDType");
  p.c_type = ArgDType(info, 5, "cDType");
  p.bias_type = ArgDType(info, 6, "biasDType");
  p.m = ArgSize(info, 7, "m");
  p.n = ArgSize(info, 8, "n");
  p.k = ArgSize(info, 9, "k");
  p.trans_a = ArgBool(info, 10, "transA");
  p.trans_b = ArgBool(info, 11, "transB");
  p.batch = ArgSize(info, 12, "batch");
  p.stride_a = ArgSize(info, 13, "strideA");
  p.stride_b = ArgSize(info, 14, "strideB");
  p.stride_c = ArgSize(info, 15, "strideC");
  p.alpha = static_cast<float>(ArgDouble(info, 16, "alpha"));
  p.beta = static_cast<float>(ArgDouble(info, 17, "beta"));

  if (!IsFloating(p.ab_type) || !IsFloating(p.c_type) || (bias.data && !IsFloating(p.bias_type)))
    throw std::invalid_argument("matmul: a, b, c and bias must have floating dtypes");
  // Distinct batch entries of C must not overlap, or threads/kernels would race on them.
  if (p.batch > 1 && p.stride_c < p.m * p.n)
    throw std::invalid_argument("matmul: strideC " + std::to_string(p.stride_c) + " is smaller than m*n = " +
                                std::to_string(p.m * p.n));
  int device = RequireSameDevice(op, {{"a", a}, {"b", b}, {"c", c}, {"bias", bias}});
  RequireElems(op, "a", a, BatchedElems(p.batch, p.stride_a, p.m * p.k), p.ab_type);
  RequireElems(op, "b", b, BatchedElems(p.batch, p.stride_b, p.k * p.n), p.ab_type);
  RequireElems(op, "c", c, BatchedElems(p.batch, p.stride_c, p.m * p.n), p.c_type);
  if (bias.data) RequireElems(op, "bias", bias, static_cast<size_t>(p.n), p.bias_type);
  p.a = a.data;
  p.b = b.data;
  p.c = c.data;
  p.bias = bias.data;
  if (device < 0) MatmulCpu(p);
  else AERIE_CUDA_CALL("matmul", device, MatmulCuda(p, device, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterMatmul(Napi::Env env, Napi::Object exports) { Export(env, exports, "matmul", Matmul); }

}  // namespace

AERIE_REGISTER_BINDINGS(matmul, RegisterMatmul);

}  // namespace aerie
