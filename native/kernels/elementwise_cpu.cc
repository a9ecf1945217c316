// CPU twin of the elementwise family (see elementwise.h): fp32 math on any float storage, fp64
// accumulators for the reductions, threaded with ParallelFor in fixed-size chunks so that results do
// not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "elementwise.h"
#include "thread_pool.h"

namespace aerie {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk (and per reduction partial)

bool IsIntegerSource(DType t) { return t == DType::I32 || t == DType::I64 || t == DType::U8 || t == DType::Bool; }

// An integer element widened to int64.
int64_t LoadI(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return static_cast<const int64_t*>(p)[i];
    case DType::U8: case DType::Bool: return static_cast<const uint8_t*>(p)[i];
    default: throw std::invalid_argument(std::string("expected an integer dtype, got ") + DTypeName(t));
  }
}

void RequireFloating(const char* op, DType t) {
  if (!IsFloating(t)) throw std::invalid_argument(std::string(op) + ": expected a floating dtype, got " + DTypeName(t));
}

// Runs fn(begin, end) over [0, n) in kGrain chunks on the pool.
template <typename F>
void Chunked(int64_t n, F&& fn) {
  ParallelFor(n, kGrain, [&](int64_t b, int64_t e) { fn(b, e); });
}

}  // namespace

bool CastSupported(DType from, DType to) {
  if (IsFloating(to)) return IsFloating(from) || IsIntegerSource(from);
  if (to == DType::I32 || to == DType::I64) return from == DType::I32 || from == DType::I64;
  return false;
}

void CastCpu(const void* x, DType x_type, void* y, DType y_type, int64_t n) {
  if (!CastSupported(x_type, y_type))
    throw std::invalid_argument(std::string("cast: ") + DTypeName(x_type) + " -> " + DTypeName(y_type) + " is not supported");
  Chunked(n, [&](int64_t b, int64_t e) {
    if (IsFloating(y_type)) {
      if (IsFloating(x_type)) {
        for (int64_t i = b; i < e; ++i) StoreF(y, i, y_type, aerie::LoadF(x, i, x_type));
      } else {
        // int -> float32 rounds to nearest (as CUDA's int-to-float conversions do).
        for (int64_t i = b; i < e; ++i) StoreF(y, i, y_type, static_cast<float>(LoadI(x, i, x_type)));
      }
    } else if (y_type == DType::I32) {
      for (int64_t i = b; i < e; ++i) static_cast<int32_t*>(y)[i] = static_cast<int32_t>(LoadI(x, i, x_type));
    } else {
      for (int64_t i = b; i < e; ++i) static_cast<int64_t*>(y)[i] = LoadI(x, i, x_type);
    }
  });
}

uint64_t FillPattern(DType type, double value) {
  uint64_t bits = 0;
  switch (type) {
    case DType::F32: { float f = static_cast<float>(value); memcpy(&bits, &f, 4); break; }
    case DType::BF16: bits = FloatToBf16(static_cast<float>(value)); break;
    case DType::F16: bits = FloatToF16(static_cast<float>(value)); break;
    case DType::I32: { int32_t v = static_cast<int32_t>(value); memcpy(&bits, &v, 4); break; }
    case DType::I64: { int64_t v = static_cast<int64_t>(value); memcpy(&bits, &v, 8); break; }
    case DType::U8: bits = static_cast<uint8_t>(value); break;
    case DType::Bool: bits = value != 0 ? 1 : 0; break;
  }
  return bits;
}

void FillCpu(void* y, DType type, int64_t n, double value) {
  uint64_t bits = FillPattern(type, value);
  size_t size = DTypeSize(type);
  Chunked(n, [&](int64_t b, int64_t e) {
    switch (size) {
      case 1: memset(static_cast<uint8_t*>(y) + b, static_cast<int>(bits), static_cast<size_t>(e - b)); break;
      case 2: for (int64_t i = b; i < e; ++i) static_cast<uint16_t*>(y)[i] = static_cast<uint16_t>(bits); break;
      case 4: for (int64_t i = b; i < e; ++i) static_cast<uint32_t*>(y)[i] = static_cast<uint32_t>(bits); break;
      default: for (int64_t i = b; i < e; ++i) static_cast<uint64_t*>(y)[i] = bits; break;
    }
  });
}

