// Programmatic dependent launch (PDL, sm_90+): a kernel launched with LaunchPdl may start while the
// kernel before it on the stream is still finishing, so its launch and whatever it reads that the
// earlier kernel does not write (weights) overlap that kernel's tail. Decode runs ~7 small kernels a
// layer, each a few microseconds; without PDL every boundary costs a full drain and ramp.
//
// The contract for a kernel launched with LaunchPdl:
//   - before PdlWaitForPrimary() it may only READ memory that no earlier kernel in the stream writes
//     (weights, constants); it must not write anything at all (an earlier kernel may still read it);
//     one exception, stated by the kernel that uses it: memory written only before an earlier kernel
//     that was launched without PDL or calls PdlAllowDependents() after its wait (everything before
//     such a kernel has completed once a later kernel starts). The fused GEMV lets dependents launch
//     only after its wait, and the paged attention reads the keys of earlier steps before its own;
//   - PdlWaitForPrimary() returns once the previous kernel has completed and its writes are visible
//     (and, transitively, everything before it);
//   - PdlAllowDependents() lets the next PDL kernel be scheduled early; it gives no memory guarantee
//     (the next kernel still waits for this one to complete), so it may be called anywhere.
// Both are no-ops when the kernel was launched normally, and on architectures below sm_90.
// AERIE_NO_PDL=1 launches every kernel normally (for A/B timing and bisecting).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace aerie {

__device__ __forceinline__ void PdlWaitForPrimary() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlAllowDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

inline bool PdlEnabled() {
  static const bool on = [] {
    const char* e = std::getenv("AERIE_NO_PDL");
    return !(e && *e && std::string(e) != "0");
  }();
  return on;
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization allowed
// (see the contract above). Throws std::runtime_error when the launch is refused.
template <typename... KernelArgs, typename... Args>
void LaunchPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = PdlEnabled() ? 1 : 0;
  config.attrs = attr;
  config.numAttrs = 1;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (err != cudaSuccess) throw std::runtime_error(std::string("kernel launch failed: ") + cudaGetErrorString(err));
}

}  // namespace aerie
