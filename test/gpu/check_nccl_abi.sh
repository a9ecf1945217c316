#!/usr/bin/env bash
# Checks native/kernels/nccl_api.h against the real nccl.h: every enum value the addon uses, the size
# of ncclUniqueId and of the enums, and each function-pointer signature (after mapping our types to
# NCCL's) must match, by static_assert at compile time. Then, where libnccl is installed, it loads the
# library through the addon's loader and prints the header's and the library's versions.
# Run on a machine with nccl.h (default /usr/include; NCCL_INCLUDE overrides) and the CUDA headers.
set -euo pipefail
cd "$(dirname "$0")/../.."
nccl_inc=${NCCL_INCLUDE:-/usr/include}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
test -f "$nccl_inc/nccl.h" || { echo "check_nccl_abi: no nccl.h in $nccl_inc (set NCCL_INCLUDE)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/check.cc" <<'CC'
#include <nccl.h>

#include <cstdio>
#include <type_traits>

#include "nccl_api.h"

namespace a = aerie::nccl;

#define SAME_VALUE(name) static_assert(static_cast<int>(a::name) == static_cast<int>(::name), #name " differs from nccl.h");
SAME_VALUE(ncclSuccess) SAME_VALUE(ncclUnhandledCudaError) SAME_VALUE(ncclSystemError) SAME_VALUE(ncclInternalError)
SAME_VALUE(ncclInvalidArgument) SAME_VALUE(ncclInvalidUsage) SAME_VALUE(ncclRemoteError) SAME_VALUE(ncclInProgress)
SAME_VALUE(ncclSum) SAME_VALUE(ncclProd) SAME_VALUE(ncclMax) SAME_VALUE(ncclMin) SAME_VALUE(ncclAvg)
SAME_VALUE(ncclInt8) SAME_VALUE(ncclUint8) SAME_VALUE(ncclInt32) SAME_VALUE(ncclUint32) SAME_VALUE(ncclInt64)
SAME_VALUE(ncclUint64) SAME_VALUE(ncclFloat16) SAME_VALUE(ncclFloat32) SAME_VALUE(ncclFloat64) SAME_VALUE(ncclBfloat16)

static_assert(a::kUniqueIdBytes == NCCL_UNIQUE_ID_BYTES, "NCCL_UNIQUE_ID_BYTES differs");
static_assert(sizeof(a::ncclUniqueId) == sizeof(::ncclUniqueId), "ncclUniqueId size differs");
static_assert(alignof(a::ncclUniqueId) == alignof(::ncclUniqueId), "ncclUniqueId alignment differs");
static_assert(sizeof(a::ncclResult_t) == sizeof(::ncclResult_t), "ncclResult_t size differs");
static_assert(sizeof(a::ncclRedOp_t) == sizeof(::ncclRedOp_t), "ncclRedOp_t size differs");
static_assert(sizeof(a::ncclDataType_t) == sizeof(::ncclDataType_t), "ncclDataType_t size differs");
static_assert(sizeof(a::ncclComm_t) == sizeof(::ncclComm_t), "ncclComm_t size differs");

// Our type -> NCCL's, applied through function-pointer types.
template <typename T> struct Real { using type = T; };
template <> struct Real<a::ncclResult_t> { using type = ::ncclResult_t; };
template <> struct Real<a::ncclRedOp_t> { using type = ::ncclRedOp_t; };
template <> struct Real<a::ncclDataType_t> { using type = ::ncclDataType_t; };
template <> struct Real<a::ncclUniqueId> { using type = ::ncclUniqueId; };
template <> struct Real<a::ncclUniqueId*> { using type = ::ncclUniqueId*; };
template <> struct Real<a::ncclComm_t> { using type = ::ncclComm_t; };
template <> struct Real<a::ncclComm_t*> { using type = ::ncclComm_t*; };
template <typename R, typename... A> struct Real<R (*)(A...)> { using type = typename Real<R>::type (*)(typename Real<A>::type...); };

#define SAME_SIGNATURE(field, fn) \
  static_assert(std::is_same<Real<decltype(a::Api::field)>::type, decltype(&::fn)>::value, #fn " signature differs from nccl.h");
SAME_SIGNATURE(GetVersion, ncclGetVersion)
SAME_SIGNATURE(GetUniqueId, ncclGetUniqueId)
SAME_SIGNATURE(CommInitRank, ncclCommInitRank)
SAME_SIGNATURE(CommDestroy, ncclCommDestroy)
SAME_SIGNATURE(CommAbort, ncclCommAbort)
SAME_SIGNATURE(GetErrorString, ncclGetErrorString)
SAME_SIGNATURE(AllReduce, ncclAllReduce)
SAME_SIGNATURE(AllGather, ncclAllGather)
SAME_SIGNATURE(ReduceScatter, ncclReduceScatter)
SAME_SIGNATURE(Broadcast, ncclBroadcast)
SAME_SIGNATURE(Send, ncclSend)
SAME_SIGNATURE(Recv, ncclRecv)
SAME_SIGNATURE(GroupStart, ncclGroupStart)
SAME_SIGNATURE(GroupEnd, ncclGroupEnd)

int main() {
  std::printf("check_nccl_abi: nccl_api.h matches nccl.h %d.%d.%d (NCCL_VERSION_CODE %d)\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH,
              NCCL_VERSION_CODE);
  try {
    int version = 0;
    a::Check(a::Load().GetVersion(&version), "ncclGetVersion");
    std::printf("check_nccl_abi: libnccl loaded through the addon's loader reports version code %d\n", version);
  } catch (const std::exception& e) {
    std::printf("check_nccl_abi: libnccl not loadable here (%s)\n", e.what());
  }
  return 0;
}
CC

${CXX:-g++} -std=c++17 -Wall -DAERIE_WITH_CUDA=1 -I "$nccl_inc" -I "$cuda_home/include" -I native/src -I native/kernels \
  "$work/check.cc" native/kernels/nccl_api.cc native/src/dynlib.cc -ldl -o "$work/check"
"$work/check"
