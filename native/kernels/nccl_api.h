// NCCL 2.x, opened at run time. The few types the addon needs are declared here with exactly the
// numeric values of NCCL 2.28's nccl.h (unchanged since 2.19 for the values used here), so the addon
// builds without nccl.h and links without libnccl. test/gpu/check_nccl_abi.sh compares every value
// and function signature below against the real header with static_asserts.
#pragma once
#include <cstddef>
#include <string>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {
namespace nccl {

constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
typedef struct { char internal[kUniqueIdBytes]; } ncclUniqueId;
typedef struct ncclComm* ncclComm_t;  // opaque

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;

typedef enum {
  ncclSum = 0,
  ncclProd = 1,
  ncclMax = 2,
  ncclMin = 3,
  ncclAvg = 4,
} ncclRedOp_t;

typedef enum {
  ncclInt8 = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclFloat32 = 7,
  ncclFloat64 = 8,
  ncclBfloat16 = 9,
} ncclDataType_t;

// The entry points the addon calls, with nccl.h's signatures.
struct Api {
  ncclResult_t (*GetVersion)(int* version);
  ncclResult_t (*GetUniqueId)(ncclUniqueId* id);
  ncclResult_t (*CommInitRank)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
  ncclResult_t (*CommDestroy)(ncclComm_t comm);
  ncclResult_t (*CommAbort)(ncclComm_t comm);
  const char* (*GetErrorString)(ncclResult_t result);
  ncclResult_t (*AllReduce)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                            ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*AllGather)(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm,
                            cudaStream_t stream);
  ncclResult_t (*ReduceScatter)(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op,
                                ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*Broadcast)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm,
                            cudaStream_t stream);
  ncclResult_t (*Send)(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*Recv)(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*GroupStart)();
  ncclResult_t (*GroupEnd)();
};

// Loads libnccl on first use (cached); throws the loader's error (library, dlerror, every path
// searched) when it or one of the symbols is missing.
const Api& Load();

// Throws "<op>: NCCL error <code> (<ncclGetErrorString>)" unless `result` is ncclSuccess.
void Check(ncclResult_t result, const char* op);

// The NCCL element type of a storage dtype (bool travels as uint8).
ncclDataType_t DataType(DType dtype);
// "sum" | "prod" | "max" | "min" | "avg" -> ncclRedOp_t; throws on anything else.
ncclRedOp_t RedOp(const std::string& name);

}  // namespace nccl
}  // namespace aerie
