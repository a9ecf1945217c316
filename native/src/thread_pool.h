// A small persistent thread pool for the CPU twins. ParallelFor splits [0, n) into chunks of at
// least `grain` items; the calling thread works too. Threads: AERIE_CPU_THREADS or the core count.
#pragma once
#include <cstdint>
#include <functional>

namespace aerie {
int CpuThreadCount();
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);
}  // namespace aerie
