// CPU twin of the norm family (see norm.h): fp32 elementwise math, fp64 for the row and column sums,
// rows in parallel for the forward and dx, column chunks in parallel for dw.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "norm.h"
#include "thread_pool.h"

namespace aerie {

bool RmsNormTypesSupported(DType x_type, DType w_type) {
  if (x_type == DType::F32) return w_type == DType::F32;
  if (x_type == DType::BF16) return w_type == DType::BF16 || w_type == DType::F32;
  return false;
}

namespace {

void CheckTypes(const char* op, DType x_type, DType w_type) {
  if (!RmsNormTypesSupported(x_type, w_type))
    throw std::invalid_argument(std::string(op) + ": x " + DTypeName(x_type) + " with w " + DTypeName(w_type) +
                                " is not supported (x float32 with w float32, or x bfloat16 with w bfloat16 or float32)");
}

int64_t RowGrain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

}  // namespace

void RmsNormCpu(const void* x, const void* residual, void* h_out, const void* w, void* y, float* rstd, DType x_type, DType w_type,
                int64_t rows, int64_t cols, float eps) {
  CheckTypes("rmsnorm", x_type, w_type);
  if (residual && !h_out) throw std::invalid_argument("rmsnorm: the fused residual add needs h_out");
  ParallelFor(rows, RowGrain(cols), [&](int64_t rb, int64_t re) {
    std::vector<float> h(static_cast<size_t>(cols));
    for (int64_t r = rb; r < re; ++r) {
      const size_t base = static_cast<size_t>(r * cols);
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c) {
        float v = LoadF(x, base + c, x_type);
        if (residual) {
          // The new residual stream is stored in x_type; the norm sees exactly what was stored.
          StoreF(h_out, base + c, x_type, v + LoadF(residual, base + c, x_type));
          v = LoadF(h_out, base + c, x_type);
        }
        h[c] = v;
        ss += static_cast<double>(v) * v;
      }
      float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(cols) + static_cast<double>(eps)));
      rstd[r] = rs;
      for (int64_t c = 0; c < cols; ++c) StoreF(y, base + c, x_type, h[c] * rs * LoadF(w, c, w_type));
    }
  });
}

void RmsNormBackwardCpu(const void* dy, const void* dh_in, const void* h, const void* w, const float* rstd, void* dx, float* dw,
                        DType x_type, DType w_type, int64_t rows, int64_t cols) {
  CheckTypes("rmsnormBackward", x_type, w_type);
  ParallelFor(rows, RowGrain(cols), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const size_t base = static_cast<size_t>(r * cols);
      double s = 0;  // sum of dy * w * h over the row
      for (int64_t c = 0; c < cols; ++c)
        s += static_cast<double>(LoadF(dy, base + c, x_type)) * LoadF(w, c, w_type) * LoadF(h, base + c, x_type);
      const float rs = rstd[r];
      const float coef = static_cast<float>(static_cast<double>(rs) * rs * rs * s / static_cast<double>(cols));
      for (int64_t c = 0; c < cols; ++c) {
        float g = LoadF(dy, base + c, x_type) * LoadF(w, c, w_type);
        float v = rs * g - coef * LoadF(h, base + c, x_type);
        if (dh_in) v += LoadF(dh_in, base + c, x_type);
        StoreF(dx, base + c, x_type, v);
      }
    }
  });
  // dw: columns in chunks, each summed over every row in order.
  constexpr int64_t kColChunk = 64;
  ParallelFor((cols + kColChunk - 1) / kColChunk, 1, [&](int64_t cb, int64_t ce) {
    std::vector<double> acc(kColChunk);
    for (int64_t chunk = cb; chunk < ce; ++chunk) {
      const int64_t c0 = chunk * kColChunk, c1 = std::min(cols, c0 + kColChunk);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const size_t base = static_cast<size_t>(r * cols);
        const double rs = rstd[r];
        for (int64_t c = c0; c < c1; ++c)
          acc[c - c0] += static_cast<double>(LoadF(dy, base + c, x_type)) * LoadF(h, base + c, x_type) * rs;
      }
      for (int64_t c = c0; c < c1; ++c) dw[c] = static_cast<float>(acc[c - c0]);
    }
  });
}

}  // namespace aerie
