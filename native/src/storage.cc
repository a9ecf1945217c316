#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "allocator.h"
#include "cuda_context.h"
#include "napi_util.h"

namespace aerie {

namespace {
// The constructor is per environment (worker threads each load the addon into their own env).
Napi::FunctionReference* Ctor(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }
constexpr size_t kCpuAlign = 64;
}  // namespace

Allocation::Allocation(size_t n, int dev) : bytes(n), device(dev) {
  if (device < 0) {
    size_t rounded = (std::max<size_t>(n, 1) + kCpuAlign - 1) / kCpuAlign * kCpuAlign;
    base = std::aligned_alloc(kCpuAlign, rounded);
    if (!base) throw std::runtime_error("out of host memory: asked for " + std::to_string(n) + " bytes");
  } else {
    RequireCudaDevice(device, "allocate");
    base = DeviceAlloc(device, n);
  }
}

Allocation::~Allocation() {
  if (device < 0) {
    std::free(base);
  } else {
    DeviceFree(device, base);
  }
}

void Storage::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Storage",
                                    {InstanceMethod("free", &Storage::Free), InstanceMethod("view", &Storage::View),
                                     InstanceMethod("read", &Storage::Read), InstanceMethod("write", &Storage::Write),
                                     InstanceMethod("copyFrom", &Storage::CopyFrom), InstanceMethod("fill", &Storage::Fill),
                                     InstanceAccessor("bytes", &Storage::GetBytes, nullptr),
                                     InstanceAccessor("device", &Storage::GetDevice, nullptr),
                                     InstanceAccessor("freed", &Storage::GetFreed, nullptr)});
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  exports.Set("Storage", ctor);
}

Storage::Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info) {
  // Filled in by New(); constructing from JavaScript gives an empty (freed) storage.
}

Napi::Object Storage::New(Napi::Env env, std::shared_ptr<Allocation> alloc, size_t offset, size_t bytes) {
  Napi::Object obj = Ctor(env)->New({});
  Storage* s = Storage::Unwrap(obj);
  s->device_ = alloc->device;
  s->alloc_ = std::move(alloc);
  s->offset_ = offset;
  s->bytes_ = bytes;
  return obj;
}

bool Storage::IsStorage(Napi::Value v) {
  Napi::FunctionReference* ctor = Ctor(v.Env());
  return v.IsObject() && ctor && v.As<Napi::Object>().InstanceOf(ctor->Value());
}

void* Storage::data() const { return alloc_ ? static_cast<char*>(alloc_->base) + offset_ : nullptr; }

Napi::Value Storage::Free(const Napi::CallbackInfo& info) {
  alloc_.reset();
  return info.Env().Undefined();
}

static void RequireLive(const Storage& s, const char* op) {
  if (s.freed()) throw std::runtime_error(std::string(op) + ": the storage was already freed (tensor disposed?)");
}

Napi::Value Storage::View(const Napi::CallbackInfo& info) {
  return Guard(info, "view", [&] {
    RequireLive(*this, "view");
    size_t off = ArgSize(info, 0, "byteOffset"), n = ArgSize(info, 1, "bytes");
    if (off > bytes_ || n > bytes_ - off)
      throw std::out_of_range("view: [" + std::to_string(off) + ", " + std::to_string(off + n) + ") lies outside a storage of " +
                              std::to_string(bytes_) + " bytes");
    return Storage::New(info.Env(), alloc_, offset_ + off, n);
  });
}

// read(byteOffset, bytes) -> ArrayBuffer holding a copy.
Napi::Value Storage::Read(const Napi::CallbackInfo& info) {
  return Guard(info, "read", [&]() -> Napi::Value {
    RequireLive(*this, "read");
    size_t off = info.Length() > 0 ? ArgSize(info, 0, "byteOffset") : 0;
    size_t n = info.Length() > 1 ? ArgSize(info, 1, "bytes") : bytes_ - std::min(off, bytes_);
    if (off > bytes_ || n > bytes_ - off) throw std::out_of_range("read: range outside the storage");
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), n);
    const char* src = static_cast<const char*>(data()) + off;
    if (device_ < 0) {
      memcpy(out.Data(), src, n);
    } else {
      CopyDeviceToHost(device_, out.Data(), src, n);
    }
    return out;
  });
}

