// Storage: a span of bytes on the CPU or one CUDA device, shared (by reference count) between a
// tensor and its views. JavaScript frees it explicitly (free()); the garbage collector is only a
// backstop. CPU memory is 64-byte aligned; device memory comes from the caching allocator.
#pragma once
#include <napi.h>

#include <cstddef>
#include <memory>

namespace aerie {

struct Allocation {
  void* base = nullptr;
  size_t bytes = 0;
  int device = -1;  // -1: CPU, else the CUDA ordinal
  Allocation(size_t bytes, int device);
  ~Allocation();
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
};

class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object New(Napi::Env env, std::shared_ptr<Allocation> alloc, size_t offset, size_t bytes);
  static bool IsStorage(Napi::Value v);
  explicit Storage(const Napi::CallbackInfo& info);

  void* data() const;
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }
  bool freed() const { return !alloc_; }

 private:
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value GetBytes(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetFreed(const Napi::CallbackInfo& info);

  std::shared_ptr<Allocation> alloc_;
  size_t offset_ = 0;
  size_t bytes_ = 0;
  int device_ = -1;
};

// Exports allocate(bytes, device) -> Storage.
void RegisterStorage(Napi::Env env, Napi::Object exports);

}  // namespace aerie
