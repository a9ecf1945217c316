// Glue between JavaScript calls and the kernels: typed argument readers that throw clear errors,
// a wrapper that turns every C++ exception into a JavaScript Error naming the op (never exit() or a
// crash), and a registry through which each kernel family's bind_*.cc adds its functions.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// A tensor argument as the kernels see it: a raw pointer into a Storage plus where it lives.
struct TensorArg {
  void* data = nullptr;
  size_t bytes = 0;
  int device = -1;  // -1: CPU
  bool cuda() const { return device >= 0; }
};

TensorArg ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name);
// Like ArgTensor, but `null`/`undefined` gives an empty TensorArg (data == nullptr).
TensorArg ArgOptionalTensor(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
size_t ArgSize(const Napi::CallbackInfo& info, size_t i, const char* name);  // a non-negative integer
double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
DType ArgDType(const Napi::CallbackInfo& info, size_t i, const char* name);
std::vector<int64_t> ArgIntArray(const Napi::CallbackInfo& info, size_t i, const char* name);

// Throws unless every present tensor lives on the same device; returns that device.
int RequireSameDevice(const char* op, std::initializer_list<std::pair<const char*, TensorArg>> tensors);
// Throws unless `t` holds at least `elems` elements of `dtype` (bounds check before any kernel runs).
void RequireElems(const char* op, const char* name, const TensorArg& t, size_t elems, DType dtype);

// Runs `body`, rethrowing any C++ exception as a JavaScript Error prefixed with `op`.
template <typename F>
Napi::Value Guard(const Napi::CallbackInfo& info, const char* op, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    if (what.rfind(op, 0) == 0) throw Napi::TypeError::New(info.Env(), what);
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + what);
  } catch (const std::exception& e) {
    std::string what = e.what();
    // Messages that already name the op are passed as they are.
    if (what.rfind(op, 0) == 0) throw Napi::Error::New(info.Env(), what);
    throw Napi::Error::New(info.Env(), std::string(op) + ": " + what);
  }
}

// Exports `fn` as `name`, wrapped in Guard.
void Export(Napi::Env env, Napi::Object exports, const char* name,
            std::function<Napi::Value(const Napi::CallbackInfo&)> fn);

// Each bind_*.cc registers its family: AERIE_REGISTER_BINDINGS(norm, RegisterNorm);
using RegisterFn = void (*)(Napi::Env, Napi::Object);
struct BindingRegistrar {
  BindingRegistrar(const char* family, RegisterFn fn);
};
const std::vector<std::pair<const char*, RegisterFn>>& RegisteredBindings();

// Runs a CUDA launcher on `device` (made current), then checks the launch. In a CPU-only build it
// throws an error that says how to rebuild. Use CurrentStream(device) inside `call`.
#if defined(AERIE_WITH_CUDA)
#define AERIE_CUDA_CALL(op, device, call) \
  do {                                    \
    ::aerie::RequireCudaDevice(device, op); \
    ::aerie::DeviceGuard aerie_guard_(device); \
    call;                                 \
    ::aerie::CheckLaunch(op);             \
  } while (0)
#else
#define AERIE_CUDA_CALL(op, device, call) \
  throw std::runtime_error(std::string(op) + ": this addon was built without CUDA (no nvcc at build time); rebuild with nvcc on PATH: npm run build:native")
#endif

#define AERIE_REGISTER_BINDINGS(family, fn) static ::aerie::BindingRegistrar aerie_registrar_##family(#family, fn)

}  // namespace aerie
