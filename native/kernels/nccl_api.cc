#include "nccl_api.h"

#include <mutex>
#include <stdexcept>

#include "dynlib.h"

namespace aerie {
namespace nccl {

namespace {

[[noreturn]] void Throw(const char* text, ncclResult_t result, const char* op) {
  throw std::runtime_error(std::string(op) + ": NCCL error " + std::to_string(static_cast<int>(result)) + " (" +
                           (text ? text : "unknown") + ")");
}

template <typename Fn>
void Bind(Fn*& fn, void* lib, const char* symbol) {
  fn = reinterpret_cast<Fn*>(LoadSymbol(lib, "libnccl.so.2", symbol));
}

Api LoadApi() {
  void* lib = OpenLibrary({"libnccl.so.2", "libnccl.so"});
  Api api{};
  Bind(api.GetVersion, lib, "ncclGetVersion");
  Bind(api.GetUniqueId, lib, "ncclGetUniqueId");
  Bind(api.CommInitRank, lib, "ncclCommInitRank");
  Bind(api.CommDestroy, lib, "ncclCommDestroy");
  Bind(api.CommAbort, lib, "ncclCommAbort");
  Bind(api.GetErrorString, lib, "ncclGetErrorString");
  Bind(api.AllReduce, lib, "ncclAllReduce");
  Bind(api.AllGather, lib, "ncclAllGather");
  Bind(api.ReduceScatter, lib, "ncclReduceScatter");
  Bind(api.Broadcast, lib, "ncclBroadcast");
  Bind(api.Send, lib, "ncclSend");
  Bind(api.Recv, lib, "ncclRecv");
  Bind(api.GroupStart, lib, "ncclGroupStart");
  Bind(api.GroupEnd, lib, "ncclGroupEnd");
  // ncclSend/ncclRecv and ncclAvg need 2.7 and 2.10; the numeric values above are those of 2.x.
  int version = 0;
  ncclResult_t r = api.GetVersion(&version);
  if (r != ncclSuccess) Throw(api.GetErrorString(r), r, "ncclGetVersion");
  if (version < 21000)
    throw std::runtime_error("libnccl reports version code " + std::to_string(version) + "; Aerie needs NCCL >= 2.10");
  return api;
}

}  // namespace

const Api& Load() {
  // Not a function-local static of Api: a failed load must throw again on the next call, not stay
  // half-initialised.
  static std::mutex mu;
  static bool loaded = false;
  static Api api{};
  std::lock_guard<std::mutex> lock(mu);
  if (!loaded) {
    api = LoadApi();
    loaded = true;
  }
  return api;
}

void Check(ncclResult_t result, const char* op) {
  if (result == ncclSuccess) return;
  Throw(Load().GetErrorString(result), result, op);
}

ncclDataType_t DataType(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U8: case DType::Bool: return ncclUint8;
  }
  throw std::invalid_argument("no NCCL type for dtype code " + std::to_string(static_cast<int>(dtype)));
}

ncclRedOp_t RedOp(const std::string& name) {
  if (name == "sum") return ncclSum;
  if (name == "prod") return ncclProd;
  if (name == "max") return ncclMax;
  if (name == "min") return ncclMin;
  if (name == "avg") return ncclAvg;
  throw std::invalid_argument("unknown reduction '" + name + "' (expected sum, prod, max, min or avg)");
}

}  // namespace nccl
}  // namespace aerie
