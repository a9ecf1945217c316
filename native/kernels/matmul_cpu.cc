// CPU twin of the matmul family (matmul.h): a Goto-style blocked GEMM in fp32.
//
// C is cut into tiles of kMc x kNc; each tile is one work item for ParallelFor (over batch x row
// blocks x column blocks), so threads never share output. For every kKc-deep slice of K a thread
// packs its A block (kMc x kKc) and B block (kKc x kNc) into fp32 panels -- which is where
// transposes and bf16/f16 storage are resolved -- then a 6x16 register-tiled micro-kernel
// accumulates into an fp32 tile buffer. The epilogue applies alpha, beta, bias and the output
// dtype once per tile. Packed panels are zero-padded to whole micro-tiles, so the micro-kernel has
// no edge cases: padded rows/columns compute zeros that the epilogue never stores.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "matmul.h"
#include "thread_pool.h"

// 32-byte vectors cross only always-inlined helpers, never a real call boundary, so the baseline
// (SSE) build's warning that passing them would change the ABI does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace aerie {
namespace {

constexpr int64_t kMr = 6, kNr = 16;  // micro-tile: 12 accumulator vectors of 8 floats
constexpr int64_t kMc = 96;           // rows of A per block (multiple of kMr)
constexpr int64_t kNc = 256;          // columns of B per block (multiple of kNr)
constexpr int64_t kKc = 256;          // depth of one packed slice
constexpr int64_t kMaxTileCols = 1024;  // widest output tile any path stores (>= kNc)

typedef float v8 __attribute__((vector_size(32)));  // GCC/Clang vectors: AVX or 2x SSE

inline float ToFloat(float x) { return x; }
inline float ToFloat(bf16_t x) { return Bf16ToFloat(x.bits); }
inline float ToFloat(f16_t x) { return F16ToFloat(x.bits); }

// Per-thread scratch, 64-byte aligned, reused across calls.
struct Scratch {
  struct Free { void operator()(float* p) const { std::free(p); } };
  std::unique_ptr<float, Free> a, b, acc;
  Scratch()
      : a(Alloc(kMc * kKc)), b(Alloc(kKc * kNc)), acc(Alloc(kMc * kNc)) {}
  static float* Alloc(int64_t n) {
    void* p = std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float));
    if (!p) throw std::bad_alloc();
    return static_cast<float*>(p);
  }
};

