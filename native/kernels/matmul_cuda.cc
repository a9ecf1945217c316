// MatmulCuda: the matmul family on CUDA through cuBLASLt (opened at run time, cublaslt_api.h).
//
// Layout mapping. cuBLASLt is column-major; Aerie is row-major. A row-major X[r][c] with row
// stride ld is, byte for byte, the column-major matrix X^T (c x r) with the same ld. So instead
// of row-major C = op(A) @ op(B) we ask cuBLASLt for the column-major product
//     C^T (N x M) = op(B)^T (N x K) @ op(A)^T (K x M),
// i.e. cuBLASLt's "A" is our B and its "B" is our A, and no data moves:
//   - our B stored [K, N] reads as column-major [N, K], ld N: already op(B)^T -> OP_N;
//     stored [N, K] (trans_b) reads as [K, N], ld K -> OP_T.
//   - our A stored [M, K] reads as column-major [K, M], ld K: already op(A)^T -> OP_N;
//     stored [K, M] (trans_a) reads as [M, K], ld M -> OP_T.
//   - C (row-major [M, N]) is column-major [N, M], ld N. Its "rows" are our columns, so the
//     BIAS epilogue (one value per row of D) adds bias[j] to our column j, as wanted.
// Batch entries use strided-batch layouts (stride 0 broadcasts); a B shared by a dense batch of A
// is folded into one GEMM of batch*M rows.
//
// Few-rows products in the nn.Linear layout (decode's x @ W^T, M <= 8, bf16/f16) skip cuBLASLt,
// whose tiles would be mostly empty rows there, for the GEMV kernel in matmul.cu (MatmulGemvCuda).
//
// Per call: one cached plan lookup and one cublasLtMatmul. Plans (descriptors, layouts and the
// algorithm from cublasLtMatmulAlgoGetHeuristic, timed among its candidates for prefill-sized
// products: PickFastest) are cached per problem key -- shape, strides,
// transposes, dtypes, epilogue and pointer alignments -- so repeated shapes search once. Each
// (device, stream) gets its own 32 MiB workspace from the caching allocator: two streams sharing
// one would race on it. fp32 accumulation always (CUBLAS_COMPUTE_32F, no TF32). Dtype pairs
// cuBLASLt lacks (f32 inputs to a 16-bit output, bf16 <-> f16), and a bias it cannot fuse into a
// 16-bit output, go through an fp32 buffer and the epilogue kernel in matmul.cu (see Route).
#include "matmul.h"

#if defined(AERIE_WITH_CUDA)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "allocator.h"
#include "cublaslt_api.h"

namespace aerie {
namespace {

using namespace cublaslt;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr size_t kMaxPlans = 1024;  // the cache is dropped and rebuilt past this many shapes

cudaDataType_t LtType(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: throw std::invalid_argument(std::string("matmul: no cuBLASLt type for ") + DTypeName(t));
  }
}

// cuBLASLt with fp32 compute takes f32->f32, bf16->bf16, f16->f16, bf16->f32 and f16->f32.
bool LtSupports(DType ab, DType c) { return ab == c || c == DType::F32; }

// Largest power of two (<= 256) dividing the address and every byte stride used to step through
// the matrix: cuBLASLt's kernels require it of the pointer, the leading dimension and batch offsets.
uint32_t Alignment(const void* p, int64_t ld_elems, int64_t batch_stride_elems, size_t elem_bytes) {
  uint64_t bits = reinterpret_cast<uint64_t>(p) | static_cast<uint64_t>(ld_elems) * elem_bytes |
                  static_cast<uint64_t>(batch_stride_elems) * elem_bytes | 256u;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

struct PlanKey {
  int device;
  int64_t m, n, k, batch, stride_a, stride_b, stride_c;
  bool trans_a, trans_b, bias_epilogue;
  DType ab_type, out_type;
  uint32_t align_a, align_b, align_c, align_bias;
  auto Tie() const {
    return std::tie(device, m, n, k, batch, stride_a, stride_b, stride_c, trans_a, trans_b, bias_epilogue, ab_type,
                    out_type, align_a, align_b, align_c, align_bias);
  }
  bool operator<(const PlanKey& o) const { return Tie() < o.Tie(); }
};

// Descriptors and the chosen algorithm for one PlanKey. Names are cuBLASLt's: lt_a is our B and
// lt_b our A (see the top of the file).
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t lt_a = nullptr, lt_b = nullptr, lt_c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    const Api& api = GetApi();
    if (lt_a) api.cublasLtMatrixLayoutDestroy(lt_a);
    if (lt_b) api.cublasLtMatrixLayoutDestroy(lt_b);
    if (lt_c) api.cublasLtMatrixLayoutDestroy(lt_c);
    if (desc) api.cublasLtMatmulDescDestroy(desc);
  }
};

