#!/usr/bin/env bash
# Checks native/kernels/cublaslt_api.h against the real cublasLt.h: every enum value the addon
# declares, the sizes and field offsets of the structs returned by value, and each function-pointer
# signature (after mapping our types to cuBLASLt's), by static_assert at compile time. Then it
# loads libcublasLt through the addon's loader and prints the header's and the library's versions.
# Run on a machine with the CUDA 13 toolkit headers (CUDA_HOME, default /usr/local/cuda).
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda_home=${CUDA_HOME:-/usr/local/cuda}
test -f "$cuda_home/include/cublasLt.h" || { echo "check_cublaslt_abi: no cublasLt.h in $cuda_home/include (set CUDA_HOME)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/check.cc" <<'CC'
#include <cublasLt.h>

#include <cstddef>
#include <cstdio>
#include <exception>
#include <type_traits>

#include "cublaslt_api.h"

namespace a = aerie::cublaslt;

#define SAME_VALUE(name) \
  static_assert(static_cast<long long>(a::name) == static_cast<long long>(::name), #name " differs from cublasLt.h");
SAME_VALUE(CUBLAS_STATUS_SUCCESS) SAME_VALUE(CUBLAS_STATUS_NOT_INITIALIZED) SAME_VALUE(CUBLAS_STATUS_ALLOC_FAILED)
SAME_VALUE(CUBLAS_STATUS_INVALID_VALUE) SAME_VALUE(CUBLAS_STATUS_ARCH_MISMATCH) SAME_VALUE(CUBLAS_STATUS_MAPPING_ERROR)
SAME_VALUE(CUBLAS_STATUS_EXECUTION_FAILED) SAME_VALUE(CUBLAS_STATUS_INTERNAL_ERROR) SAME_VALUE(CUBLAS_STATUS_NOT_SUPPORTED)
SAME_VALUE(CUBLAS_STATUS_LICENSE_ERROR)
SAME_VALUE(CUBLAS_OP_N) SAME_VALUE(CUBLAS_OP_T)
SAME_VALUE(CUBLAS_COMPUTE_32F) SAME_VALUE(CUBLAS_COMPUTE_32F_FAST_TF32)
SAME_VALUE(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE) SAME_VALUE(CUBLASLT_MATMUL_DESC_SCALE_TYPE)
SAME_VALUE(CUBLASLT_MATMUL_DESC_POINTER_MODE) SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSA) SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSB)
SAME_VALUE(CUBLASLT_MATMUL_DESC_EPILOGUE) SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_POINTER)
SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE) SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE)
SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_TYPE) SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_ORDER) SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_ROWS)
SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_COLS) SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_LD) SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT)
SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET)
SAME_VALUE(CUBLASLT_MATMUL_PREF_SEARCH_MODE) SAME_VALUE(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
SAME_VALUE(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK) SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES)
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES) SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES)
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES)
SAME_VALUE(CUBLASLT_ALGO_CONFIG_SPLITK_NUM) SAME_VALUE(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME)
SAME_VALUE(CUBLASLT_EPILOGUE_DEFAULT) SAME_VALUE(CUBLASLT_EPILOGUE_BIAS)
SAME_VALUE(CUBLASLT_REDUCTION_SCHEME_NONE) SAME_VALUE(CUBLASLT_REDUCTION_SCHEME_INPLACE)
SAME_VALUE(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE) SAME_VALUE(CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE)

