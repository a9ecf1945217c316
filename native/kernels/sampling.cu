/*
 * Sampling on CUDA (see sampling.h for the definitions). One CTA of 512 threads per row; the row's
 * logits are read several times (from L2 after the first pass), never copied or sorted:
 *   1. argmax of the ordered keys of s = l / T (greedy rows and empty rows stop here);
 *   2. top-k threshold: radix select of the k-th largest key, four 8-bit digit passes with shared
 *      histograms of counts;
 *   3. W = sum of the masses w_i (64-bit integers: exact, so the order of the sum is irrelevant);
 *   4. top-p cut: the same radix select with histograms of masses instead of counts finds the key
 *      kappa at which the running mass (from the top) reaches floor(p W); the tokens tied at kappa
 *      are admitted in index order, and if only some are, an index-order scan finds the last one;
 *   5. the draw: r = floor(u W' / 2^64), then an index-order block scan of the survivors' masses
 *      finds the token whose running sum first exceeds r.
 * Every decision is made on integers or on floats computed by sampling_math.h's correctly rounded
 * arithmetic, which the CPU twin shares: both pick the same tokens. The probabilities and the
 * in-place filter reuse steps 1-4.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "elementwise_common.cuh"
#include "sampling.h"
#include "sampling_math.h"

namespace aerie {
namespace {

using namespace sampling;
using ew::FromF;
using ew::ToF;

constexpr int kThreads = 512;  // one CTA per row
constexpr int kWarps = kThreads / 32;
constexpr int kItems = 4;  // consecutive elements per thread in the index-order scans

struct KeyIdx {
  uint32_t key;
  int32_t idx;
};

// Larger key wins; equal keys go to the lower index.
__device__ __forceinline__ KeyIdx Better(KeyIdx a, KeyIdx b) { return (a.key > b.key || (a.key == b.key && a.idx < b.idx)) ? a : b; }

// Block-wide reductions: every thread calls them and gets the result.
__device__ KeyIdx BlockArgmax(KeyIdx v, KeyIdx* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    KeyIdx other{__shfl_xor_sync(0xffffffffu, v.key, o), __shfl_xor_sync(0xffffffffu, v.idx, o)};
    v = Better(v, other);
  }
  __syncthreads();  // earlier readers of smem are done
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  KeyIdx r = smem[0];
  for (int i = 1; i < kWarps; ++i) r = Better(r, smem[i]);
  return r;
}

__device__ uint64_t BlockSum(uint64_t v, uint64_t* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  uint64_t r = 0;
  for (int i = 0; i < kWarps; ++i) r += smem[i];
  return r;
}

// Exclusive prefix sum over the block in thread order; *total gets the block's sum.
__device__ uint64_t BlockExclusiveScan(uint64_t v, uint64_t* smem, uint64_t* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint64_t inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    uint64_t n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) smem[warp] = inc;
  __syncthreads();
  uint64_t before = 0, all = 0;
  for (int i = 0; i < kWarps; ++i) {
    if (i < warp) before += smem[i];
    all += smem[i];
  }
  *total = all;
  return before + inc - v;
}

// The first index j (in [0, n)) at which the running sum of value_of(0..j) exceeds target, or -1
// when the whole sum is <= target. value_of must be the same function in every thread.
template <typename ValueFn>
__device__ int64_t FindInPrefix(int64_t n, uint64_t target, ValueFn value_of, uint64_t* scan_smem, int64_t* found_smem) {
  __syncthreads();  // a previous call's readers of *found_smem are done
  if (threadIdx.x == 0) *found_smem = -1;
  uint64_t running = 0;  // identical in every thread
  for (int64_t base = 0; base < n; base += static_cast<int64_t>(kThreads) * kItems) {
    const int64_t first = base + static_cast<int64_t>(threadIdx.x) * kItems;
    uint64_t v[kItems], local = 0;
#pragma unroll
    for (int it = 0; it < kItems; ++it) {
      v[it] = first + it < n ? value_of(first + it) : 0;
      local += v[it];
    }
    uint64_t total;
    uint64_t acc = BlockExclusiveScan(local, scan_smem, &total) + running;  // its syncs also order the reset above
    if (local > 0 && acc <= target && target < acc + local) {
#pragma unroll
      for (int it = 0; it < kItems; ++it) {
        if (target < acc + v[it]) {
          *found_smem = first + it;
          break;
        }
        acc += v[it];
      }
    }
    __syncthreads();
    const int64_t found = *found_smem;
    if (found >= 0) return found;
    running += total;
  }
  return -1;
}

enum class Mode { kSample, kProbs, kFilter };

template <typename T, Mode kMode>
__global__ void __launch_bounds__(kThreads)
    SampleRowsKernel(const T* logits, T* logits_out, int64_t vocab, SamplingParams p, int32_t* tokens, float* probs) {
  __shared__ KeyIdx red_key[kWarps];
  __shared__ uint64_t red_u64[kWarps];
  __shared__ uint32_t count_hist[256];
  __shared__ uint64_t mass_hist[256];
  __shared__ uint32_t sel_digit, sel_count;
  __shared__ uint64_t sel_remaining;
  __shared__ int64_t found;

  const int64_t row = blockIdx.x;
  const T* lrow = logits + row * vocab;
  const float temperature = p.temperature[row];
  auto scaled = [&](int64_t i) { return Scaled(ToF(lrow[i]), temperature); };

  // 1. argmax (the sentinel loses to every token, NaN keys included)
  KeyIdx best{0u, INT_MAX};
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) best = Better(best, KeyIdx{OrderedKey(scaled(i)), static_cast<int32_t>(i)});
  best = BlockArgmax(best, red_key);
  const uint32_t key_max = best.key;
  const int32_t amax = best.idx;
  if (!(temperature > 0.0f) || key_max <= kKeyNegInf) {
    if constexpr (kMode == Mode::kSample) {
      if (threadIdx.x == 0) tokens[row] = amax;
    } else if constexpr (kMode == Mode::kProbs) {
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads) probs[row * vocab + i] = i == amax ? 1.0f : 0.0f;
    } else {
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
        if (i != amax) logits_out[row * vocab + i] = FromF<T>(-CUDART_INF_F);
    }
    return;
  }
  const float s_max = scaled(amax);

  // 2. top-k: tau = the k-th largest key (keys >= tau are kept)
  uint32_t tau = 0;
  const int32_t top_k = p.top_k[row];
  if (top_k > 0 && top_k < vocab) {
    uint32_t prefix = 0, mask = 0, remaining = static_cast<uint32_t>(top_k);
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = threadIdx.x; b < 256; b += kThreads) count_hist[b] = 0;
      __syncthreads();
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
        const uint32_t key = OrderedKey(scaled(i));
        if ((key & mask) == prefix) atomicAdd(&count_hist[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        uint32_t cum = 0;
        int d = 255;
        for (; d > 0; --d) {
          if (cum + count_hist[d] >= remaining) break;
          cum += count_hist[d];
        }
        sel_digit = static_cast<uint32_t>(d);
        sel_count = remaining - cum;
      }
      __syncthreads();
      prefix |= sel_digit << shift;
      mask |= 255u << shift;
      remaining = sel_count;
    }
    tau = prefix;
  }
  auto mass = [&](int64_t i, uint32_t& key) -> uint64_t {
    const float s = scaled(i);
    key = OrderedKey(s);
    return key >= tau ? Mass(Unnormalised(s, key, s_max, key_max)) : 0;
  };

  // 3. total mass of the top-k set
  uint64_t local = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    uint32_t key;
    local += mass(i, key);
  }
  const uint64_t total = BlockSum(local, red_u64);

  // 4. top-p. Survivors: key > key_cut, or key == key_cut and index <= tie_cut.
  uint32_t key_cut = tau;
  int64_t tie_cut = vocab - 1;
  uint64_t kept_mass = total;
  const float top_p = p.top_p[row];
  if (top_p < 1.0f) {
    const uint64_t target = TopPTarget(top_p, total);
    uint32_t prefix = 0, mask = 0, tie_count = 0;
    uint64_t remaining = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = threadIdx.x; b < 256; b += kThreads) {
        count_hist[b] = 0;
        mass_hist[b] = 0;
      }
      __syncthreads();
      for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
        uint32_t key;
        const uint64_t m = mass(i, key);
        if (key >= tau && (key & mask) == prefix) {
          const uint32_t d = (key >> shift) & 255u;
          atomicAdd(&count_hist[d], 1u);
          if (m) atomicAdd(reinterpret_cast<unsigned long long*>(&mass_hist[d]), static_cast<unsigned long long>(m));
        }
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        uint64_t cum = 0;
        int d = 255;
        for (; d > 0; --d) {
          if (cum + mass_hist[d] >= remaining) break;
          cum += mass_hist[d];
        }
        sel_digit = static_cast<uint32_t>(d);
        sel_count = count_hist[d];
        sel_remaining = remaining - cum;
      }
      __syncthreads();
      prefix |= sel_digit << shift;
      mask |= 255u << shift;
      remaining = sel_remaining;
      tie_count = sel_count;
    }
    key_cut = prefix;
    // Every token tied at key_cut has this mass (> 0: the running mass grows at key_cut).
    const uint64_t w_cut = Mass(Unnormalised(KeyToFloat(key_cut), key_cut, s_max, key_max));
    const uint64_t keep = (remaining + w_cut - 1) / w_cut;  // ties needed to reach the target
    if (keep < tie_count) {
      tie_cut = FindInPrefix(
          vocab, keep - 1, [&](int64_t i) -> uint64_t { return OrderedKey(scaled(i)) == key_cut ? 1u : 0u; }, red_u64, &found);
      kept_mass = (target - remaining) + keep * w_cut;
    } else {
      kept_mass = (target - remaining) + static_cast<uint64_t>(tie_count) * w_cut;
    }
  }
  auto survives = [&](int64_t i, uint32_t key) { return key > key_cut || (key == key_cut && i <= tie_cut); };

  // 5. outputs
  if constexpr (kMode == Mode::kSample) {
    const uint64_t r = MulHi64(Random64(p.seeds[row], static_cast<uint64_t>(p.steps[row]), kStreamSample), kept_mass);
    const int64_t token = FindInPrefix(
        vocab, r,
        [&](int64_t i) -> uint64_t {
          uint32_t key;
          const uint64_t m = mass(i, key);
          return survives(i, key) ? m : 0;
        },
        red_u64, &found);
    if (threadIdx.x == 0) tokens[row] = token >= 0 ? static_cast<int32_t>(token) : amax;
  } else if constexpr (kMode == Mode::kProbs) {
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      uint32_t key;
      const uint64_t m = mass(i, key);
      probs[row * vocab + i] = survives(i, key) ? MassToProb(m, kept_mass) : 0.0f;
    }
  } else {
    // Every earlier pass ended in a block barrier, so no thread still reads what this overwrites.
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float s = scaled(i);
      logits_out[row * vocab + i] = survives(i, OrderedKey(s)) ? FromF<T>(s) : FromF<T>(-CUDART_INF_F);
    }
  }
}

template <typename T, int N>
__global__ void __launch_bounds__(kThreads) ArgmaxKernel(const T* __restrict__ logits, int64_t vocab, int32_t* __restrict__ out) {
  __shared__ KeyIdx red[kWarps];
  const T* lrow = logits + blockIdx.x * vocab;
  KeyIdx best{0u, INT_MAX};
  for (int64_t i = static_cast<int64_t>(threadIdx.x) * N; i < vocab; i += static_cast<int64_t>(kThreads) * N) {
    float v[N];
    ew::LoadF<T, N>(lrow + i, v);
#pragma unroll
    for (int k = 0; k < N; ++k) best = Better(best, KeyIdx{OrderedKey(v[k]), static_cast<int32_t>(i + k)});
  }
  best = BlockArgmax(best, red);
  if (threadIdx.x == 0) out[blockIdx.x] = best.idx;
}

void CheckArgs(const char* op, DType type, int64_t vocab) {
  if (!IsFloating(type)) throw std::invalid_argument(std::string(op) + ": logits must have a floating dtype, got " + DTypeName(type));
  if (vocab <= 0 || vocab > kMaxSamplingVocab)
    throw std::invalid_argument(std::string(op) + ": vocab " + std::to_string(vocab) + " is outside [1, " + std::to_string(kMaxSamplingVocab) +
                                "]");
}

template <Mode kMode>
void LaunchRows(const char* op, const void* logits, void* logits_out, DType type, int64_t rows, int64_t vocab, const SamplingParams& p,
                int32_t* tokens, float* probs, cudaStream_t stream) {
  CheckArgs(op, type, vocab);
  if (rows == 0) return;
  if (rows > INT_MAX) throw std::invalid_argument(std::string(op) + ": too many rows");
  AERIE_DISPATCH_FLOAT(type, T, op, {
    SampleRowsKernel<T, kMode><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(static_cast<const T*>(logits), static_cast<T*>(logits_out),
                                                                                     vocab, p, tokens, probs);
  });
}

}  // namespace

void ArgmaxCuda(const void* logits, DType type, int64_t rows, int64_t vocab, int32_t* out, cudaStream_t stream) {
  CheckArgs("argmax", type, vocab);
  if (rows == 0) return;
  if (rows > INT_MAX) throw std::invalid_argument("argmax: too many rows");
  AERIE_DISPATCH_FLOAT(type, T, "argmax", {
    constexpr int V = ew::Vec16<T>();
    const T* l = static_cast<const T*>(logits);
    if (vocab % V == 0 && ew::Aligned(logits, 16)) ArgmaxKernel<T, V><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(l, vocab, out);
    else ArgmaxKernel<T, 1><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(l, vocab, out);
  });
}

void SampleCuda(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, int32_t* out,
                cudaStream_t stream) {
  LaunchRows<Mode::kSample>("sample", logits, nullptr, type, rows, vocab, params, out, nullptr, stream);
}

void SamplingProbsCuda(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, float* probs,
                       cudaStream_t stream) {
  LaunchRows<Mode::kProbs>("samplingProbs", logits, nullptr, type, rows, vocab, params, nullptr, probs, stream);
}

void SamplingFilterCuda(void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, cudaStream_t stream) {
  LaunchRows<Mode::kFilter>("samplingFilter", logits, logits, type, rows, vocab, params, nullptr, nullptr, stream);
}

}  // namespace aerie
