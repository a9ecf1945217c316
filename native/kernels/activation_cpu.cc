// CPU twin of the activation family (see activation.h): fp32 math on any float storage, rows in
// parallel.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "activation.h"
#include "thread_pool.h"

namespace aerie {
namespace {

void CheckArgs(const char* op, DType type, int64_t inter, int64_t in_stride, int64_t grad_stride) {
  if (!IsFloating(type)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(type));
  if (in_stride < inter || grad_stride < inter) throw std::invalid_argument(std::string(op) + ": row strides must be >= inter");
}

int64_t RowGrain(int64_t inter) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(inter, 1)); }

}  // namespace

void SwigluCpu(const void* gate, const void* up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter) {
  CheckArgs("swiglu", type, inter, in_stride, inter);
  ParallelFor(rows, RowGrain(inter), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      for (int64_t c = 0; c < inter; ++c) {
        float g = LoadF(gate, r * in_stride + c, type), u = LoadF(up, r * in_stride + c, type);
        float silu = g / (1.0f + std::exp(-g));
        StoreF(out, r * inter + c, type, silu * u);
      }
    }
  });
}

void SwigluBackwardCpu(const void* dout, const void* gate, const void* up, int64_t in_stride, void* dgate, void* dup,
                       int64_t grad_stride, DType type, int64_t rows, int64_t inter) {
  CheckArgs("swigluBackward", type, inter, in_stride, grad_stride);
  ParallelFor(rows, RowGrain(inter), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      for (int64_t c = 0; c < inter; ++c) {
        float g = LoadF(gate, r * in_stride + c, type), u = LoadF(up, r * in_stride + c, type);
        float d = LoadF(dout, r * inter + c, type);
        float s = 1.0f / (1.0f + std::exp(-g));
        float silu = g * s;
        StoreF(dgate, r * grad_stride + c, type, d * u * (s * (1.0f + g * (1.0f - s))));
        StoreF(dup, r * grad_stride + c, type, d * silu);
      }
    }
  });
}

}  // namespace aerie
