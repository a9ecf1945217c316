// JavaScript glue of the sampling family.
//   argmax(logits, dtype, rows, vocab, out)
//   sample(logits, dtype, rows, vocab, temperature, topK, topP, seeds, steps, out)
//   samplingProbs(logits, dtype, rows, vocab, temperature, topK, topP, probs)
//   samplingFilter(logits, dtype, rows, vocab, temperature, topK, topP)       (in place)
//   philox4x32([c0, c1, c2, c3], [k0, k1]) -> [x0, x1, x2, x3]                 (the generator, for tests)
#include <string>
#include <vector>

#include "napi_util.h"
#include "sampling.h"
#include "sampling_math.h"

namespace aerie {
namespace {

void CheckLogits(const char* op, DType t, size_t vocab) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": logits must have a floating dtype, got " + DTypeName(t));
  if (vocab == 0 || vocab > static_cast<size_t>(kMaxSamplingVocab))
    throw std::invalid_argument(std::string(op) + ": vocab " + std::to_string(vocab) + " is outside [1, " + std::to_string(kMaxSamplingVocab) + "]");
}

// Reads temperature, topK, topP (and seeds, steps when `seeded`) starting at argument `first`.
struct ParamArgs {
  TensorArg temperature, top_k, top_p, seeds, steps;
  SamplingParams params() const {
    SamplingParams p;
    p.temperature = static_cast<const float*>(temperature.data);
    p.top_k = static_cast<const int32_t*>(top_k.data);
    p.top_p = static_cast<const float*>(top_p.data);
    p.seeds = static_cast<const uint64_t*>(seeds.data);
    p.steps = static_cast<const int64_t*>(steps.data);
    return p;
  }
};

ParamArgs ReadParams(const Napi::CallbackInfo& info, const char* op, size_t first, bool seeded, size_t rows) {
  ParamArgs a;
  a.temperature = ArgTensor(info, first, "temperature");
  a.top_k = ArgTensor(info, first + 1, "topK");
  a.top_p = ArgTensor(info, first + 2, "topP");
  RequireElems(op, "temperature", a.temperature, rows, DType::F32);
  RequireElems(op, "topK", a.top_k, rows, DType::I32);
  RequireElems(op, "topP", a.top_p, rows, DType::F32);
  if (seeded) {
    a.seeds = ArgTensor(info, first + 3, "seeds");
    a.steps = ArgTensor(info, first + 4, "steps");
    RequireElems(op, "seeds", a.seeds, rows, DType::I64);
    RequireElems(op, "steps", a.steps, rows, DType::I64);
  }
  return a;
}