// Packs op(A)[i0:i0+mc, p0:p0+kc] as panels of kMr rows: panel q holds element (r, l) at
// q*kc*kMr + l*kMr + r. Rows past mc are zero.
template <typename T>
void PackA(const T* a, bool trans, int64_t m, int64_t k, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out) {
  for (int64_t q = 0; q * kMr < mc; ++q) {
    float* panel = out + q * kc * kMr;
    int64_t rows = std::min(kMr, mc - q * kMr);
    if (rows < kMr) std::memset(panel, 0, sizeof(float) * kc * kMr);
    const int64_t i = i0 + q * kMr;
    if (!trans) {  // A is [M, K]: read each row contiguously
      for (int64_t r = 0; r < rows; ++r) {
        const T* src = a + (i + r) * k + p0;
        for (int64_t l = 0; l < kc; ++l) panel[l * kMr + r] = ToFloat(src[l]);
      }
    } else {  // A is [K, M]: the panel's rows are adjacent in each stored row
      for (int64_t l = 0; l < kc; ++l) {
        const T* src = a + (p0 + l) * m + i;
        for (int64_t r = 0; r < rows; ++r) panel[l * kMr + r] = ToFloat(src[r]);
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as panels of kNr columns: panel q holds element (l, c) at
// q*kc*kNr + l*kNr + c. Columns past nc are zero.
template <typename T>
void PackB(const T* b, bool trans, int64_t n, int64_t k, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* out) {
  for (int64_t q = 0; q * kNr < nc; ++q) {
    float* panel = out + q * kc * kNr;
    int64_t cols = std::min(kNr, nc - q * kNr);
    if (cols < kNr) std::memset(panel, 0, sizeof(float) * kc * kNr);
    if (!trans) {  // B is [K, N]: a row of the panel is contiguous
      for (int64_t l = 0; l < kc; ++l) {
        const T* src = b + (p0 + l) * n + j0 + q * kNr;
        for (int64_t c = 0; c < cols; ++c) panel[l * kNr + c] = ToFloat(src[c]);
      }
    } else {  // B is [N, K] (nn.Linear weight): read each column of op(B) contiguously
      for (int64_t c = 0; c < cols; ++c) {
        const T* src = b + (j0 + q * kNr + c) * k + p0;
        for (int64_t l = 0; l < kc; ++l) panel[l * kNr + c] = ToFloat(src[l]);
      }
    }
  }
}

// acc[kMr x kNr] (row stride ldc) (+)= a_panel (kc x kMr) ^T-ish product with b_panel (kc x kNr).
__attribute__((always_inline)) inline void MicroKernel(int64_t kc, const float* a, const float* b, float* acc,
                                                       int64_t ldc, bool first) {
  v8 c[kMr][2];
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) c[r][0] = c[r][1] = v8{};
  for (int64_t l = 0; l < kc; ++l) {
    v8 b0, b1;
    std::memcpy(&b0, b + l * kNr, sizeof(v8));
    std::memcpy(&b1, b + l * kNr + 8, sizeof(v8));
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      float ar = a[l * kMr + r];
      c[r][0] += ar * b0;
      c[r][1] += ar * b1;
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) {
    float* row = acc + r * ldc;
    if (!first) {
      v8 o0, o1;
      std::memcpy(&o0, row, sizeof(v8));
      std::memcpy(&o1, row + 8, sizeof(v8));
      c[r][0] += o0;
      c[r][1] += o1;
    }
    std::memcpy(row, &c[r][0], sizeof(v8));
    std::memcpy(row + 8, &c[r][1], sizeof(v8));
  }
}

// All micro-tiles of one packed block pair. Kept out of line so it can be compiled twice: for
// AVX2+FMA where the CPU has it (chosen at run time), and for the baseline ISA.
__attribute__((always_inline)) inline void BlockKernelImpl(int64_t mc, int64_t nc, int64_t kc, const float* ap,
                                                           const float* bp, float* acc, bool first) {
  for (int64_t jq = 0; jq * kNr < nc; ++jq) {
    for (int64_t iq = 0; iq * kMr < mc; ++iq) {
      MicroKernel(kc, ap + iq * kc * kMr, bp + jq * kc * kNr, acc + iq * kMr * kNc + jq * kNr, kNc, first);
    }
  }
}

void BlockKernelGeneric(int64_t mc, int64_t nc, int64_t kc, const float* ap, const float* bp, float* acc, bool first) {
  BlockKernelImpl(mc, nc, kc, ap, bp, acc, first);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"))) void BlockKernelAvx2(int64_t mc, int64_t nc, int64_t kc, const float* ap,
                                                          const float* bp, float* acc, bool first) {
  BlockKernelImpl(mc, nc, kc, ap, bp, acc, first);
}
using BlockKernelFn = void (*)(int64_t, int64_t, int64_t, const float*, const float*, float*, bool);
BlockKernelFn PickBlockKernel() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? BlockKernelAvx2 : BlockKernelGeneric;
}
const BlockKernelFn kBlockKernel = PickBlockKernel();
#else
constexpr auto kBlockKernel = BlockKernelGeneric;
#endif

// Epilogue of one output tile: C = alpha * acc + beta * C + bias, where acc (row stride ld) holds
// op(A) @ op(B) for rows [i0, i0+mc) and columns [j0, j0+nc) of batch entry bi. beta == 0 never
// reads C (it may hold garbage).
void StoreTile(const MatmulArgs& p, int64_t bi, int64_t i0, int64_t mc, int64_t j0, int64_t nc, const float* acc,
               int64_t ld) {
  float bias_row[kMaxTileCols];
  for (int64_t j = 0; j < nc; ++j) bias_row[j] = p.bias ? LoadF(p.bias, j0 + j, p.bias_type) : 0.f;
  const size_t c_base = static_cast<size_t>(bi * p.stride_c);
  for (int64_t i = 0; i < mc; ++i) {
    const float* arow = acc + i * ld;
    const size_t row = c_base + static_cast<size_t>((i0 + i) * p.n + j0);
    for (int64_t j = 0; j < nc; ++j) {
      float v = p.alpha * arow[j] + bias_row[j];
      if (p.beta != 0.f) v += p.beta * LoadF(p.c, row + j, p.c_type);
      StoreF(p.c, row + j, p.c_type, v);
    }
  }
}

// Enough work items per ParallelFor chunk (about 1 MFLOP) that small problems skip the hand-off.
int64_t Grain(int64_t flops_per_item) { return std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(flops_per_item, 1)); }

// The blocked path: one work item per (batch entry, row block, column block) tile of C.
template <typename T>
void RunBlocked(const MatmulArgs& p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const int64_t m = p.m, n = p.n, k = p.k;
  const int64_t mb = (m + kMc - 1) / kMc, nb = (n + kNc - 1) / kNc;
  const int64_t tiles = p.batch * mb * nb;
  const int64_t grain = Grain(2 * std::min(m, kMc) * std::min(n, kNc) * std::max<int64_t>(k, 1));
  ParallelFor(tiles, grain, [&](int64_t begin, int64_t end) {
    thread_local Scratch s;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ib = t % mb, jb = (t / mb) % nb, bi = t / (mb * nb);
      const int64_t i0 = ib * kMc, mc = std::min(kMc, m - i0);
      const int64_t j0 = jb * kNc, nc = std::min(kNc, n - j0);
      const T* ab = a + bi * p.stride_a;
      const T* bb = b + bi * p.stride_b;
      float* acc = s.acc.get();
      if (k == 0) std::memset(acc, 0, sizeof(float) * kMc * kNc);
      for (int64_t p0 = 0; p0 < k; p0 += kKc) {
        const int64_t kc = std::min(kKc, k - p0);
        PackA(ab, p.trans_a, m, k, i0, mc, p0, kc, s.a.get());
        PackB(bb, p.trans_b, n, k, p0, kc, j0, nc, s.b.get());
        kBlockKernel(mc, nc, kc, s.a.get(), s.b.get(), acc, p0 == 0);
      }
      StoreTile(p, bi, i0, mc, j0, nc, acc, kNc);
    }
  });
}

