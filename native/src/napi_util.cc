#include "napi_util.h"

#include <cmath>

#include "storage.h"

namespace aerie {

TensorArg ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !Storage::IsStorage(info[i]))
    throw std::invalid_argument(std::string("argument ") + name + " must be a Storage");
  Storage* s = Storage::Unwrap(info[i].As<Napi::Object>());
  if (s->freed()) throw std::runtime_error(std::string("argument ") + name + " was already freed (tensor disposed?)");
  return TensorArg{s->data(), s->bytes(), s->device()};
}

TensorArg ArgOptionalTensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return TensorArg{};
  return ArgTensor(info, i, name);
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i < info.Length() && info[i].IsBigInt()) {
    bool lossless = false;
    int64_t v = info[i].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw std::invalid_argument(std::string("argument ") + name + " does not fit in int64");
    return v;
  }
  if (i >= info.Length() || !info[i].IsNumber()) throw std::invalid_argument(std::string("argument ") + name + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw std::invalid_argument(std::string("argument ") + name + " must be an integer");
  // JavaScript numbers are exact integers only up to 2^53; beyond, the cast could also overflow.
  if (std::fabs(d) > 9007199254740992.0) throw std::invalid_argument(std::string("argument ") + name + " is beyond 2^53");
  return static_cast<int64_t>(d);
}

size_t ArgSize(const Napi::CallbackInfo& info, size_t i, const char* name) {
  int64_t v = ArgInt(info, i, name);
  if (v < 0) throw std::invalid_argument(std::string("argument ") + name + " must be >= 0, got " + std::to_string(v));
  return static_cast<size_t>(v);
}

double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) throw std::invalid_argument(std::string("argument ") + name + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw std::invalid_argument(std::string("argument ") + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

DType ArgDType(const Napi::CallbackInfo& info, size_t i, const char* name) {
  int64_t v = ArgInt(info, i, name);
  if (v < 0 || v > static_cast<int64_t>(DType::Bool)) throw std::invalid_argument(std::string("argument ") + name + ": unknown dtype code");
  return static_cast<DType>(v);
}

std::vector<int64_t> ArgIntArray(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsArray()) throw std::invalid_argument(std::string("argument ") + name + " must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0)
      throw std::invalid_argument(std::string("argument ") + name + " must be an array of integers");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

static std::string DeviceString(int d) { return d < 0 ? "cpu" : "cuda:" + std::to_string(d); }

int RequireSameDevice(const char* op, std::initializer_list<std::pair<const char*, TensorArg>> tensors) {
  int device = -2;
  const char* first = nullptr;
  for (const auto& [name, t] : tensors) {
    if (!t.data && t.bytes == 0) continue;  // absent optional tensor
    if (device == -2) {
      device = t.device;
      first = name;
    } else if (t.device != device) {
      throw std::invalid_argument(std::string(op) + ": tensors on different devices: " + first + " on " + DeviceString(device) + ", " +
                                  name + " on " + DeviceString(t.device));
    }
  }
  return device == -2 ? -1 : device;
}

void RequireElems(const char* op, const char* name, const TensorArg& t, size_t elems, DType dtype) {
  size_t need = elems * DTypeSize(dtype);
  if (t.bytes < need)
    throw std::out_of_range(std::string(op) + ": " + name + " holds " + std::to_string(t.bytes) + " bytes but the shapes need " +
                            std::to_string(need) + " (" + std::to_string(elems) + " x " + DTypeName(dtype) + ")");
}

void Export(Napi::Env env, Napi::Object exports, const char* name, std::function<Napi::Value(const Napi::CallbackInfo&)> fn) {
  std::string op(name);
  exports.Set(name, Napi::Function::New(env, [fn, op](const Napi::CallbackInfo& info) -> Napi::Value {
                return Guard(info, op.c_str(), [&] { return fn(info); });
              }, name));
}

static std::vector<std::pair<const char*, RegisterFn>>& Registry() {
  static std::vector<std::pair<const char*, RegisterFn>> registry;
  return registry;
}

BindingRegistrar::BindingRegistrar(const char* family, RegisterFn fn) { Registry().emplace_back(family, fn); }
const std::vector<std::pair<const char*, RegisterFn>>& RegisteredBindings() { return Registry(); }

}  // namespace aerie