template <typename T>
void SetDesc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, T value) {
  Check(GetApi().cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(T)), "cublasLtMatmulDescSetAttribute");
}
template <typename T>
void SetLayout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, T value) {
  Check(GetApi().cublasLtMatrixLayoutSetAttribute(l, attr, &value, sizeof(T)), "cublasLtMatrixLayoutSetAttribute");
}
template <typename T>
void SetPref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, T value) {
  Check(GetApi().cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(T)),
        "cublasLtMatmulPreferenceSetAttribute");
}

cublasLtMatrixLayout_t MakeLayout(DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  Check(GetApi().cublasLtMatrixLayoutCreate(&l, LtType(t), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld),
        "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    SetLayout(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, static_cast<int32_t>(batch));
    SetLayout(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride);
  }
  return l;
}

// True when `algo` splits K and sums the parts in the output dtype. Unknown counts as false.
bool ReducesInOutputType(const cublasLtMatmulAlgo_t& algo) {
  const Api& api = GetApi();
  int32_t splits = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  size_t written = 0;
  if (api.cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits), &written) !=
          CUBLAS_STATUS_SUCCESS ||
      api.cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme),
                                               &written) != CUBLAS_STATUS_SUCCESS)
    return false;
  return splits > 1 && (scheme & (CUBLASLT_REDUCTION_SCHEME_INPLACE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE)) != 0;
}

// What autotuning needs to run the candidates on the call's own inputs.
struct TuneInputs {
  const void* a;  // ours (cuBLASLt's B)
  const void* b;  // ours (cuBLASLt's A)
  void* workspace;
  cudaStream_t stream;
};

// Autotuning: for large products, time the heuristic's candidates once on the first call of a
// shape and keep the fastest (the heuristic's first pick is a model's guess; on prefill-sized GEMMs
// the guesses differ by a few percent). On by default for products of at least 2^36 FLOP
// (prefill-sized), up to kMaxTunedShapes shapes; AERIE_GEMM_AUTOTUNE=0 turns it off,
// AERIE_GEMM_AUTOTUNE_LOG=1 prints the timings to stderr.
bool EnvFlag(const char* name, bool fallback) {
  const char* e = std::getenv(name);
  if (!e || !*e) return fallback;
  return std::string(e) != "0";
}
// At most kMaxTunedShapes keys are tuned per process (a workload whose token counts vary step to step
// would otherwise pay ~50 GEMMs' worth of timing for every new count); later ones take the heuristic.
constexpr int kMaxTunedShapes = 64;
bool ShouldTune(const PlanKey& k) {  // called under State::mu
  static const bool on = EnvFlag("AERIE_GEMM_AUTOTUNE", true);
  static int tuned = 0;
  const double flops = 2.0 * static_cast<double>(k.m) * static_cast<double>(k.n) * static_cast<double>(k.k) * static_cast<double>(k.batch);
  if (!on || k.bias_epilogue || k.batch != 1 || flops < 68719476736.0 || tuned >= kMaxTunedShapes) return false;
  ++tuned;
  return true;
}

