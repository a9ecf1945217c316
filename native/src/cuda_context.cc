#include "cuda_context.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <sstream>
#include <vector>

#include "allocator.h"

#if defined(AERIE_WITH_CUDA)
#include <cuda_profiler_api.h>
#endif

namespace aerie {

#if defined(AERIE_WITH_CUDA)
namespace {

struct DeviceState {
  cudaStream_t default_stream = nullptr;
  cudaStream_t current = nullptr;
  void* pinned = nullptr;  // staging buffer for host<->device copies
  size_t pinned_bytes = 0;
  bool capturing = false;
  uint64_t graph_id = 0;  // the graph being captured
};

constexpr size_t kStagingBytes = 16u << 20;
std::mutex g_mu;
std::vector<DeviceState> g_devices;
int g_count = -1;
std::string g_reason;
uint64_t g_next_graph_id = 1;

void Init() {
  if (g_count >= 0) return;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    // No driver or no GPU (e.g. "CUDA driver version is insufficient"): a CPU machine, not a crash.
    g_reason = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
    cudaGetLastError();
    n = 0;
  } else if (n == 0) {
    g_reason = "no CUDA device found";
  }
  g_count = n;
  g_devices.resize(n);
}

DeviceState& State(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  Init();
  if (device < 0 || device >= g_count) {
    std::ostringstream msg;
    msg << "cuda:" << device << " does not exist (" << g_count << " CUDA device(s) present"
        << (g_reason.empty() ? "" : "; " + g_reason) << ")";
    throw std::runtime_error(msg.str());
  }
  return g_devices[device];
}

}  // namespace

int CudaDeviceCount() {
  std::lock_guard<std::mutex> lock(g_mu);
  Init();
  return g_count;
}

std::string CudaUnavailableReason() {
  std::lock_guard<std::mutex> lock(g_mu);
  Init();
  return g_reason;
}

void RequireCudaDevice(int device, const char* op) {
  try {
    State(device);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(op) + ": " + e.what());
  }
}