#define SAME_SIZE(name) static_assert(sizeof(a::name) == sizeof(::name), #name " size differs from cublasLt.h");
SAME_SIZE(cublasStatus_t) SAME_SIZE(cublasOperation_t) SAME_SIZE(cublasComputeType_t)
SAME_SIZE(cublasLtMatmulDescAttributes_t) SAME_SIZE(cublasLtMatrixLayoutAttribute_t)
SAME_SIZE(cublasLtMatmulPreferenceAttributes_t) SAME_SIZE(cublasLtMatmulAlgoConfigAttributes_t) SAME_SIZE(cublasLtEpilogue_t)
SAME_SIZE(cublasLtHandle_t) SAME_SIZE(cublasLtMatmulDesc_t) SAME_SIZE(cublasLtMatrixLayout_t)
SAME_SIZE(cublasLtMatmulPreference_t) SAME_SIZE(cublasLtMatmulAlgo_t) SAME_SIZE(cublasLtMatmulHeuristicResult_t)
static_assert(alignof(a::cublasLtMatmulHeuristicResult_t) == alignof(::cublasLtMatmulHeuristicResult_t), "heuristic result alignment differs");
#define SAME_OFFSET(field) \
  static_assert(offsetof(a::cublasLtMatmulHeuristicResult_t, field) == offsetof(::cublasLtMatmulHeuristicResult_t, field), \
                "cublasLtMatmulHeuristicResult_t::" #field " offset differs");
SAME_OFFSET(algo) SAME_OFFSET(workspaceSize) SAME_OFFSET(state) SAME_OFFSET(wavesCount) SAME_OFFSET(reserved)

// Our type -> cuBLASLt's, applied through function-pointer types.
template <typename T> struct Real { using type = T; };
#define MAP(name) \
  template <> struct Real<a::name> { using type = ::name; }; \
  template <> struct Real<a::name*> { using type = ::name*; }; \
  template <> struct Real<const a::name*> { using type = const ::name*; };
MAP(cublasStatus_t) MAP(cublasComputeType_t) MAP(cublasLtMatmulDescAttributes_t) MAP(cublasLtMatrixLayoutAttribute_t)
MAP(cublasLtMatmulPreferenceAttributes_t) MAP(cublasLtHandle_t) MAP(cublasLtMatmulDesc_t) MAP(cublasLtMatrixLayout_t)
MAP(cublasLtMatmulPreference_t) MAP(cublasLtMatmulAlgoConfigAttributes_t) MAP(cublasLtMatmulAlgo_t) MAP(cublasLtMatmulHeuristicResult_t)
template <typename R, typename... A> struct Real<R (*)(A...)> { using type = typename Real<R>::type (*)(typename Real<A>::type...); };

#define SAME_SIGNATURE(fn) \
  static_assert(std::is_same<Real<decltype(a::Api::fn)>::type, decltype(&::fn)>::value, #fn " signature differs from cublasLt.h");
SAME_SIGNATURE(cublasLtCreate) SAME_SIGNATURE(cublasLtDestroy) SAME_SIGNATURE(cublasLtGetStatusString)
SAME_SIGNATURE(cublasLtGetVersion) SAME_SIGNATURE(cublasLtMatmulDescCreate) SAME_SIGNATURE(cublasLtMatmulDescDestroy)
SAME_SIGNATURE(cublasLtMatmulDescSetAttribute) SAME_SIGNATURE(cublasLtMatrixLayoutCreate)
SAME_SIGNATURE(cublasLtMatrixLayoutDestroy) SAME_SIGNATURE(cublasLtMatrixLayoutSetAttribute)
SAME_SIGNATURE(cublasLtMatmulPreferenceCreate) SAME_SIGNATURE(cublasLtMatmulPreferenceDestroy)
SAME_SIGNATURE(cublasLtMatmulPreferenceSetAttribute) SAME_SIGNATURE(cublasLtMatmulAlgoGetHeuristic) SAME_SIGNATURE(cublasLtMatmulAlgoConfigGetAttribute)
SAME_SIGNATURE(cublasLtMatmul)

int main() {
  std::printf("check_cublaslt_abi: cublaslt_api.h matches cublasLt.h (CUBLAS_VERSION %d)\n", CUBLAS_VERSION);
  try {
    std::printf("check_cublaslt_abi: libcublasLt loaded through the addon's loader reports version %zu\n",
                a::GetApi().cublasLtGetVersion());
  } catch (const std::exception& e) {
    std::printf("check_cublaslt_abi: libcublasLt not loadable here (%s)\n", e.what());
    return 1;
  }
  return 0;
}
CC

${CXX:-g++} -std=c++17 -Wall -DAERIE_WITH_CUDA=1 -I "$cuda_home/include" -I native/src -I native/kernels \
  "$work/check.cc" native/kernels/cublaslt_api.cc native/src/dynlib.cc -L "$cuda_home/lib64" -lcudart -ldl -o "$work/check"
"$work/check"