namespace {

template <typename Op>
void BinaryCpu(const char* op, const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb, Op f) {
  RequireFloating(op, type);
  if (nb <= 0 || n % nb != 0)
    throw std::invalid_argument(std::string(op) + ": b's " + std::to_string(nb) + " elements do not divide a's " + std::to_string(n));
  Chunked(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) StoreF(out, i, type, f(aerie::LoadF(a, i, type), aerie::LoadF(b, i % nb, type)));
  });
}

}  // namespace

void AddCpu(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb) {
  if (n == 0) return;
  BinaryCpu("add", a, b, out, type, n, nb, [](float u, float v) { return u + v; });
}

void MulCpu(const void* a, const void* b, void* out, DType type, int64_t n, int64_t nb) {
  if (n == 0) return;
  BinaryCpu("mul", a, b, out, type, n, nb, [](float u, float v) { return u * v; });
}

void ScaleCpu(const void* x, void* out, DType type, int64_t n, float alpha) {
  RequireFloating("scale", type);
  Chunked(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) StoreF(out, i, type, alpha * aerie::LoadF(x, i, type));
  });
}

void AxpyCpu(void* y, DType y_type, const void* x, DType x_type, int64_t n, float alpha) {
  RequireFloating("axpy", y_type);
  RequireFloating("axpy", x_type);
  Chunked(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) StoreF(y, i, y_type, aerie::LoadF(y, i, y_type) + alpha * aerie::LoadF(x, i, x_type));
  });
}

namespace {

double MaxNan(double a, double b) { return (a > b || a != a) ? a : b; }

// Reduces x in kGrain-sized chunks (partials in chunk order, then combined left to right).
template <bool kMax>
float ReduceAll(const void* x, DType type, int64_t n) {
  RequireFloating(kMax ? "max" : "sum", type);
  const double init = kMax ? -std::numeric_limits<double>::infinity() : 0.0;
  int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(static_cast<size_t>(chunks), init);
  ParallelFor(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      double acc = init;
      int64_t end = std::min(n, (c + 1) * kGrain);
      for (int64_t i = c * kGrain; i < end; ++i) {
        double v = aerie::LoadF(x, i, type);
        acc = kMax ? MaxNan(acc, v) : acc + v;
      }
      partial[c] = acc;
    }
  });
  double acc = init;
  for (double p : partial) acc = kMax ? MaxNan(acc, p) : acc + p;
  return static_cast<float>(acc);
}

template <bool kMax>
void ReduceRows(const void* x, DType type, int64_t rows, int64_t cols, float* out) {
  RequireFloating(kMax ? "maxLastDim" : "sumLastDim", type);
  const double init = kMax ? -std::numeric_limits<double>::infinity() : 0.0;
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1));
  ParallelFor(rows, grain, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      double acc = init;
      for (int64_t c = 0; c < cols; ++c) {
        double v = aerie::LoadF(x, r * cols + c, type);
        acc = kMax ? MaxNan(acc, v) : acc + v;
      }
      out[r] = static_cast<float>(acc);
    }
  });
}

}  // namespace

void ReduceSumCpu(const void* x, DType type, int64_t n, float* out) { out[0] = ReduceAll<false>(x, type, n); }
void ReduceMaxCpu(const void* x, DType type, int64_t n, float* out) { out[0] = ReduceAll<true>(x, type, n); }
void RowSumCpu(const void* x, DType type, int64_t rows, int64_t cols, float* out) { ReduceRows<false>(x, type, rows, cols, out); }
void RowMaxCpu(const void* x, DType type, int64_t rows, int64_t cols, float* out) { ReduceRows<true>(x, type, rows, cols, out); }

}  // namespace aerie