void CheckCuda(int status, const char* op) {
  if (status == cudaSuccess) return;
  auto err = static_cast<cudaError_t>(status);
  throw std::runtime_error(std::string(op) + ": CUDA error " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

void CheckLaunch(const char* op) { CheckCuda(cudaGetLastError(), op); }

DeviceGuard::DeviceGuard(int device) {
  cudaGetDevice(&previous_);
  if (previous_ != device) CheckCuda(cudaSetDevice(device), "cudaSetDevice");
}
DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

std::mutex g_stream_mu;  // lazy creation of the default streams

cudaStream_t CurrentStream(int device) {
  DeviceState& s = State(device);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  if (s.current) return s.current;
  DeviceGuard guard(device);
  CheckCuda(cudaStreamCreateWithFlags(&s.default_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  s.current = s.default_stream;
  return s.current;
}

void SetCurrentStream(int device, cudaStream_t stream) {
  DeviceState& s = State(device);
  if (!stream) {
    CurrentStream(device);
    std::lock_guard<std::mutex> lock(g_stream_mu);
    s.current = s.default_stream;
  } else {
    s.current = stream;
  }
}

cudaStream_t CreateStream(int device) {
  State(device);
  DeviceGuard guard(device);
  cudaStream_t stream;
  CheckCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  return stream;
}

void DestroyStream(int device, cudaStream_t stream) {
  DeviceState& s = State(device);
  if (s.current == stream) s.current = s.default_stream;
  DeviceGuard guard(device);
  cudaStreamDestroy(stream);
}

void SynchronizeStream(int device, cudaStream_t stream) {
  DeviceGuard guard(device);
  CheckCuda(cudaStreamSynchronize(stream ? stream : CurrentStream(device)), "cudaStreamSynchronize");
}

void SynchronizeDevice(int device) {
  DeviceGuard guard(device);
  CheckCuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void SetProfilerActive(int device, bool on) {
  DeviceGuard guard(device);
  CheckCuda(on ? cudaProfilerStart() : cudaProfilerStop(), on ? "cudaProfilerStart" : "cudaProfilerStop");
}

cudaEvent_t CreateEvent(int device, bool timing) {
  State(device);
  DeviceGuard guard(device);
  cudaEvent_t ev;
  CheckCuda(cudaEventCreateWithFlags(&ev, timing ? cudaEventDefault : cudaEventDisableTiming), "cudaEventCreate");
  return ev;
}
void DestroyEvent(cudaEvent_t event) { cudaEventDestroy(event); }
void RecordEvent(cudaEvent_t event, cudaStream_t stream) { CheckCuda(cudaEventRecord(event, stream), "cudaEventRecord"); }
void StreamWaitEvent(cudaStream_t stream, cudaEvent_t event) {
  CheckCuda(cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent");
}
void SynchronizeEvent(cudaEvent_t event) { CheckCuda(cudaEventSynchronize(event), "cudaEventSynchronize"); }
float EventElapsedMs(cudaEvent_t start, cudaEvent_t end) {
  float ms = 0;
  CheckCuda(cudaEventElapsedTime(&ms, start, end), "cudaEventElapsedTime");
  return ms;
}

void BeginGraphCapture(int device) {
  DeviceState& s = State(device);
  if (s.capturing) throw std::runtime_error("beginCapture: cuda:" + std::to_string(device) + " is already capturing a graph");
  cudaStream_t stream = CurrentStream(device);
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    id = g_next_graph_id++;
  }
  DeviceGuard guard(device);
  BeginCaptureHold(device, id);
  // Relaxed: a cache miss in the allocator may still call cudaMalloc while capturing.
  cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    EndCaptureHold(device);
    ReleaseGraphBlocks(device, id);
    CheckCuda(err, "cudaStreamBeginCapture");
  }
  s.capturing = true;
  s.graph_id = id;
}

cudaGraphExec_t EndGraphCapture(int device, uint64_t* graph_id) {
  DeviceState& s = State(device);
  if (!s.capturing) throw std::runtime_error("endCapture: cuda:" + std::to_string(device) + " is not capturing");
  DeviceGuard guard(device);
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(CurrentStream(device), &graph);
  s.capturing = false;
  EndCaptureHold(device);
  *graph_id = s.graph_id;
  if (err != cudaSuccess) {
    ReleaseGraphBlocks(device, s.graph_id);
    CheckCuda(err, "cudaStreamEndCapture (an op in the captured region synchronised or copied to the host?)");
  }
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) ReleaseGraphBlocks(device, s.graph_id);
  CheckCuda(err, "cudaGraphInstantiate");
  return exec;
}

void ReplayGraph(int device, cudaGraphExec_t graph) {
  DeviceGuard guard(device);
  CheckCuda(cudaGraphLaunch(graph, CurrentStream(device)), "cudaGraphLaunch");
}

void DestroyGraph(int device, cudaGraphExec_t graph, uint64_t graph_id) {
  DeviceGuard guard(device);
  // Replays may still run, on whichever stream they were launched: wait for the whole device before
  // the blocks they use go back to the pool.
  cudaDeviceSynchronize();
  cudaGraphExecDestroy(graph);
  ReleaseGraphBlocks(device, graph_id);
}

bool IsCapturing(int device) { return State(device).capturing; }

namespace {
void* Staging(int device, DeviceState& s) {
  if (s.capturing) throw std::runtime_error("host<->device copies are not allowed while capturing a CUDA graph");
  if (!s.pinned) {
    DeviceGuard guard(device);
    CheckCuda(cudaMallocHost(&s.pinned, kStagingBytes), "cudaMallocHost (pinned staging buffer)");
    s.pinned_bytes = kStagingBytes;
  }
  return s.pinned;
}
}  // namespace

// One staging buffer per device: copies from several threads (worker threads each load the addon)
// take turns.
std::mutex g_copy_mu;

void CopyHostToDevice(int device, void* dst, const void* src, size_t bytes) {
  std::lock_guard<std::mutex> copy_lock(g_copy_mu);
  DeviceState& s = State(device);
  DeviceGuard guard(device);
  cudaStream_t stream = CurrentStream(device);
  auto* staging = static_cast<char*>(Staging(device, s));
  for (size_t done = 0; done < bytes; done += s.pinned_bytes) {
    size_t n = std::min(s.pinned_bytes, bytes - done);
    memcpy(staging, static_cast<const char*>(src) + done, n);
    CheckCuda(cudaMemcpyAsync(static_cast<char*>(dst) + done, staging, n, cudaMemcpyHostToDevice, stream), "copy host->device");
    CheckCuda(cudaStreamSynchronize(stream), "copy host->device");
  }
}

void CopyDeviceToHost(int device, void* dst, const void* src, size_t bytes) {
  std::lock_guard<std::mutex> copy_lock(g_copy_mu);
  DeviceState& s = State(device);
  DeviceGuard guard(device);
  cudaStream_t stream = CurrentStream(device);
  auto* staging = static_cast<char*>(Staging(device, s));
  for (size_t done = 0; done < bytes; done += s.pinned_bytes) {
    size_t n = std::min(s.pinned_bytes, bytes - done);
    CheckCuda(cudaMemcpyAsync(staging, static_cast<const char*>(src) + done, n, cudaMemcpyDeviceToHost, stream), "copy device->host");
    CheckCuda(cudaStreamSynchronize(stream), "copy device->host");
    memcpy(static_cast<char*>(dst) + done, staging, n);
  }
}

void CopyDeviceToDevice(int dst_device, void* dst, int src_device, const void* src, size_t bytes) {
  DeviceGuard guard(dst_device);
  cudaStream_t stream = CurrentStream(dst_device);
  if (dst_device == src_device) {
    CheckCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), "copy device->device");
  } else {
    // The source's pending work must finish first: its stream is not ordered with ours.
    SynchronizeStream(src_device, nullptr);
    CheckCuda(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, bytes, stream), "copy peer->device");
    // The source block may be freed and reused on its own device's stream right after this call:
    // that stream must wait until the copy has read it.
    cudaEvent_t done = nullptr;
    CheckCuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "copy peer->device");
    CheckCuda(cudaEventRecord(done, stream), "copy peer->device");
    cudaStream_t src_stream = CurrentStream(src_device);
    {
      DeviceGuard src_guard(src_device);
      CheckCuda(cudaStreamWaitEvent(src_stream, done, 0), "copy peer->device");
    }
    cudaEventDestroy(done);
  }
}

