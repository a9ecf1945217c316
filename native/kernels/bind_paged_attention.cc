// JavaScript glue of the paged_attention family.
//   cacheWrite(k, v, kCache, vCache, slotMapping, dtype, tokens, numBlocks, blockSize, kvHeads, headDim)
//   pagedAttention(q, kCache, vCache, blockTable, seqLens, out, workspace|null, dtype, batch, queries,
//                  heads, kvHeads, headDim, numBlocks, blockSize, maxBlocks, scale, window, numSplits)
#include "napi_util.h"
#include "paged_attention.h"

namespace aerie {
namespace {

Napi::Value CacheWrite(const Napi::CallbackInfo& info) {
  const char* op = "cacheWrite";
  TensorArg k = ArgTensor(info, 0, "k"), v = ArgTensor(info, 1, "v");
  TensorArg k_cache = ArgTensor(info, 2, "kCache"), v_cache = ArgTensor(info, 3, "vCache");
  TensorArg slots = ArgTensor(info, 4, "slotMapping");
  CacheWriteArgs a;
  a.dtype = ArgDType(info, 5, "dtype");
  a.tokens = ArgSize(info, 6, "tokens");
  a.num_blocks = ArgSize(info, 7, "numBlocks");
  a.block_size = ArgSize(info, 8, "blockSize");
  a.kv_heads = ArgSize(info, 9, "kvHeads");
  a.head_dim = ArgSize(info, 10, "headDim");
  CheckCacheWriteArgs(a);
  int device = RequireSameDevice(op, {{"k", k}, {"v", v}, {"kCache", k_cache}, {"vCache", v_cache}, {"slotMapping", slots}});
  const size_t row = static_cast<size_t>(a.kv_heads * a.head_dim);
  RequireElems(op, "k", k, a.tokens * row, a.dtype);
  RequireElems(op, "v", v, a.tokens * row, a.dtype);
  RequireElems(op, "kCache", k_cache, a.num_blocks * a.block_size * row, a.dtype);
  RequireElems(op, "vCache", v_cache, a.num_blocks * a.block_size * row, a.dtype);
  RequireElems(op, "slotMapping", slots, a.tokens, DType::I32);
  a.k = k.data;
  a.v = v.data;
  a.k_cache = k_cache.data;
  a.v_cache = v_cache.data;
  a.slot_mapping = static_cast<const int32_t*>(slots.data);
  if (device < 0) CacheWriteCpu(a);
  else AERIE_CUDA_CALL("cacheWrite", device, CacheWriteCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  const char* op = "pagedAttention";
  TensorArg q = ArgTensor(info, 0, "q"), k_cache = ArgTensor(info, 1, "kCache"), v_cache = ArgTensor(info, 2, "vCache");
  TensorArg table = ArgTensor(info, 3, "blockTable"), lens = ArgTensor(info, 4, "seqLens"), out = ArgTensor(info, 5, "out");
  TensorArg workspace = ArgOptionalTensor(info, 6, "workspace");
  PagedAttentionArgs a;
  a.dtype = ArgDType(info, 7, "dtype");
  a.batch = ArgSize(info, 8, "batch");
  a.queries = ArgSize(info, 9, "queries");
  a.heads = ArgSize(info, 10, "heads");
  a.kv_heads = ArgSize(info, 11, "kvHeads");
  a.head_dim = ArgSize(info, 12, "headDim");
  a.num_blocks = ArgSize(info, 13, "numBlocks");
  a.block_size = ArgSize(info, 14, "blockSize");
  a.max_blocks = ArgSize(info, 15, "maxBlocks");
  a.scale = static_cast<float>(ArgDouble(info, 16, "scale"));
  a.window = ArgSize(info, 17, "window");
  a.num_splits = ArgSize(info, 18, "numSplits");
  CheckPagedAttentionArgs(a);
  int device = RequireSameDevice(op, {{"q", q}, {"kCache", k_cache}, {"vCache", v_cache}, {"blockTable", table},
                                      {"seqLens", lens}, {"out", out}, {"workspace", workspace}});
  const size_t q_elems = static_cast<size_t>(a.batch * a.queries * a.heads * a.head_dim);
  const size_t cache_elems = static_cast<size_t>(a.num_blocks * a.block_size * a.kv_heads * a.head_dim);
  RequireElems(op, "q", q, q_elems, a.dtype);
  RequireElems(op, "out", out, q_elems, a.dtype);
  RequireElems(op, "kCache", k_cache, cache_elems, a.dtype);
  RequireElems(op, "vCache", v_cache, cache_elems, a.dtype);
  RequireElems(op, "blockTable", table, static_cast<size_t>(a.batch * a.max_blocks), DType::I32);
  RequireElems(op, "seqLens", lens, static_cast<size_t>(a.batch), DType::I32);
  if (device >= 0) {
    const int64_t need = PagedAttentionWorkspaceElems(a);
    if (need > 0 && !workspace.data)
      throw std::invalid_argument("pagedAttention: numSplits " + std::to_string(a.num_splits) + " needs a float32 workspace of " +
                                  std::to_string(need) + " elements");
    if (need > 0) RequireElems(op, "workspace", workspace, static_cast<size_t>(need), DType::F32);
  }
  a.q = q.data;
  a.k_cache = k_cache.data;
  a.v_cache = v_cache.data;
  a.block_table = static_cast<const int32_t*>(table.data);
  a.seq_lens = static_cast<const int32_t*>(lens.data);
  a.out = out.data;
  a.workspace = static_cast<float*>(workspace.data);
  if (device < 0) PagedAttentionCpu(a);
  else AERIE_CUDA_CALL("pagedAttention", device, PagedAttentionCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterPagedAttention(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "cacheWrite", CacheWrite);
  Export(env, exports, "pagedAttention", PagedAttention);
}

}  // namespace

AERIE_REGISTER_BINDINGS(paged_attention, RegisterPagedAttention);

}  // namespace aerie
