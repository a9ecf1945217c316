#include "allocator.h"

#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "cuda_context.h"

namespace aerie {

#if defined(AERIE_WITH_CUDA)
namespace {

constexpr size_t kRound = 512;            // every block is a multiple of this
constexpr size_t kSmall = 1 << 20;        // below: a cached block may be up to 2x the request
constexpr size_t kMaxDevices = 64;

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;       // size -> ptr
  std::unordered_map<void*, size_t> live;         // handed out: ptr -> block size
  std::unordered_map<void*, size_t> sizes;        // every block we own: ptr -> size
  std::map<uint64_t, std::vector<void*>> graph_held;
  // Blocks allocated while a graph was captured and still live: replays write them, so when they
  // are freed they must stay with that graph (not return to the pool) until it is destroyed.
  std::unordered_map<void*, uint64_t> captured_live;
  uint64_t capturing_graph = 0;                   // 0: not capturing
  AllocatorStats stats;
};

Pool& GetPool(int device) {
  static Pool pools[kMaxDevices];
  if (device < 0 || device >= static_cast<int>(kMaxDevices)) throw std::out_of_range("device index out of range");
  return pools[device];
}

std::string Mib(uint64_t b) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << (static_cast<double>(b) / (1024.0 * 1024.0)) << " MiB";
  return s.str();
}

void ReleaseCached(int device, Pool& pool) {
  DeviceGuard guard(device);
  for (auto& kv : pool.free_blocks) {
    cudaFree(kv.second);
    pool.stats.bytes_reserved -= kv.first;
    pool.sizes.erase(kv.second);
  }
  pool.free_blocks.clear();
}

}  // namespace

void* DeviceAlloc(int device, size_t bytes) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  size_t size = ((bytes == 0 ? 1 : bytes) + kRound - 1) / kRound * kRound;
  size_t limit = size < kSmall ? size * 2 : size + size / 8;
  auto it = pool.free_blocks.lower_bound(size);
  void* ptr = nullptr;
  size_t block = 0;
  if (it != pool.free_blocks.end() && it->first <= limit) {
    ptr = it->second;
    block = it->first;
    pool.free_blocks.erase(it);
  } else {
    DeviceGuard guard(device);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess) {
      cudaGetLastError();
      ReleaseCached(device, pool);
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      std::ostringstream msg;
      msg << "out of device memory on cuda:" << device << ": asked for " << bytes << " bytes (" << Mib(bytes)
          << "), " << Mib(free_b) << " free of " << Mib(total_b) << "; Aerie holds " << Mib(pool.stats.bytes_in_use)
          << " in live tensors and " << Mib(pool.stats.bytes_reserved - pool.stats.bytes_in_use)
          << " cached or held by CUDA graphs";
      throw std::runtime_error(msg.str());
    }
    block = size;
    pool.sizes[ptr] = size;
    pool.stats.bytes_reserved += size;
    pool.stats.num_cuda_mallocs++;
  }
  pool.live[ptr] = block;
  if (pool.capturing_graph) pool.captured_live[ptr] = pool.capturing_graph;
  pool.stats.bytes_in_use += block;
  if (pool.stats.bytes_in_use > pool.stats.peak_bytes_in_use) pool.stats.peak_bytes_in_use = pool.stats.bytes_in_use;
  pool.stats.num_allocs++;
  return ptr;
}

void DeviceFree(int device, void* ptr) {
  if (!ptr) return;
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  auto it = pool.live.find(ptr);
  if (it == pool.live.end()) return;  // not ours (or freed twice): nothing to do
  size_t block = it->second;
  pool.live.erase(it);
  pool.stats.bytes_in_use -= block;
  uint64_t owner = pool.capturing_graph;
  auto cap = pool.captured_live.find(ptr);
  if (cap != pool.captured_live.end()) {
    if (pool.graph_held.count(cap->second)) owner = cap->second;  // that graph is still alive
    pool.captured_live.erase(cap);
  }
  if (owner) {
    pool.graph_held[owner].push_back(ptr);
  } else {
    pool.free_blocks.emplace(block, ptr);
  }
}

AllocatorStats DeviceAllocatorStats(int device) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.stats;
}

void ResetPeakStats(int device) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.stats.peak_bytes_in_use = pool.stats.bytes_in_use;
}

void EmptyCache(int device) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  SynchronizeDevice(device);
  ReleaseCached(device, pool);
}

void BeginCaptureHold(int device, uint64_t graph_id) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.capturing_graph = graph_id;
  pool.graph_held[graph_id];
}

void EndCaptureHold(int device) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.capturing_graph = 0;
}

void ReleaseGraphBlocks(int device, uint64_t graph_id) {
  Pool& pool = GetPool(device);
  std::lock_guard<std::mutex> lock(pool.mu);
  auto it = pool.graph_held.find(graph_id);
  if (it == pool.graph_held.end()) return;
  for (void* p : it->second) pool.free_blocks.emplace(pool.sizes[p], p);
  pool.graph_held.erase(it);
}

#else  // CPU-only build

[[noreturn]] static void NoCuda() {
  throw std::runtime_error("this addon was built without CUDA (no nvcc at build time); rebuild with nvcc on PATH: npm run build:native");
}
void* DeviceAlloc(int, size_t) { NoCuda(); }
void DeviceFree(int, void*) {}
AllocatorStats DeviceAllocatorStats(int) { return AllocatorStats{}; }
void ResetPeakStats(int) {}
void EmptyCache(int) {}
void BeginCaptureHold(int, uint64_t) { NoCuda(); }
void EndCaptureHold(int) {}
void ReleaseGraphBlocks(int, uint64_t) {}

#endif

}  // namespace aerie