// The few-rows path (m < kMr: decode steps, GEMV). Blocking would spend most of its time packing
// B into mostly-empty micro-tiles; instead op(A) is widened to fp32 once per batch entry and B is
// streamed once, converted on the fly. Work items: (batch entry, column block).
constexpr int64_t kFewNcTrans = 64;  // columns per work item when B is [N, K]: rows of B are contiguous
// When B is [K, N] each step reads a row segment of B; wide blocks keep those segments long.
constexpr int64_t kFewNc = kMaxTileCols;

typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));

// Eight consecutive elements widened to fp32.
__attribute__((always_inline)) inline v8 Load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
__attribute__((always_inline)) inline v8 Load8(const bf16_t* p) {
  u16x8 h;
  std::memcpy(&h, p, sizeof(h));
  u32x8 w = __builtin_convertvector(h, u32x8) << 16;  // bf16 is the top half of an fp32
  v8 v;
  std::memcpy(&v, &w, sizeof(v));
  return v;
}
__attribute__((always_inline)) inline v8 Load8(const f16_t* p) {
  float f[8];
  for (int i = 0; i < 8; ++i) f[i] = ToFloat(p[i]);
  return Load8(f);
}

// out[i] = dot(a32 row i, brow) for i < M, over k elements.
template <int M, typename T>
__attribute__((always_inline)) inline void DotRows(const float* a32, int64_t k, const T* brow, float* out) {
  v8 s[M];
  for (int i = 0; i < M; ++i) s[i] = v8{};
  int64_t l = 0;
  for (; l + 8 <= k; l += 8) {
    const v8 bv = Load8(brow + l);
    for (int i = 0; i < M; ++i) s[i] += Load8(a32 + i * k + l) * bv;
  }
  for (int i = 0; i < M; ++i) out[i] = ((s[i][0] + s[i][1]) + (s[i][2] + s[i][3])) + ((s[i][4] + s[i][5]) + (s[i][6] + s[i][7]));
  for (; l < k; ++l) {
    const float bl = ToFloat(brow[l]);
    for (int i = 0; i < M; ++i) out[i] += a32[i * k + l] * bl;
  }
}