// write(typedArrayOrBuffer, byteOffset)
Napi::Value Storage::Write(const Napi::CallbackInfo& info) {
  return Guard(info, "write", [&]() -> Napi::Value {
    RequireLive(*this, "write");
    const void* src = nullptr;
    size_t n = 0;
    if (info[0].IsTypedArray()) {
      auto ta = info[0].As<Napi::TypedArray>();
      src = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      n = ta.ByteLength();
    } else if (info[0].IsArrayBuffer()) {
      auto ab = info[0].As<Napi::ArrayBuffer>();
      src = ab.Data();
      n = ab.ByteLength();
    } else if (info[0].IsBuffer()) {
      auto b = info[0].As<Napi::Buffer<char>>();
      src = b.Data();
      n = b.Length();
    } else {
      throw std::invalid_argument("write: expected a TypedArray or ArrayBuffer");
    }
    size_t off = info.Length() > 1 ? ArgSize(info, 1, "byteOffset") : 0;
    if (off > bytes_ || n > bytes_ - off)
      throw std::out_of_range("write: " + std::to_string(n) + " bytes at offset " + std::to_string(off) +
                              " do not fit a storage of " + std::to_string(bytes_) + " bytes");
    char* dst = static_cast<char*>(data()) + off;
    if (device_ < 0) {
      memcpy(dst, src, n);
    } else {
      CopyHostToDevice(device_, dst, src, n);
    }
    return info.Env().Undefined();
  });
}

// copyFrom(src: Storage): same byte count, any devices.
Napi::Value Storage::CopyFrom(const Napi::CallbackInfo& info) {
  return Guard(info, "copyFrom", [&]() -> Napi::Value {
    RequireLive(*this, "copyFrom");
    TensorArg src = ArgTensor(info, 0, "src");
    if (src.bytes != bytes_)
      throw std::invalid_argument("copyFrom: source has " + std::to_string(src.bytes) + " bytes, destination " + std::to_string(bytes_));
    const char* d = static_cast<const char*>(data());
    const char* s = static_cast<const char*>(src.data);
    bool overlap = device_ == src.device && d < s + bytes_ && s < d + bytes_;
    if (overlap && device_ >= 0)
      throw std::invalid_argument("copyFrom: source and destination overlap on cuda:" + std::to_string(device_) +
                                  " (views of one tensor); copy through a temporary");
    if (device_ < 0 && src.device < 0) {
      memmove(data(), src.data, bytes_);  // overlapping CPU views are fine
    } else if (device_ < 0) {
      CopyDeviceToHost(src.device, data(), src.data, bytes_);
    } else if (src.device < 0) {
      CopyHostToDevice(device_, data(), src.data, bytes_);
    } else {
      CopyDeviceToDevice(device_, data(), src.device, src.data, bytes_);
    }
    return info.Env().Undefined();
  });
}

// fill(byteValue): memset.
Napi::Value Storage::Fill(const Napi::CallbackInfo& info) {
  return Guard(info, "fill", [&]() -> Napi::Value {
    RequireLive(*this, "fill");
    int v = static_cast<int>(ArgInt(info, 0, "byte"));
    if (device_ < 0) {
      memset(data(), v, bytes_);
    } else {
      MemsetDevice(device_, data(), v, bytes_);
    }
    return info.Env().Undefined();
  });
}

Napi::Value Storage::GetBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(bytes_)); }
Napi::Value Storage::GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
Napi::Value Storage::GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), freed()); }

void RegisterStorage(Napi::Env env, Napi::Object exports) {
  Storage::Init(env, exports);
  Export(env, exports, "allocate", [](const Napi::CallbackInfo& info) -> Napi::Value {
    size_t bytes = ArgSize(info, 0, "bytes");
    int device = static_cast<int>(ArgInt(info, 1, "device"));
    return Storage::New(info.Env(), std::make_shared<Allocation>(bytes, device), 0, bytes);
  });
}

}  // namespace aerie
