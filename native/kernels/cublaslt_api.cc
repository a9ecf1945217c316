// Run-time loading of cuBLASLt (see cublaslt_api.h).
#if defined(AERIE_WITH_CUDA)
#include "cublaslt_api.h"

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "dynlib.h"

namespace aerie {
namespace cublaslt {
namespace {

const char* kLibrary = "libcublasLt.so.13";

template <typename Fn>
void Resolve(void* lib, Fn& fn, const char* name) {
  fn = reinterpret_cast<Fn>(LoadSymbol(lib, kLibrary, name));
}

Api Load() {
  void* lib = nullptr;
  try {
    lib = OpenLibrary({kLibrary, "libcublasLt.so"});
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cuBLASLt (needed for matmul on CUDA) could not be loaded: ") + e.what());
  }
  Api api{};
#define AERIE_RESOLVE(name) Resolve(lib, api.name, #name)
  AERIE_RESOLVE(cublasLtCreate);
  AERIE_RESOLVE(cublasLtDestroy);
  AERIE_RESOLVE(cublasLtGetStatusString);
  AERIE_RESOLVE(cublasLtGetVersion);
  AERIE_RESOLVE(cublasLtMatmulDescCreate);
  AERIE_RESOLVE(cublasLtMatmulDescDestroy);
  AERIE_RESOLVE(cublasLtMatmulDescSetAttribute);
  AERIE_RESOLVE(cublasLtMatrixLayoutCreate);
  AERIE_RESOLVE(cublasLtMatrixLayoutDestroy);
  AERIE_RESOLVE(cublasLtMatrixLayoutSetAttribute);
  AERIE_RESOLVE(cublasLtMatmulPreferenceCreate);
  AERIE_RESOLVE(cublasLtMatmulPreferenceDestroy);
  AERIE_RESOLVE(cublasLtMatmulPreferenceSetAttribute);
  AERIE_RESOLVE(cublasLtMatmulAlgoGetHeuristic);
  AERIE_RESOLVE(cublasLtMatmulAlgoConfigGetAttribute);
  AERIE_RESOLVE(cublasLtMatmul);
#undef AERIE_RESOLVE
  // The declared values and struct layouts are cuBLAS 13's (unchanged since 12); refuse other
  // majors rather than pass descriptors the library would misread.
  size_t version = api.cublasLtGetVersion();  // major * 10000 + minor * 100 + patch
  if (version / 10000 < 12 || version / 10000 > 13)
    throw std::runtime_error("cuBLASLt " + std::to_string(version) + " was loaded, but Aerie declares the cuBLAS 12/13 "
                             "ABI; point AERIE_CUDA_LIB_PATH at CUDA 13's libcublasLt.so.13");
  return api;
}

}  // namespace

const Api& GetApi() {
  static std::mutex mu;
  static std::unique_ptr<Api> api;  // set only once loading has fully succeeded
  std::lock_guard<std::mutex> lock(mu);
  if (!api) api.reset(new Api(Load()));
  return *api;
}

void Check(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const char* text = GetApi().cublasLtGetStatusString(status);
  throw std::runtime_error(std::string(what) + " failed: " + (text ? text : "unknown status") + " (cublasStatus_t " +
                           std::to_string(static_cast<int>(status)) + ")");
}

cublasLtHandle_t HandleFor(int device) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;  // kept for the life of the process
  const Api& api = GetApi();
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  int previous = -1;
  cudaGetDevice(&previous);
  cudaSetDevice(device);
  cublasLtHandle_t handle = nullptr;
  cublasStatus_t status = api.cublasLtCreate(&handle);
  cudaSetDevice(previous);
  Check(status, "cublasLtCreate");
  return handles[device] = handle;
}

}  // namespace cublaslt
}  // namespace aerie
#endif  // AERIE_WITH_CUDA
