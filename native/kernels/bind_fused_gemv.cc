// JavaScript glue of the fused_gemv family.
//   fusedGemv(x, w, out, bias|null, normW|null, residual|null, xDType, outDType, biasDType, normWDType,
//             m, nW, k, eps, swiglu[, prefetchL2[, swigluPairs]]) -> boolean
// true: done (always on the CPU); false: CUDA's fused kernel does not cover the call and nothing ran
// (the op then composes the unfused ops).
#include <cstdint>
#include <string>

#include "fused_gemv.h"
#include "napi_util.h"

namespace aerie {
namespace {

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (!a || !b || a_bytes == 0 || b_bytes == 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

Napi::Value FusedGemv(const Napi::CallbackInfo& info) {
  const char* op = "fusedGemv";
  TensorArg x = ArgTensor(info, 0, "x"), w = ArgTensor(info, 1, "w"), out = ArgTensor(info, 2, "out");
  TensorArg bias = ArgOptionalTensor(info, 3, "bias");
  TensorArg norm_w = ArgOptionalTensor(info, 4, "normW");
  TensorArg residual = ArgOptionalTensor(info, 5, "residual");
  FusedGemvArgs p;
  p.x_type = ArgDType(info, 6, "xDType");
  p.out_type = ArgDType(info, 7, "outDType");
  p.bias_type = ArgDType(info, 8, "biasDType");
  p.norm_w_type = ArgDType(info, 9, "normWDType");
  p.m = static_cast<int64_t>(ArgSize(info, 10, "m"));
  p.n_w = static_cast<int64_t>(ArgSize(info, 11, "nW"));
  p.k = static_cast<int64_t>(ArgSize(info, 12, "k"));
  p.eps = static_cast<float>(ArgDouble(info, 13, "eps"));
  p.swiglu = ArgBool(info, 14, "swiglu");
  p.prefetch_l2 = info.Length() > 15 && ArgBool(info, 15, "prefetchL2");
  p.swiglu_pairs = info.Length() > 16 && ArgBool(info, 16, "swigluPairs");
  p.bias = bias.data;
  p.norm_w = norm_w.data;
  p.residual = residual.data;
  FusedGemvValidate(p);

  int device = RequireSameDevice(op, {{"x", x}, {"w", w}, {"out", out}, {"bias", bias}, {"normW", norm_w}, {"residual", residual}});
  const int64_t n_out = p.swiglu ? p.n_w / 2 : p.n_w;
  const size_t x_elems = static_cast<size_t>(p.m * p.k), out_elems = static_cast<size_t>(p.m * n_out);
  RequireElems(op, "x", x, x_elems, p.x_type);
  RequireElems(op, "w", w, static_cast<size_t>(p.n_w * p.k), p.x_type);
  RequireElems(op, "out", out, out_elems, p.out_type);
  if (bias.data) RequireElems(op, "bias", bias, static_cast<size_t>(p.n_w), p.bias_type);
  if (norm_w.data) RequireElems(op, "normW", norm_w, static_cast<size_t>(p.k), p.norm_w_type);
  if (residual.data) RequireElems(op, "residual", residual, out_elems, p.out_type);

  // out is written while every input is still being read (by other threads or blocks): it may only
  // share memory with residual, and then exactly (in place: each element is read, then written, by
  // the same thread).
  const size_t out_bytes = out_elems * DTypeSize(p.out_type);
  const std::pair<const char*, std::pair<const void*, size_t>> inputs[] = {
      {"x", {x.data, x_elems * DTypeSize(p.x_type)}},
      {"w", {w.data, static_cast<size_t>(p.n_w * p.k) * DTypeSize(p.x_type)}},
      {"bias", {bias.data, bias.data ? static_cast<size_t>(p.n_w) * DTypeSize(p.bias_type) : 0}},
      {"normW", {norm_w.data, norm_w.data ? static_cast<size_t>(p.k) * DTypeSize(p.norm_w_type) : 0}},
  };
  for (const auto& [name, span] : inputs)
    if (Overlap(out.data, out_bytes, span.first, span.second))
      throw std::invalid_argument(std::string(op) + ": out overlaps " + name + " (only residual may be updated in place)");
  if (residual.data && residual.data != out.data && Overlap(out.data, out_bytes, residual.data, out_bytes))
    throw std::invalid_argument(std::string(op) + ": out partly overlaps residual (in place needs the same tensor)");

  p.x = x.data;
  p.w = w.data;
  p.out = out.data;
  bool done = true;
  if (device < 0) FusedGemvCpu(p);
  else AERIE_CUDA_CALL(op, device, done = FusedGemvCuda(p, CurrentStream(device)));
  return Napi::Boolean::New(info.Env(), done);
}

// fusedGemvRotaryCache(x, w, q, bias|null, normW|null, kCache, vCache, positions, slotMapping, invFreq,
//                      xDType, biasDType, normWDType, m, k, heads, kvHeads, headDim, numBlocks, blockSize,
//                      eps, attentionScaling) -> boolean
// The stacked qkv product with the rotary epilogue (fused_gemv.h FusedGemvRotary). false: CUDA's
// kernel does not cover the call and nothing ran.
Napi::Value FusedGemvRotaryCache(const Napi::CallbackInfo& info) {
  const char* op = "fusedGemvRotaryCache";
  TensorArg x = ArgTensor(info, 0, "x"), w = ArgTensor(info, 1, "w"), q = ArgTensor(info, 2, "q");
  TensorArg bias = ArgOptionalTensor(info, 3, "bias");
  TensorArg norm_w = ArgOptionalTensor(info, 4, "normW");
  TensorArg k_cache = ArgTensor(info, 5, "kCache"), v_cache = ArgTensor(info, 6, "vCache");
  TensorArg positions = ArgTensor(info, 7, "positions"), slots = ArgTensor(info, 8, "slotMapping");
  TensorArg inv_freq = ArgTensor(info, 9, "invFreq");
  FusedGemvArgs p;
  FusedGemvRotary r;
  p.x_type = p.out_type = ArgDType(info, 10, "xDType");
  p.bias_type = ArgDType(info, 11, "biasDType");
  p.norm_w_type = ArgDType(info, 12, "normWDType");
  p.m = static_cast<int64_t>(ArgSize(info, 13, "m"));
  p.k = static_cast<int64_t>(ArgSize(info, 14, "k"));
  r.heads = static_cast<int64_t>(ArgSize(info, 15, "heads"));
  r.kv_heads = static_cast<int64_t>(ArgSize(info, 16, "kvHeads"));
  r.head_dim = static_cast<int64_t>(ArgSize(info, 17, "headDim"));
  r.num_blocks = static_cast<int64_t>(ArgSize(info, 18, "numBlocks"));
  r.block_size = static_cast<int64_t>(ArgSize(info, 19, "blockSize"));
  p.eps = static_cast<float>(ArgDouble(info, 20, "eps"));
  r.attention_scaling = static_cast<float>(ArgDouble(info, 21, "attentionScaling"));
  p.n_w = (r.heads + 2 * r.kv_heads) * r.head_dim;
  p.bias = bias.data;
  p.norm_w = norm_w.data;
  r.q = q.data;
  r.k_cache = k_cache.data;
  r.v_cache = v_cache.data;
  r.positions = static_cast<const int32_t*>(positions.data);
  r.slot_mapping = static_cast<const int32_t*>(slots.data);
  r.inv_freq = static_cast<const float*>(inv_freq.data);
  p.rotary = &r;
  FusedGemvValidate(p);

  int device = RequireSameDevice(op, {{"x", x}, {"w", w}, {"q", q}, {"bias", bias}, {"normW", norm_w}, {"kCache", k_cache},
                                      {"vCache", v_cache}, {"positions", positions}, {"slotMapping", slots}, {"invFreq", inv_freq}});
  const size_t cache_elems = static_cast<size_t>(r.num_blocks * r.block_size * r.kv_heads * r.head_dim);
  RequireElems(op, "x", x, static_cast<size_t>(p.m * p.k), p.x_type);
  RequireElems(op, "w", w, static_cast<size_t>(p.n_w * p.k), p.x_type);
  RequireElems(op, "q", q, static_cast<size_t>(p.m * r.heads * r.head_dim), p.x_type);
  if (bias.data) RequireElems(op, "bias", bias, static_cast<size_t>(p.n_w), p.bias_type);
  if (norm_w.data) RequireElems(op, "normW", norm_w, static_cast<size_t>(p.k), p.norm_w_type);
  RequireElems(op, "kCache", k_cache, cache_elems, p.x_type);
  RequireElems(op, "vCache", v_cache, cache_elems, p.x_type);
  RequireElems(op, "positions", positions, static_cast<size_t>(p.m), DType::I32);
  RequireElems(op, "slotMapping", slots, static_cast<size_t>(p.m), DType::I32);
  RequireElems(op, "invFreq", inv_freq, static_cast<size_t>(r.head_dim / 2), DType::F32);

  // The outputs (q, the caches) are written while every input is still being read by other warps.
  const size_t es = DTypeSize(p.x_type);
  const std::pair<const char*, std::pair<const void*, size_t>> outputs[] = {
      {"q", {q.data, static_cast<size_t>(p.m * r.heads * r.head_dim) * es}},
      {"kCache", {k_cache.data, cache_elems * es}},
      {"vCache", {v_cache.data, cache_elems * es}},
  };
  const std::pair<const char*, std::pair<const void*, size_t>> inputs[] = {
      {"x", {x.data, static_cast<size_t>(p.m * p.k) * es}},
      {"w", {w.data, static_cast<size_t>(p.n_w * p.k) * es}},
      {"bias", {bias.data, bias.data ? static_cast<size_t>(p.n_w) * DTypeSize(p.bias_type) : 0}},
      {"normW", {norm_w.data, norm_w.data ? static_cast<size_t>(p.k) * DTypeSize(p.norm_w_type) : 0}},
      {"positions", {positions.data, static_cast<size_t>(p.m) * 4}},
      {"slotMapping", {slots.data, static_cast<size_t>(p.m) * 4}},
      {"invFreq", {inv_freq.data, static_cast<size_t>(r.head_dim / 2) * 4}},
  };
  for (size_t i = 0; i < 3; ++i) {
    const auto& [out_name, out_span] = outputs[i];
    for (const auto& [name, span] : inputs)
      if (Overlap(out_span.first, out_span.second, span.first, span.second))
        throw std::invalid_argument(std::string(op) + ": " + out_name + " overlaps " + name);
    for (size_t j = i + 1; j < 3; ++j)
      if (Overlap(out_span.first, out_span.second, outputs[j].second.first, outputs[j].second.second))
        throw std::invalid_argument(std::string(op) + ": " + out_name + " overlaps " + outputs[j].first);
  }

  p.x = x.data;
  p.w = w.data;
  bool done = true;
  if (device < 0) FusedGemvCpu(p);
  else AERIE_CUDA_CALL(op, device, done = FusedGemvCuda(p, CurrentStream(device)));
  return Napi::Boolean::New(info.Env(), done);
}

void RegisterFusedGemv(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "fusedGemv", FusedGemv);
  Export(env, exports, "fusedGemvRotaryCache", FusedGemvRotaryCache);
}

}  // namespace

AERIE_REGISTER_BINDINGS(fused_gemv, RegisterFusedGemv);

}  // namespace aerie
