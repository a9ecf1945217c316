// Module entry: the storage class, the runtime's device/stream/event/graph/allocator functions, and
// every kernel family registered through AERIE_REGISTER_BINDINGS.
#include <napi.h>

#include "allocator.h"
#include "cuda_context.h"
#include "dynlib.h"
#include "napi_util.h"
#include "storage.h"
#include "thread_pool.h"

namespace aerie {
namespace {

struct StreamBox { int device; cudaStream_t stream; bool live; };
struct EventBox { int device; cudaEvent_t event; bool live; };
struct GraphBox { int device; cudaGraphExec_t exec; uint64_t id; bool live; };

template <typename T>
T* Box(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsExternal()) throw std::invalid_argument(std::string("argument ") + name + " must be a handle");
  T* box = info[i].As<Napi::External<T>>().Data();
  if (!box->live) throw std::runtime_error(std::string(name) + " was already destroyed");
  return box;
}

Napi::Object StatsObject(Napi::Env env, const AllocatorStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesInUse", static_cast<double>(s.bytes_in_use));
  o.Set("peakBytesInUse", static_cast<double>(s.peak_bytes_in_use));
  o.Set("bytesReserved", static_cast<double>(s.bytes_reserved));
  o.Set("numAllocs", static_cast<double>(s.num_allocs));
  o.Set("numCudaMallocs", static_cast<double>(s.num_cuda_mallocs));
  return o;
}

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("builtWithCuda", Napi::Boolean::New(env, kBuiltWithCuda));
  Export(env, exports, "cudaDeviceCount", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), CudaDeviceCount());
  });
  Export(env, exports, "cudaUnavailableReason", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), CudaUnavailableReason());
  });
  // Opens cuBLASLt or NCCL now (they are otherwise opened when first used); throws the loader's error.
  Export(env, exports, "loadCudaLibrary", [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw std::invalid_argument("expected 'cublasLt' or 'nccl'");
    std::string which = info[0].As<Napi::String>();
    if (which == "cublasLt") {
      OpenLibrary({"libcublasLt.so.13", "libcublasLt.so"});
    } else if (which == "nccl") {
      OpenLibrary({"libnccl.so.2", "libnccl.so"});
    } else {
      throw std::invalid_argument("unknown library '" + which + "': expected 'cublasLt' or 'nccl'");
    }
    return Napi::Boolean::New(info.Env(), true);
  });
  Export(env, exports, "cpuThreadCount", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), CpuThreadCount());
  });
  Export(env, exports, "deviceName", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), DeviceName(static_cast<int>(ArgInt(info, 0, "device"))));
  });
  Export(env, exports, "memoryInfo", [](const Napi::CallbackInfo& info) -> Napi::Value {
    size_t free_b = 0, total_b = 0;
    DeviceMemoryInfo(static_cast<int>(ArgInt(info, 0, "device")), &free_b, &total_b);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("free", static_cast<double>(free_b));
    o.Set("total", static_cast<double>(total_b));
    return o;
  });
  Export(env, exports, "allocatorStats", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return StatsObject(info.Env(), DeviceAllocatorStats(static_cast<int>(ArgInt(info, 0, "device"))));
  });
  Export(env, exports, "resetPeakStats", [](const Napi::CallbackInfo& info) -> Napi::Value {
    ResetPeakStats(static_cast<int>(ArgInt(info, 0, "device")));
    return info.Env().Undefined();
  });
  Export(env, exports, "emptyCache", [](const Napi::CallbackInfo& info) -> Napi::Value {
    EmptyCache(static_cast<int>(ArgInt(info, 0, "device")));
    return info.Env().Undefined();
  });
  Export(env, exports, "synchronize", [](const Napi::CallbackInfo& info) -> Napi::Value {
    int device = static_cast<int>(ArgInt(info, 0, "device"));
    if (info.Length() > 1 && info[1].IsExternal()) {
      SynchronizeStream(device, Box<StreamBox>(info, 1, "stream")->stream);
    } else {
      SynchronizeStream(device, nullptr);
    }
    return info.Env().Undefined();
  });

  Export(env, exports, "setProfilerActive", [](const Napi::CallbackInfo& info) -> Napi::Value {
    SetProfilerActive(static_cast<int>(ArgInt(info, 0, "device")), ArgBool(info, 1, "on"));
    return info.Env().Undefined();
  });

  // Streams
  Export(env, exports, "createStream", [](const Napi::CallbackInfo& info) -> Napi::Value {
    int device = static_cast<int>(ArgInt(info, 0, "device"));
    auto* box = new StreamBox{device, CreateStream(device), true};
    return Napi::External<StreamBox>::New(info.Env(), box, [](Napi::Env, StreamBox* b) {
      if (b->live) DestroyStream(b->device, b->stream);
      delete b;
    });
  });
  Export(env, exports, "destroyStream", [](const Napi::CallbackInfo& info) -> Napi::Value {
    StreamBox* b = Box<StreamBox>(info, 0, "stream");
    DestroyStream(b->device, b->stream);
    b->live = false;
    return info.Env().Undefined();
  });
  Export(env, exports, "setCurrentStream", [](const Napi::CallbackInfo& info) -> Napi::Value {
    int device = static_cast<int>(ArgInt(info, 0, "device"));
    if (info.Length() > 1 && info[1].IsExternal()) {
      StreamBox* b = Box<StreamBox>(info, 1, "stream");
      if (b->device != device) throw std::invalid_argument("stream belongs to cuda:" + std::to_string(b->device));
      SetCurrentStream(device, b->stream);
    } else {
      SetCurrentStream(device, nullptr);
    }
    return info.Env().Undefined();
  });

  // Events
  Export(env, exports, "createEvent", [](const Napi::CallbackInfo& info) -> Napi::Value {
    int device = static_cast<int>(ArgInt(info, 0, "device"));
    bool timing = info.Length() > 1 ? ArgBool(info, 1, "timing") : true;
    auto* box = new EventBox{device, CreateEvent(device, timing), true};
    return Napi::External<EventBox>::New(info.Env(), box, [](Napi::Env, EventBox* b) {
      if (b->live) DestroyEvent(b->event);
      delete b;
    });
  });
  Export(env, exports, "destroyEvent", [](const Napi::CallbackInfo& info) -> Napi::Value {
    EventBox* b = Box<EventBox>(info, 0, "event");
    DestroyEvent(b->event);
    b->live = false;
    return info.Env().Undefined();
  });
  Export(env, exports, "recordEvent", [](const Napi::CallbackInfo& info) -> Napi::Value {
    EventBox* e = Box<EventBox>(info, 0, "event");
    cudaStream_t s = (info.Length() > 1 && info[1].IsExternal()) ? Box<StreamBox>(info, 1, "stream")->stream : CurrentStream(e->device);
    RecordEvent(e->event, s);
    return info.Env().Undefined();
  });
  Export(env, exports, "waitEvent", [](const Napi::CallbackInfo& info) -> Napi::Value {
    EventBox* e = Box<EventBox>(info, 0, "event");
    cudaStream_t s = (info.Length() > 1 && info[1].IsExternal()) ? Box<StreamBox>(info, 1, "stream")->stream : CurrentStream(e->device);
    StreamWaitEvent(s, e->event);
    return info.Env().Undefined();
  });
  Export(env, exports, "synchronizeEvent", [](const Napi::CallbackInfo& info) -> Napi::Value {
    SynchronizeEvent(Box<EventBox>(info, 0, "event")->event);
    return info.Env().Undefined();
  });
  Export(env, exports, "elapsedMs", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), EventElapsedMs(Box<EventBox>(info, 0, "start")->event, Box<EventBox>(info, 1, "end")->event));
  });

  // CUDA graphs
  Export(env, exports, "beginCapture", [](const Napi::CallbackInfo& info) -> Napi::Value {
    BeginGraphCapture(static_cast<int>(ArgInt(info, 0, "device")));
    return info.Env().Undefined();
  });
  Export(env, exports, "endCapture", [](const Napi::CallbackInfo& info) -> Napi::Value {
    int device = static_cast<int>(ArgInt(info, 0, "device"));
    uint64_t id = 0;
    cudaGraphExec_t exec = EndGraphCapture(device, &id);
    auto* box = new GraphBox{device, exec, id, true};
    return Napi::External<GraphBox>::New(info.Env(), box, [](Napi::Env, GraphBox* b) {
      if (b->live) DestroyGraph(b->device, b->exec, b->id);
      delete b;
    });
  });
  Export(env, exports, "replayGraph", [](const Napi::CallbackInfo& info) -> Napi::Value {
    GraphBox* g = Box<GraphBox>(info, 0, "graph");
    ReplayGraph(g->device, g->exec);
    return info.Env().Undefined();
  });
  Export(env, exports, "destroyGraph", [](const Napi::CallbackInfo& info) -> Napi::Value {
    GraphBox* g = Box<GraphBox>(info, 0, "graph");
    DestroyGraph(g->device, g->exec, g->id);
    g->live = false;
    return info.Env().Undefined();
  });
}

}  // namespace

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  RegisterStorage(env, exports);
  RegisterRuntime(env, exports);
  Napi::Array families = Napi::Array::New(env);
  uint32_t k = 0;
  for (const auto& [family, fn] : RegisteredBindings()) {
    fn(env, exports);
    families.Set(k++, Napi::String::New(env, family));
  }
  exports.Set("kernelFamilies", families);
  return exports;
}

}  // namespace aerie

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return aerie::InitAddon(env, exports); }
NODE_API_MODULE(aerie_native, InitModule)
