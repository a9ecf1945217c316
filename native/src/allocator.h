// A caching device allocator, one pool per device, in the spirit of PyTorch's: freed blocks are kept
// and handed out again for requests of a similar size, so a fixed-shape training or decode step stops
// calling cudaMalloc after its first iteration (and can be captured in a CUDA graph). Blocks are
// reused in the order of the stream they were freed on; tensors shared across streams must be
// synchronised by the caller. Running out of memory frees the cache, retries once, then throws an
// error that says how much was asked for and how much is free.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aerie {

struct AllocatorStats {
  uint64_t bytes_in_use = 0;     // handed out and not yet freed
  uint64_t peak_bytes_in_use = 0;
  uint64_t bytes_reserved = 0;   // obtained from cudaMalloc (in use + cached + held by graphs)
  uint64_t num_allocs = 0;       // requests served
  uint64_t num_cuda_mallocs = 0; // requests that reached cudaMalloc
};

void* DeviceAlloc(int device, size_t bytes);
void DeviceFree(int device, void* ptr);
AllocatorStats DeviceAllocatorStats(int device);
void ResetPeakStats(int device);
// Returns every cached (free) block to the driver.
void EmptyCache(int device);

// Graph capture support: between Begin and End, freed blocks are held (not reused) and belong to
// the graph being captured; ReleaseGraphBlocks returns them once that graph is destroyed.
void BeginCaptureHold(int device, uint64_t graph_id);
void EndCaptureHold(int device);
void ReleaseGraphBlocks(int device, uint64_t graph_id);

}  // namespace aerie
