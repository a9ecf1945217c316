// JavaScript glue of the collectives family: NCCL communicators over device tensors. Every
// collective is enqueued on the device's current stream (CurrentStream) and returns at once; the
// results are stream-ordered like any kernel's. libnccl is opened on first use (nccl_api.h).
//   ncclVersion() -> number
//   ncclUniqueId() -> Uint8Array(128)
//   ncclInit(uniqueId, nranks, rank, device) -> Promise<comm>   (blocks a worker thread, not JS)
//   ncclDestroy(comm), ncclAbort(comm)
//   ncclAllReduce(comm, send, recv, count, dtype, op)
//   ncclAllGather(comm, send, recv, sendCount, dtype)
//   ncclReduceScatter(comm, send, recv, recvCount, dtype, op)
//   ncclBroadcast(comm, send, recv, count, dtype, root)
//   ncclSend(comm, send, count, dtype, peer), ncclRecv(comm, recv, count, dtype, peer)
//   ncclGroupStart(), ncclGroupEnd()
#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "nccl_api.h"
#include "napi_util.h"

namespace aerie {
namespace {

struct CommBox {
  nccl::ncclComm_t comm = nullptr;
  int nranks = 0, rank = 0, device = 0;
  bool live = false;
};

// Boxes handed to JavaScript; an External is accepted as a communicator only if it is one of them.
std::mutex g_boxes_mu;
std::set<CommBox*> g_boxes;

CommBox* ArgComm(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsExternal()) throw std::invalid_argument("argument comm must be an NCCL communicator handle");
  auto* box = static_cast<CommBox*>(info[i].As<Napi::External<void>>().Data());
  {
    std::lock_guard<std::mutex> lock(g_boxes_mu);
    if (!g_boxes.count(box)) throw std::invalid_argument("argument comm must be an NCCL communicator handle");
  }
  if (!box->live) throw std::runtime_error("the communicator was already destroyed or aborted");
  return box;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsString()) throw std::invalid_argument(std::string("argument ") + name + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int ArgRank(const Napi::CallbackInfo& info, size_t i, const char* name, int nranks) {
  int64_t r = ArgInt(info, i, name);
  if (r < 0 || r >= nranks)
    throw std::invalid_argument(std::string(name) + " " + std::to_string(r) + " is outside [0, " + std::to_string(nranks) + ")");
  return static_cast<int>(r);
}

// The device every tensor of a call is on must be the communicator's.
void RequireCommDevice(const char* op, const CommBox* box, std::initializer_list<std::pair<const char*, TensorArg>> tensors) {
  int device = RequireSameDevice(op, tensors);
  if (device != box->device)
    throw std::invalid_argument(std::string(op) + ": tensors are on " + (device < 0 ? "cpu" : "cuda:" + std::to_string(device)) +
                                " but the communicator is on cuda:" + std::to_string(box->device));
}

// Enqueues `call(stream)` (an NCCL function) on the communicator device's current stream.
template <typename F>
void Enqueue(const char* op, const CommBox* box, F&& call) {
  AERIE_CUDA_CALL(op, box->device, nccl::Check(call(CurrentStream(box->device)), op));
}

Napi::Value NcclVersion(const Napi::CallbackInfo& info) {
  int version = 0;
  nccl::Check(nccl::Load().GetVersion(&version), "ncclGetVersion");
  return Napi::Number::New(info.Env(), version);
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  nccl::ncclUniqueId id;
  nccl::Check(nccl::Load().GetUniqueId(&id), "ncclGetUniqueId");
  return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<const uint8_t*>(id.internal), nccl::kUniqueIdBytes);
}

// ncclCommInitRank waits for every rank to join, so it runs on a worker thread and resolves a Promise.
class InitWorker : public Napi::AsyncWorker {
 public:
  InitWorker(Napi::Env env, const nccl::ncclUniqueId& id, int nranks, int rank, int device)
      : Napi::AsyncWorker(env, "aerie.ncclInit"), deferred_(Napi::Promise::Deferred::New(env)), id_(id) {
    box_.nranks = nranks;
    box_.rank = rank;
    box_.device = device;
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      DeviceGuard guard(box_.device);  // NCCL binds the communicator to the calling thread's device
      nccl::Check(nccl::Load().CommInitRank(&box_.comm, box_.nranks, id_, box_.rank), "ncclCommInitRank");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    auto* box = new CommBox(box_);
    box->live = true;
    {
      std::lock_guard<std::mutex> lock(g_boxes_mu);
      g_boxes.insert(box);
    }
    // The garbage collector frees only the box: destroying a communicator is collective (every rank
    // must take part), so a forgotten one is left to process exit rather than risk a hang here.
    auto handle = Napi::External<void>::New(Env(), box, [](Napi::Env, void* p) {
      auto* b = static_cast<CommBox*>(p);
      std::lock_guard<std::mutex> lock(g_boxes_mu);
      g_boxes.erase(b);
      delete b;
    });
    deferred_.Resolve(handle);
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(Napi::Error::New(Env(), "ncclInit: " + e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  nccl::ncclUniqueId id_;
  CommBox box_;
};

Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().ByteLength() != nccl::kUniqueIdBytes)
    throw std::invalid_argument("uniqueId must be the " + std::to_string(nccl::kUniqueIdBytes) + "-byte Uint8Array from ncclUniqueId()");
  auto bytes = info[0].As<Napi::TypedArray>();
  nccl::ncclUniqueId id;
  std::memcpy(id.internal, static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset(), nccl::kUniqueIdBytes);
  int64_t nranks = ArgInt(info, 1, "nranks");
  if (nranks < 1) throw std::invalid_argument("nranks must be >= 1, got " + std::to_string(nranks));
  int rank = ArgRank(info, 2, "rank", static_cast<int>(nranks));
  int device = static_cast<int>(ArgInt(info, 3, "device"));
  RequireCudaDevice(device, "ncclInit");
  nccl::Load();  // a missing libnccl fails here, synchronously, with the loader's message
  auto* worker = new InitWorker(info.Env(), id, static_cast<int>(nranks), rank, device);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value NcclDestroy(const Napi::CallbackInfo& info) {
  CommBox* box = ArgComm(info, 0);
  box->live = false;
  DeviceGuard guard(box->device);
  nccl::Check(nccl::Load().CommDestroy(box->comm), "ncclCommDestroy");
  return info.Env().Undefined();
}

Napi::Value NcclAbort(const Napi::CallbackInfo& info) {
  CommBox* box = ArgComm(info, 0);
  box->live = false;
  DeviceGuard guard(box->device);
  nccl::Check(nccl::Load().CommAbort(box->comm), "ncclCommAbort");
  return info.Env().Undefined();
}

Napi::Value NcclAllReduce(const Napi::CallbackInfo& info) {
  const char* op = "ncclAllReduce";
  CommBox* box = ArgComm(info, 0);
  TensorArg send = ArgTensor(info, 1, "send"), recv = ArgTensor(info, 2, "recv");
  size_t count = ArgSize(info, 3, "count");
  DType dtype = ArgDType(info, 4, "dtype");
  nccl::ncclRedOp_t red = nccl::RedOp(ArgString(info, 5, "op"));
  RequireCommDevice(op, box, {{"send", send}, {"recv", recv}});
  RequireElems(op, "send", send, count, dtype);
  RequireElems(op, "recv", recv, count, dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().AllReduce(send.data, recv.data, count, nccl::DataType(dtype), red, box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclAllGather(const Napi::CallbackInfo& info) {
  const char* op = "ncclAllGather";
  CommBox* box = ArgComm(info, 0);
  TensorArg send = ArgTensor(info, 1, "send"), recv = ArgTensor(info, 2, "recv");
  size_t count = ArgSize(info, 3, "sendCount");
  DType dtype = ArgDType(info, 4, "dtype");
  RequireCommDevice(op, box, {{"send", send}, {"recv", recv}});
  RequireElems(op, "send", send, count, dtype);
  RequireElems(op, "recv", recv, count * static_cast<size_t>(box->nranks), dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().AllGather(send.data, recv.data, count, nccl::DataType(dtype), box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclReduceScatter(const Napi::CallbackInfo& info) {
  const char* op = "ncclReduceScatter";
  CommBox* box = ArgComm(info, 0);
  TensorArg send = ArgTensor(info, 1, "send"), recv = ArgTensor(info, 2, "recv");
  size_t count = ArgSize(info, 3, "recvCount");
  DType dtype = ArgDType(info, 4, "dtype");
  nccl::ncclRedOp_t red = nccl::RedOp(ArgString(info, 5, "op"));
  RequireCommDevice(op, box, {{"send", send}, {"recv", recv}});
  RequireElems(op, "send", send, count * static_cast<size_t>(box->nranks), dtype);
  RequireElems(op, "recv", recv, count, dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().ReduceScatter(send.data, recv.data, count, nccl::DataType(dtype), red, box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclBroadcast(const Napi::CallbackInfo& info) {
  const char* op = "ncclBroadcast";
  CommBox* box = ArgComm(info, 0);
  TensorArg send = ArgTensor(info, 1, "send"), recv = ArgTensor(info, 2, "recv");
  size_t count = ArgSize(info, 3, "count");
  DType dtype = ArgDType(info, 4, "dtype");
  int root = ArgRank(info, 5, "root", box->nranks);
  RequireCommDevice(op, box, {{"send", send}, {"recv", recv}});
  RequireElems(op, "send", send, count, dtype);
  RequireElems(op, "recv", recv, count, dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().Broadcast(send.data, recv.data, count, nccl::DataType(dtype), root, box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclSend(const Napi::CallbackInfo& info) {
  const char* op = "ncclSend";
  CommBox* box = ArgComm(info, 0);
  TensorArg send = ArgTensor(info, 1, "send");
  size_t count = ArgSize(info, 2, "count");
  DType dtype = ArgDType(info, 3, "dtype");
  int peer = ArgRank(info, 4, "peer", box->nranks);
  RequireCommDevice(op, box, {{"send", send}});
  RequireElems(op, "send", send, count, dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().Send(send.data, count, nccl::DataType(dtype), peer, box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclRecv(const Napi::CallbackInfo& info) {
  const char* op = "ncclRecv";
  CommBox* box = ArgComm(info, 0);
  TensorArg recv = ArgTensor(info, 1, "recv");
  size_t count = ArgSize(info, 2, "count");
  DType dtype = ArgDType(info, 3, "dtype");
  int peer = ArgRank(info, 4, "peer", box->nranks);
  RequireCommDevice(op, box, {{"recv", recv}});
  RequireElems(op, "recv", recv, count, dtype);
  Enqueue(op, box, [&](cudaStream_t stream) {
    return nccl::Load().Recv(recv.data, count, nccl::DataType(dtype), peer, box->comm, stream);
  });
  return info.Env().Undefined();
}

Napi::Value NcclGroupStart(const Napi::CallbackInfo& info) {
  nccl::Check(nccl::Load().GroupStart(), "ncclGroupStart");
  return info.Env().Undefined();
}

Napi::Value NcclGroupEnd(const Napi::CallbackInfo& info) {
  nccl::Check(nccl::Load().GroupEnd(), "ncclGroupEnd");
  return info.Env().Undefined();
}

void RegisterCollectives(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "ncclVersion", NcclVersion);
  Export(env, exports, "ncclUniqueId", NcclUniqueId);
  Export(env, exports, "ncclInit", NcclInit);
  Export(env, exports, "ncclDestroy", NcclDestroy);
  Export(env, exports, "ncclAbort", NcclAbort);
  Export(env, exports, "ncclAllReduce", NcclAllReduce);
  Export(env, exports, "ncclAllGather", NcclAllGather);
  Export(env, exports, "ncclReduceScatter", NcclReduceScatter);
  Export(env, exports, "ncclBroadcast", NcclBroadcast);
  Export(env, exports, "ncclSend", NcclSend);
  Export(env, exports, "ncclRecv", NcclRecv);
  Export(env, exports, "ncclGroupStart", NcclGroupStart);
  Export(env, exports, "ncclGroupEnd", NcclGroupEnd);
}

}  // namespace

AERIE_REGISTER_BINDINGS(collectives, RegisterCollectives);

}  // namespace aerie