void MemsetDevice(int device, void* dst, int value, size_t bytes) {
  DeviceGuard guard(device);
  CheckCuda(cudaMemsetAsync(dst, value, bytes, CurrentStream(device)), "cudaMemsetAsync");
}

void DeviceMemoryInfo(int device, size_t* free_bytes, size_t* total_bytes) {
  State(device);
  DeviceGuard guard(device);
  CheckCuda(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

std::string DeviceName(int device) {
  State(device);
  cudaDeviceProp prop;
  CheckCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

#else  // CPU-only build: no devices; every CUDA entry point throws.

namespace {
[[noreturn]] void NoCuda(const char* op) {
  throw std::runtime_error(std::string(op) +
                           ": this addon was built without CUDA (no nvcc at build time); rebuild with nvcc on PATH: npm run build:native");
}
}  // namespace

int CudaDeviceCount() { return 0; }
std::string CudaUnavailableReason() { return "the addon was built without CUDA"; }
void RequireCudaDevice(int, const char* op) { NoCuda(op); }
void CheckCuda(int status, const char* op) {
  if (status != 0) NoCuda(op);
}
void CheckLaunch(const char*) {}
DeviceGuard::DeviceGuard(int) { NoCuda("DeviceGuard"); }
DeviceGuard::~DeviceGuard() {}
cudaStream_t CurrentStream(int) { NoCuda("CurrentStream"); }
void SetCurrentStream(int, cudaStream_t) { NoCuda("setCurrentStream"); }
cudaStream_t CreateStream(int) { NoCuda("createStream"); }
void DestroyStream(int, cudaStream_t) {}
void SynchronizeStream(int, cudaStream_t) { NoCuda("synchronize"); }
void SynchronizeDevice(int) { NoCuda("synchronize"); }
void SetProfilerActive(int, bool) { NoCuda("profilerRange"); }
cudaEvent_t CreateEvent(int, bool) { NoCuda("createEvent"); }
void DestroyEvent(cudaEvent_t) {}
void RecordEvent(cudaEvent_t, cudaStream_t) { NoCuda("recordEvent"); }
void StreamWaitEvent(cudaStream_t, cudaEvent_t) { NoCuda("streamWaitEvent"); }
void SynchronizeEvent(cudaEvent_t) { NoCuda("synchronizeEvent"); }
float EventElapsedMs(cudaEvent_t, cudaEvent_t) { NoCuda("elapsedTime"); }
void BeginGraphCapture(int) { NoCuda("beginCapture"); }
cudaGraphExec_t EndGraphCapture(int, uint64_t*) { NoCuda("endCapture"); }
void ReplayGraph(int, cudaGraphExec_t) { NoCuda("replay"); }
void DestroyGraph(int, cudaGraphExec_t, uint64_t) {}
bool IsCapturing(int) { return false; }
void CopyHostToDevice(int, void*, const void*, size_t) { NoCuda("copy host->device"); }
void CopyDeviceToHost(int, void*, const void*, size_t) { NoCuda("copy device->host"); }
void CopyDeviceToDevice(int, void*, int, const void*, size_t) { NoCuda("copy device->device"); }
void MemsetDevice(int, void*, int, size_t) { NoCuda("memset"); }
void DeviceMemoryInfo(int, size_t*, size_t*) { NoCuda("memoryInfo"); }
std::string DeviceName(int) { NoCuda("deviceName"); }

#endif

}  // namespace aerie
