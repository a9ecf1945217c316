// The CUDA side of the runtime: device discovery, the current stream per device, events, graph
// capture, and host<->device copies through pinned staging. Every function exists in a CPU-only build
// too and throws there (or reports zero devices), so callers need no #ifdefs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(AERIE_WITH_CUDA)
#include <cuda_runtime.h>
#else
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;
#endif

namespace aerie {

constexpr bool kBuiltWithCuda =
#if defined(AERIE_WITH_CUDA)
    true;
#else
    false;
#endif

// Number of usable CUDA devices; 0 when built without CUDA or when no driver/GPU is present.
int CudaDeviceCount();
// Why CudaDeviceCount() is 0 (empty when devices exist).
std::string CudaUnavailableReason();
// Throws a clear error unless `device` names a present CUDA device.
void RequireCudaDevice(int device, const char* op);

// Throws "<op>: CUDA error <name>: <text>" when `status` is not cudaSuccess.
void CheckCuda(int status, const char* op);
// Checks cudaGetLastError after a kernel launch.
void CheckLaunch(const char* op);

// RAII: makes `device` current for this thread for the scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
 private:
  int previous_ = -1;
};

// The stream kernels on `device` are launched on. By default a non-blocking stream that the runtime
// creates once per device; SetCurrentStream swaps it (nullptr restores the default).
cudaStream_t CurrentStream(int device);
void SetCurrentStream(int device, cudaStream_t stream);
cudaStream_t CreateStream(int device);
void DestroyStream(int device, cudaStream_t stream);
void SynchronizeStream(int device, cudaStream_t stream);
void SynchronizeDevice(int device);
// cudaProfilerStart / Stop: brackets the region a profiler started with --profile-from-start off records.
void SetProfilerActive(int device, bool on);

cudaEvent_t CreateEvent(int device, bool timing);
void DestroyEvent(cudaEvent_t event);
void RecordEvent(cudaEvent_t event, cudaStream_t stream);
void StreamWaitEvent(cudaStream_t stream, cudaEvent_t event);
void SynchronizeEvent(cudaEvent_t event);
float EventElapsedMs(cudaEvent_t start, cudaEvent_t end);

// Graph capture of everything launched on `device`'s current stream between Begin and End; the
// allocator holds every block freed during capture until the graph is destroyed (see allocator.h).
void BeginGraphCapture(int device);
// Returns an instantiated graph; `graph_id` names the blocks it holds.
cudaGraphExec_t EndGraphCapture(int device, uint64_t* graph_id);
void ReplayGraph(int device, cudaGraphExec_t graph);
void DestroyGraph(int device, cudaGraphExec_t graph, uint64_t graph_id);
bool IsCapturing(int device);

// Copies, synchronous with respect to the host, ordered on the current stream.
void CopyHostToDevice(int device, void* dst, const void* src, size_t bytes);
void CopyDeviceToHost(int device, void* dst, const void* src, size_t bytes);
// Device-to-device (same or peer device) on the destination's current stream, asynchronous.
void CopyDeviceToDevice(int dst_device, void* dst, int src_device, const void* src, size_t bytes);
void MemsetDevice(int device, void* dst, int value, size_t bytes);

// (free, total) bytes on `device`.
void DeviceMemoryInfo(int device, size_t* free_bytes, size_t* total_bytes);
std::string DeviceName(int device);

}  // namespace aerie