// Index into `candidates` of the fastest (3 rounds of 2 timed runs each, after one untimed), into a
// scratch output (beta = 0: the caller's C is never touched). 0 (the heuristic's pick) whenever
// timing is not possible: a stream being captured into a graph (no synchronisation allowed), a
// scratch output above 2 GiB or one the allocator cannot give, or any CUDA error.
size_t PickFastest(const Plan& plan, const std::vector<const cublasLtMatmulHeuristicResult_t*>& candidates, const PlanKey& key,
                   const TuneInputs& in) {
  if (candidates.size() < 2) return 0;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(in.stream, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) return 0;
  const size_t out_bytes = static_cast<size_t>(key.m * key.n) * DTypeSize(key.out_type);
  if (out_bytes > (size_t{2} << 30)) return 0;
  const Api& api = GetApi();
  const cublasLtHandle_t handle = HandleFor(key.device);
  void* scratch = nullptr;
  try {
    scratch = DeviceAlloc(key.device, out_bytes);
  } catch (const std::exception&) {  // no room for the scratch output: the heuristic's pick, untimed
    return 0;
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  size_t best = 0;
  std::string log;
  if (cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess &&
      cudaStreamSynchronize(in.stream) == cudaSuccess) {
    const float alpha = 1.f, beta = 0.f;
    auto run = [&](const cublasLtMatmulAlgo_t& algo) {
      return api.cublasLtMatmul(handle, plan.desc, &alpha, in.b, plan.lt_a, in.a, plan.lt_b, &beta, scratch, plan.lt_c, scratch,
                                plan.lt_c, &algo, in.workspace, kWorkspaceBytes, in.stream) == CUBLAS_STATUS_SUCCESS;
    };
    // One untimed run each (a candidate that fails is dropped; if the heuristic's own pick fails,
    // keep it and let the real call report), then rounds over all of them, so that clock and power
    // drift while tuning weighs on every candidate alike.
    const size_t n = candidates.size();
    std::vector<bool> usable(n, true);
    std::vector<float> total(n, 0.f);
    bool ok = true;
    for (size_t i = 0; i < n && ok; ++i) {
      usable[i] = run(candidates[i]->algo);
      if (!usable[i]) {
        cudaGetLastError();
        ok = i > 0;
      }
    }
    constexpr int kRounds = 3, kRunsPerRound = 2;
    for (int round = 0; round < kRounds && ok; ++round) {
      for (size_t i = 0; i < n && ok; ++i) {
        if (!usable[i]) continue;
        ok = cudaEventRecord(start, in.stream) == cudaSuccess;
        for (int r = 0; r < kRunsPerRound && ok; ++r) ok = run(candidates[i]->algo);
        float ms = 0.f;
        ok = ok && cudaEventRecord(stop, in.stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess &&
             cudaEventElapsedTime(&ms, start, stop) == cudaSuccess;
        total[i] += ms;
      }
    }
    if (ok) {
      for (size_t i = 0; i < n; ++i) {
        if (!usable[i]) continue;
        log += " #" + std::to_string(i) + "=" + std::to_string(total[i] / (kRounds * kRunsPerRound));
        if (total[i] < total[best]) best = i;
      }
    } else {
      cudaGetLastError();
      best = 0;
    }
  }
  cudaStreamSynchronize(in.stream);
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  DeviceFree(key.device, scratch);
  static const bool verbose = EnvFlag("AERIE_GEMM_AUTOTUNE_LOG", false);
  if (verbose)
    std::fprintf(stderr, "aerie gemm autotune m=%lld n=%lld k=%lld: ms per run%s -> #%zu\n", static_cast<long long>(key.m),
                 static_cast<long long>(key.n), static_cast<long long>(key.k), log.c_str(), best);
  return best;
}

// Builds the descriptors and asks the heuristic for an algorithm; nullptr when it offers none. With
// `tune`, large products pick the fastest candidate by timing (PickFastest).
std::unique_ptr<Plan> BuildPlan(const PlanKey& key, const void* bias, const TuneInputs* tune) {
  const Api& api = GetApi();
  auto plan = std::make_unique<Plan>();
  Check(api.cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  SetDesc<int32_t>(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, key.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
  SetDesc<int32_t>(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, key.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  if (key.bias_epilogue) {
    // Bias dtype defaults to D's, which is the only case planned with the epilogue. The pointer
    // is set again before every call; the heuristic only reads its alignment.
    SetDesc<uint32_t>(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    SetDesc<const void*>(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  }
  const int64_t m = key.m, n = key.n, k = key.k;
  plan->lt_a = key.trans_b ? MakeLayout(key.ab_type, k, n, k, key.batch, key.stride_b)
                           : MakeLayout(key.ab_type, n, k, n, key.batch, key.stride_b);
  plan->lt_b = key.trans_a ? MakeLayout(key.ab_type, m, k, m, key.batch, key.stride_a)
                           : MakeLayout(key.ab_type, k, m, k, key.batch, key.stride_a);
  plan->lt_c = MakeLayout(key.out_type, n, m, n, key.batch, key.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  Check(api.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, cublasStatus_t (*)(cublasLtMatmulPreference_t)>
      pref_guard(pref, api.cublasLtMatmulPreferenceDestroy);
  SetPref<uint64_t>(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kWorkspaceBytes);
  SetPref<uint32_t>(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b);  // cuBLASLt's A is our B
  SetPref<uint32_t>(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a);
  SetPref<uint32_t>(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c);
  SetPref<uint32_t>(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c);

  constexpr int kCandidates = 16;
  cublasLtMatmulHeuristicResult_t results[kCandidates];
  std::memset(results, 0, sizeof(results));
  int returned = 0;
  cublasStatus_t st = api.cublasLtMatmulAlgoGetHeuristic(HandleFor(key.device), plan->desc, plan->lt_a, plan->lt_b,
                                                         plan->lt_c, plan->lt_c, pref, kCandidates, results, &returned);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return nullptr;
  Check(st, "cublasLtMatmulAlgoGetHeuristic");
  // Results come fastest first. For a 16-bit output, pass over split-K configurations that sum
  // their partial products in that 16-bit type (INPLACE / OUTPUT_TYPE) when any other is offered:
  // they would round every partial sum to 8 or 11 bits.
  const bool narrow_out = key.out_type != DType::F32;
  std::vector<const cublasLtMatmulHeuristicResult_t*> candidates;
  for (int pass = narrow_out ? 0 : 1; pass < 2 && candidates.empty(); ++pass) {
    for (int i = 0; i < returned; ++i) {
      const auto& r = results[i];
      if (r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > kWorkspaceBytes) continue;
      if (pass == 0 && ReducesInOutputType(r.algo)) continue;
      candidates.push_back(&r);
    }
  }
  if (candidates.empty()) return nullptr;
  const size_t pick = tune && ShouldTune(key) ? PickFastest(*plan, candidates, key, *tune) : 0;
  plan->algo = candidates[pick]->algo;
  plan->workspace = candidates[pick]->workspaceSize;
  return plan;
}

std::string Describe(const PlanKey& k) {
  return "m=" + std::to_string(k.m) + " n=" + std::to_string(k.n) + " k=" + std::to_string(k.k) +
         " batch=" + std::to_string(k.batch) + " transA=" + (k.trans_a ? "1" : "0") + " transB=" + (k.trans_b ? "1" : "0") +
         " " + DTypeName(k.ab_type) + "->" + DTypeName(k.out_type) + (k.bias_epilogue ? " +bias epilogue" : "") +
         " alignments(a,b,c)=" + std::to_string(k.align_a) + "," + std::to_string(k.align_b) + "," + std::to_string(k.align_c);
}

struct State {
  std::mutex mu;  // held from plan lookup to the end of the enqueue (plans are shared and mutated)
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::map<std::pair<int, cudaStream_t>, void*> workspaces;  // kept for the life of the process
};
State& GetState() {
  static State* s = new State();  // never destroyed: plans must not outlive the library at exit
  return *s;
}

// Frees the fp32 scratch buffer once its uses are enqueued. As for any tensor (allocator.h), a
// block freed on a stream is safe to reuse on that stream: later work there runs after the GEMM
// and the epilogue.
struct ScratchGuard {
  int device;
  void* ptr = nullptr;
  ~ScratchGuard() {
    if (ptr) DeviceFree(device, ptr);
  }
};

}  // namespace

void MatmulCuda(const MatmulArgs& p, int device, cudaStream_t stream) {
  if (p.m < 0 || p.n < 0 || p.k < 0 || p.batch < 0 || p.stride_a < 0 || p.stride_b < 0 || p.stride_c < 0)
    throw std::invalid_argument("sizes and strides must be non-negative");
  if (!IsFloating(p.ab_type) || !IsFloating(p.c_type) || (p.bias && !IsFloating(p.bias_type)))
    throw std::invalid_argument("a/b, c and bias must have floating dtypes");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  if (p.k == 0) {  // empty sum: C = beta * C + bias
    MatmulEpilogueCuda(nullptr, p.c, p.c_type, p.bias, p.bias_type, p.beta, p.batch, p.m, p.n, p.stride_c, stream);
    return;
  }
  constexpr int64_t kIntMax = 0x7fffffff;
  if (p.m > kIntMax || p.n > kIntMax || p.k > kIntMax || p.batch > kIntMax)
    throw std::invalid_argument("cuBLASLt takes dimensions below 2^31; got m=" + std::to_string(p.m) +
                                " n=" + std::to_string(p.n) + " k=" + std::to_string(p.k) + " batch=" + std::to_string(p.batch));

  // The few-rows GEMV of decode (x @ W^T, M <= 8): a custom memory-bound kernel (matmul.cu).
  if (MatmulGemvCuda(p, stream)) return;

  // Routes, tried in order until cuBLASLt offers an algorithm:
  //   fused:   cuBLASLt writes C, bias in its BIAS epilogue (bias of C's dtype, 16-byte aligned);
  //   direct:  cuBLASLt writes C, then the epilogue kernel adds any bias (only for f32 C: a
  //            16-bit C would be rounded twice, before and after the bias);
  //   scratch: cuBLASLt writes alpha * A @ B to an fp32 buffer, the epilogue kernel forms
  //            C = buffer + beta * C + bias with one rounding (any dtype pair).
  enum class Route { kFused, kDirect, kScratch };
  const bool lt_ok = LtSupports(p.ab_type, p.c_type);
  const uint32_t bias_align = p.bias ? Alignment(p.bias, 0, 0, 1) : 0;
  std::vector<Route> routes;
  if (lt_ok && p.bias && p.bias_type == p.c_type && bias_align >= 16) routes.push_back(Route::kFused);
  if (lt_ok && (!p.bias || p.c_type == DType::F32)) routes.push_back(Route::kDirect);
  routes.push_back(Route::kScratch);

  ScratchGuard scratch{device};
  auto key_for = [&](Route route, const void* out) {
    const bool to_c = route != Route::kScratch;
    PlanKey key{};
    key.device = device;
    key.m = p.m;
    key.n = p.n;
    key.k = p.k;
    key.batch = p.batch;
    key.stride_a = p.batch > 1 ? p.stride_a : 0;
    key.stride_b = p.batch > 1 ? p.stride_b : 0;
    key.stride_c = p.batch > 1 ? (to_c ? p.stride_c : p.m * p.n) : 0;  // the fp32 scratch is dense
    key.trans_a = p.trans_a;
    key.trans_b = p.trans_b;
    key.ab_type = p.ab_type;
    key.out_type = to_c ? p.c_type : DType::F32;
    if (key.batch > 1 && key.stride_b == 0 && !key.trans_a && key.stride_a == key.m * key.k &&
        key.stride_c == key.m * key.n) {  // one shared B: a single GEMM over batch*M rows
      key.m *= key.batch;
      key.batch = 1;
      key.stride_a = key.stride_c = 0;
    }
    if (key.m > kIntMax) throw std::invalid_argument("cuBLASLt takes dimensions below 2^31; got batch*m=" + std::to_string(key.m));
    const size_t ab_bytes = DTypeSize(p.ab_type);
    key.align_a = Alignment(p.a, p.trans_a ? p.m : p.k, key.stride_a, ab_bytes);
    key.align_b = Alignment(p.b, p.trans_b ? p.k : p.n, key.stride_b, ab_bytes);
    key.align_c = Alignment(out, p.n, key.stride_c, DTypeSize(key.out_type));
    key.bias_epilogue = route == Route::kFused;
    key.align_bias = key.bias_epilogue ? bias_align : 0;
    return key;
  };

  const Api& api = GetApi();
  const cublasLtHandle_t handle = HandleFor(device);
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mu);
  void*& workspace = state.workspaces[{device, stream}];
  if (!workspace) workspace = DeviceAlloc(device, kWorkspaceBytes);

  Plan* plan = nullptr;
  PlanKey key{};
  Route route = Route::kScratch;
  void* out = nullptr;
  for (Route r : routes) {
    if (r == Route::kScratch && !scratch.ptr)
      scratch.ptr = DeviceAlloc(device, static_cast<size_t>(p.batch * p.m * p.n) * sizeof(float));
    out = r == Route::kScratch ? scratch.ptr : p.c;
    key = key_for(r, out);
    route = r;
    auto it = state.plans.find(key);
    if (it == state.plans.end()) {
      if (state.plans.size() >= kMaxPlans) state.plans.clear();
      const TuneInputs tune{p.a, p.b, workspace, stream};
      it = state.plans.emplace(key, BuildPlan(key, p.bias, &tune)).first;  // a null plan is cached too: no re-search
    }
    if ((plan = it->second.get())) break;
  }
  if (!plan) throw std::runtime_error("cuBLASLt offers no algorithm for " + Describe(key));
  if (route == Route::kFused) SetDesc<const void*>(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);

  const float alpha = p.alpha, beta = route == Route::kScratch ? 0.f : p.beta;
  // cuBLASLt's A is our B, its B our A; C and D are the same buffer.
  Check(api.cublasLtMatmul(handle, plan->desc, &alpha, p.b, plan->lt_a, p.a, plan->lt_b, &beta, out, plan->lt_c, out,
                           plan->lt_c, &plan->algo, workspace, kWorkspaceBytes, stream),
        ("cublasLtMatmul (" + Describe(key) + ")").c_str());

  if (route == Route::kScratch) {
    MatmulEpilogueCuda(static_cast<const float*>(out), p.c, p.c_type, p.bias, p.bias_type, p.beta, p.batch, p.m, p.n,
                       p.stride_c, stream);
  } else if (route == Route::kDirect && p.bias) {
    MatmulEpilogueCuda(nullptr, p.c, p.c_type, p.bias, p.bias_type, 1.f, p.batch, p.m, p.n, p.stride_c, stream);
  }
}

}  // namespace aerie

#else  // CPU-only build: the glue never reaches here (AERIE_CUDA_CALL throws first).
#include <stdexcept>

namespace aerie {
void MatmulCuda(const MatmulArgs&, int, cudaStream_t) {
  throw std::runtime_error("matmul: this addon was built without CUDA");
}
}  // namespace aerie
#endif