// acc[i * ld + j] = sum_l a32[i, l] * op(B)[l, j0 + j] for j < nc, i < m, B of batch entry bb.
template <typename T>
__attribute__((always_inline)) inline void FewRowsImpl(const float* a32, int64_t m, const T* bb, bool trans_b, int64_t n,
                                                       int64_t k, int64_t j0, int64_t nc, float* acc, int64_t ld) {
  if (trans_b) {  // B is [N, K]: a dot product of each A row with each (contiguous) B row
    for (int64_t j = 0; j < nc; ++j) {
      const T* brow = bb + (j0 + j) * k;
      float out[kMr] = {};
      switch (m) {
        case 1: DotRows<1>(a32, k, brow, out); break;
        case 2: DotRows<2>(a32, k, brow, out); break;
        case 3: DotRows<3>(a32, k, brow, out); break;
        case 4: DotRows<4>(a32, k, brow, out); break;
        default: DotRows<5>(a32, k, brow, out); break;
      }
      for (int64_t i = 0; i < m; ++i) acc[i * ld + j] = out[i];
    }
  } else {  // B is [K, N]: scaled row segments of B added into the accumulator rows
    float buf[kFewNc];
    for (int64_t i = 0; i < m; ++i) std::memset(acc + i * ld, 0, sizeof(float) * nc);
    constexpr int64_t kAhead = 8;  // rows: each segment is in another page, beyond the hardware prefetcher
    for (int64_t l = 0; l < k; ++l) {
      const T* brow = bb + l * n + j0;
      if (l + kAhead < k) {
        const char* next = reinterpret_cast<const char*>(brow + kAhead * n);
        for (int64_t byte = 0; byte < nc * static_cast<int64_t>(sizeof(T)); byte += 64) __builtin_prefetch(next + byte);
      }
      for (int64_t j = 0; j < nc; ++j) buf[j] = ToFloat(brow[j]);
      for (int64_t i = 0; i < m; ++i) {
        const float ail = a32[i * k + l];
        float* arow = acc + i * ld;
        for (int64_t j = 0; j < nc; ++j) arow[j] += ail * buf[j];
      }
    }
  }
}

template <typename T>
void FewRowsGeneric(const float* a32, int64_t m, const T* bb, bool tb, int64_t n, int64_t k, int64_t j0, int64_t nc,
                    float* acc, int64_t ld) {
  FewRowsImpl(a32, m, bb, tb, n, k, j0, nc, acc, ld);
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <typename T>
__attribute__((target("avx2,fma"))) void FewRowsAvx2(const float* a32, int64_t m, const T* bb, bool tb, int64_t n,
                                                      int64_t k, int64_t j0, int64_t nc, float* acc, int64_t ld) {
  FewRowsImpl(a32, m, bb, tb, n, k, j0, nc, acc, ld);
}
#endif

template <typename T>
void RunFewRows(const MatmulArgs& p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const int64_t m = p.m, n = p.n, k = p.k;
  auto kernel = FewRowsGeneric<T>;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (kBlockKernel == BlockKernelAvx2) kernel = FewRowsAvx2<T>;
#endif
  // op(A) in fp32, [batch][m][k] (A is small here: fewer than kMr rows per entry).
  const int64_t a_entries = p.stride_a == 0 ? 1 : p.batch;
  std::unique_ptr<float[]> a32(new float[static_cast<size_t>(std::max<int64_t>(a_entries * m * k, 1))]);
  for (int64_t bi = 0; bi < a_entries; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t l = 0; l < k; ++l)
        a32[(bi * m + i) * k + l] = ToFloat(a[bi * p.stride_a + (p.trans_a ? l * m + i : i * k + l)]);
  const int64_t cols = p.trans_b ? kFewNcTrans : kFewNc;
  const int64_t nb = (n + cols - 1) / cols;
  const int64_t grain = Grain(2 * m * std::min(n, cols) * std::max<int64_t>(k, 1));
  ParallelFor(p.batch * nb, grain, [&](int64_t begin, int64_t end) {
    std::unique_ptr<float[]> acc(new float[kMr * kFewNc]);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t jb = t % nb, bi = t / nb;
      const int64_t j0 = jb * cols, nc = std::min(cols, n - j0);
      const float* ab = a32.get() + (p.stride_a == 0 ? 0 : bi * m * k);
      kernel(ab, m, b + bi * p.stride_b, p.trans_b, n, k, j0, nc, acc.get(), kFewNc);
      StoreTile(p, bi, 0, m, j0, nc, acc.get(), kFewNc);
    }
  });
}

template <typename T>
void Run(const MatmulArgs& p) {
  if (p.m < kMr) RunFewRows<T>(p);
  else RunBlocked<T>(p);
}

}  // namespace

void MatmulCpu(const MatmulArgs& p) {
  if (p.m < 0 || p.n < 0 || p.k < 0 || p.batch < 0 || p.stride_a < 0 || p.stride_b < 0 || p.stride_c < 0)
    throw std::invalid_argument("matmul: sizes and strides must be non-negative");
  if (!IsFloating(p.ab_type) || !IsFloating(p.c_type) || (p.bias && !IsFloating(p.bias_type)))
    throw std::invalid_argument("matmul: a/b, c and bias must have floating dtypes");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  switch (p.ab_type) {
    case DType::F32: Run<float>(p); break;
    case DType::BF16: Run<bf16_t>(p); break;
    case DType::F16: Run<f16_t>(p); break;
    default: break;
  }
}

}  // namespace aerie
