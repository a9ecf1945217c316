// CPU twin of the activation family (see activation.h): fp32 math on any float storage, rows in
// parallel, bit for bit the CUDA kernels' (the shared steps are in activation_math.h).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "activation.h"
#include "activation_math.h"
#include "thread_pool.h"

namespace aerie {
namespace {

void CheckArgs(const char* op, DType type, int64_t inter, int64_t in_stride, int64_t grad_stride) {
  if (!IsFloating(type)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(type));
  if (in_stride < inter || grad_stride < inter) throw std::invalid_argument(std::string(op) + ": row strides must be >= inter");
}

int64_t RowGrain(int64_t inter) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(inter, 1)); }

struct FwdArgs {
  const void* gate;
  const void* up;
  int64_t in_stride;
  int64_t col_stride;  // elements from one column of gate (or up) to the next: 1, or 2 for pairs
  void* out;
  DType type;
  int64_t inter;
};

struct BwdArgs {
  const void* dout;
  const void* gate;
  const void* up;
  int64_t in_stride;
  void* dgate;
  void* dup;
  int64_t grad_stride;
  DType type;
  int64_t inter;
};

// One row. std::fma is a library call on the x86-64 baseline ISA, so on x86-64 the rows are compiled
// twice, once with FMA instructions, picked at run time where the CPU has them. Both give the same
// bits: std::fma is correctly rounded either way, and no other product feeds an addition
// (activation_math.h), so the FMA clone's contraction changes nothing.
__attribute__((always_inline)) inline void FwdRowImpl(const FwdArgs& a, int64_t r) {
  for (int64_t c = 0; c < a.inter; ++c) {
    const int64_t at = r * a.in_stride + c * a.col_stride;
    const float g = LoadF(a.gate, at, a.type), u = LoadF(a.up, at, a.type);
    StoreF(a.out, r * a.inter + c, a.type, act::Swiglu(g, u));
  }
}

__attribute__((always_inline)) inline void BwdRowImpl(const BwdArgs& a, int64_t r) {
  for (int64_t c = 0; c < a.inter; ++c) {
    const float g = LoadF(a.gate, r * a.in_stride + c, a.type), u = LoadF(a.up, r * a.in_stride + c, a.type);
    const float d = LoadF(a.dout, r * a.inter + c, a.type);
    float dg, du;
    act::SwigluGrad(d, g, u, &dg, &du);
    StoreF(a.dgate, r * a.grad_stride + c, a.type, dg);
    StoreF(a.dup, r * a.grad_stride + c, a.type, du);
  }
}

void FwdRowGeneric(const FwdArgs& a, int64_t r) { FwdRowImpl(a, r); }
void BwdRowGeneric(const BwdArgs& a, int64_t r) { BwdRowImpl(a, r); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("fma"))) void FwdRowFma(const FwdArgs& a, int64_t r) { FwdRowImpl(a, r); }
__attribute__((target("fma"))) void BwdRowFma(const BwdArgs& a, int64_t r) { BwdRowImpl(a, r); }
bool HasFma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma");
}
const bool kHasFma = HasFma();
const auto kFwdRow = kHasFma ? FwdRowFma : FwdRowGeneric;
const auto kBwdRow = kHasFma ? BwdRowFma : BwdRowGeneric;
#else
constexpr auto kFwdRow = FwdRowGeneric;
constexpr auto kBwdRow = BwdRowGeneric;
#endif

}  // namespace

void SwigluCpu(const void* gate, const void* up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter) {
  CheckArgs("swiglu", type, inter, in_stride, inter);
  const FwdArgs a{gate, up, in_stride, 1, out, type, inter};
  ParallelFor(rows, RowGrain(inter), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) kFwdRow(a, r);
  });
}

void SwigluPairsCpu(const void* gate_up, int64_t in_stride, void* out, DType type, int64_t rows, int64_t inter) {
  CheckArgs("swiglu", type, 2 * inter, in_stride, 2 * inter);
  const void* up = static_cast<const char*>(gate_up) + DTypeSize(type);  // column 1
  const FwdArgs a{gate_up, up, in_stride, 2, out, type, inter};
  ParallelFor(rows, RowGrain(inter), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) kFwdRow(a, r);
  });
}

void SwigluBackwardCpu(const void* dout, const void* gate, const void* up, int64_t in_stride, void* dgate, void* dup,
                       int64_t grad_stride, DType type, int64_t rows, int64_t inter) {
  CheckArgs("swigluBackward", type, inter, in_stride, grad_stride);
  const BwdArgs a{dout, gate, up, in_stride, dgate, dup, grad_stride, type, inter};
  ParallelFor(rows, RowGrain(inter), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) kBwdRow(a, r);
  });
}

}  // namespace aerie