Napi::Value Argmax(const Napi::CallbackInfo& info) {
  const char* op = "argmax";
  TensorArg logits = ArgTensor(info, 0, "logits"), out = ArgTensor(info, 4, "out");
  DType t = ArgDType(info, 1, "dtype");
  size_t rows = ArgSize(info, 2, "rows"), vocab = ArgSize(info, 3, "vocab");
  CheckLogits(op, t, vocab);
  int device = RequireSameDevice(op, {{"logits", logits}, {"out", out}});
  RequireElems(op, "logits", logits, rows * vocab, t);
  RequireElems(op, "out", out, rows, DType::I32);
  int32_t* o = static_cast<int32_t*>(out.data);
  if (device < 0) ArgmaxCpu(logits.data, t, rows, vocab, o);
  else AERIE_CUDA_CALL(op, device, ArgmaxCuda(logits.data, t, rows, vocab, o, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Sample(const Napi::CallbackInfo& info) {
  const char* op = "sample";
  TensorArg logits = ArgTensor(info, 0, "logits"), out = ArgTensor(info, 9, "out");
  DType t = ArgDType(info, 1, "dtype");
  size_t rows = ArgSize(info, 2, "rows"), vocab = ArgSize(info, 3, "vocab");
  CheckLogits(op, t, vocab);
  ParamArgs a = ReadParams(info, op, 4, true, rows);
  int device = RequireSameDevice(op, {{"logits", logits}, {"temperature", a.temperature}, {"topK", a.top_k}, {"topP", a.top_p},
                                      {"seeds", a.seeds}, {"steps", a.steps}, {"out", out}});
  RequireElems(op, "logits", logits, rows * vocab, t);
  RequireElems(op, "out", out, rows, DType::I32);
  int32_t* o = static_cast<int32_t*>(out.data);
  if (device < 0) SampleCpu(logits.data, t, rows, vocab, a.params(), o);
  else AERIE_CUDA_CALL(op, device, SampleCuda(logits.data, t, rows, vocab, a.params(), o, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Probs(const Napi::CallbackInfo& info) {
  const char* op = "samplingProbs";
  TensorArg logits = ArgTensor(info, 0, "logits"), probs = ArgTensor(info, 7, "probs");
  DType t = ArgDType(info, 1, "dtype");
  size_t rows = ArgSize(info, 2, "rows"), vocab = ArgSize(info, 3, "vocab");
  CheckLogits(op, t, vocab);
  ParamArgs a = ReadParams(info, op, 4, false, rows);
  int device = RequireSameDevice(op, {{"logits", logits}, {"temperature", a.temperature}, {"topK", a.top_k}, {"topP", a.top_p}, {"probs", probs}});
  RequireElems(op, "logits", logits, rows * vocab, t);
  RequireElems(op, "probs", probs, rows * vocab, DType::F32);
  float* pr = static_cast<float*>(probs.data);
  if (device < 0) SamplingProbsCpu(logits.data, t, rows, vocab, a.params(), pr);
  else AERIE_CUDA_CALL(op, device, SamplingProbsCuda(logits.data, t, rows, vocab, a.params(), pr, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Filter(const Napi::CallbackInfo& info) {
  const char* op = "samplingFilter";
  TensorArg logits = ArgTensor(info, 0, "logits");
  DType t = ArgDType(info, 1, "dtype");
  size_t rows = ArgSize(info, 2, "rows"), vocab = ArgSize(info, 3, "vocab");
  CheckLogits(op, t, vocab);
  ParamArgs a = ReadParams(info, op, 4, false, rows);
  int device = RequireSameDevice(op, {{"logits", logits}, {"temperature", a.temperature}, {"topK", a.top_k}, {"topP", a.top_p}});
  RequireElems(op, "logits", logits, rows * vocab, t);
  if (device < 0) SamplingFilterCpu(logits.data, t, rows, vocab, a.params());
  else AERIE_CUDA_CALL(op, device, SamplingFilterCuda(logits.data, t, rows, vocab, a.params(), CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value Philox(const Napi::CallbackInfo& info) {
  std::vector<int64_t> c = ArgIntArray(info, 0, "counter"), k = ArgIntArray(info, 1, "key");
  if (c.size() != 4 || k.size() != 2) throw std::invalid_argument("philox4x32: counter takes 4 words and key 2");
  for (int64_t v : c)
    if (v < 0 || v > 0xFFFFFFFFLL) throw std::invalid_argument("philox4x32: words must be 32-bit unsigned");
  for (int64_t v : k)
    if (v < 0 || v > 0xFFFFFFFFLL) throw std::invalid_argument("philox4x32: words must be 32-bit unsigned");
  auto u = [](int64_t v) { return static_cast<uint32_t>(v); };
  sampling::Philox4 r = sampling::Philox4x32_10(u(c[0]), u(c[1]), u(c[2]), u(c[3]), u(k[0]), u(k[1]));
  Napi::Array out = Napi::Array::New(info.Env(), 4);
  for (uint32_t i = 0; i < 4; ++i) out.Set(i, Napi::Number::New(info.Env(), r.v[i]));
  return out;
}

void RegisterSampling(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "argmax", Argmax);
  Export(env, exports, "sample", Sample);
  Export(env, exports, "samplingProbs", Probs);
  Export(env, exports, "samplingFilter", Filter);
  Export(env, exports, "philox4x32", Philox);
}

}  // namespace

AERIE_REGISTER_BINDINGS(sampling, RegisterSampling);

}  // namespace aerie
