// Run-time loading of NVIDIA's libraries (cuBLAS, cuBLASLt, NCCL) through one cached loader, so the
// addon builds without them and loads on machines that lack them. A missing library or symbol is an
// error naming the library, the dlerror text and every path searched; it surfaces only when an op
// that needs the library is first used.
#pragma once
#include <string>
#include <vector>

namespace aerie {

// Folders searched, in order: AERIE_CUDA_LIB_PATH (colon-separated), $CUDA_HOME/lib64,
// /usr/local/cuda/lib64, /usr/lib/x86_64-linux-gnu, then the system loader's own path.
std::vector<std::string> LibrarySearchPath();

// Opens the first of `names` found (e.g. {"libcublasLt.so.13", "libcublasLt.so"}); cached by the
// first name. Throws std::runtime_error describing every attempt when none opens.
void* OpenLibrary(const std::vector<std::string>& names);

// Resolves `symbol` in a handle from OpenLibrary; throws naming the library and symbol.
void* LoadSymbol(void* handle, const char* library, const char* symbol);

}  // namespace aerie
