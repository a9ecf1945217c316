// JavaScript glue of the attention family: attentionForward, attentionBackward.
#include <stdexcept>
#include <string>
#include <utility>

#include "attention.h"
#include "napi_util.h"

namespace aerie {
namespace {

// Reads the 12 dimension arguments that follow the tensors, starting at `i`:
// dtype, tokens, keys, numHeads, numKvHeads, headDim, batch, mask, window, tttStep, scale, impl.
AttentionDims ArgDims(const Napi::CallbackInfo& info, size_t i, const char* op) {
  AttentionDims d;
  d.dtype = ArgDType(info, i, "dtype");
  d.tokens = ArgInt(info, i + 1, "tokens");
  d.keys = ArgInt(info, i + 2, "keys");
  d.num_heads = ArgInt(info, i + 3, "numHeads");
  d.num_kv_heads = ArgInt(info, i + 4, "numKvHeads");
  d.head_dim = ArgInt(info, i + 5, "headDim");
  d.batch = ArgInt(info, i + 6, "batch");
  d.mask = static_cast<AttentionMask>(ArgInt(info, i + 7, "mask"));
  d.window = ArgInt(info, i + 8, "window");
  d.ttt_step = ArgInt(info, i + 9, "tttStep");
  d.scale = static_cast<float>(ArgDouble(info, i + 10, "scale"));
  int64_t impl = ArgInt(info, i + 11, "impl");
  if (impl < 0 || impl > 2) throw std::invalid_argument("impl must be 0 (auto), 1 (simt) or 2 (mma.sync)");
  d.impl = static_cast<AttentionImpl>(impl);
  ValidateAttentionDims(d, op);
  return d;
}

void RegisterAttention(Napi::Env env, Napi::Object exports) {
  // attentionForward(q, k, v, cuSeqlens, out, lse, ...dims)
  Export(env, exports, "attentionForward", [](const Napi::CallbackInfo& info) -> Napi::Value {
    const char* op = "attentionForward";
    TensorArg q = ArgTensor(info, 0, "q"), k = ArgTensor(info, 1, "k"), v = ArgTensor(info, 2, "v");
    TensorArg cu = ArgTensor(info, 3, "cuSeqlens"), out = ArgTensor(info, 4, "out"), lse = ArgTensor(info, 5, "lse");
    AttentionDims d = ArgDims(info, 6, op);
    int device = RequireSameDevice(op, {{"q", q}, {"k", k}, {"v", v}, {"cuSeqlens", cu}, {"out", out}, {"lse", lse}});
    const size_t q_elems = d.tokens * d.num_heads * d.head_dim, kv_elems = d.keys * d.num_kv_heads * d.head_dim;
    RequireElems(op, "q", q, q_elems, d.dtype);
    RequireElems(op, "k", k, kv_elems, d.dtype);
    RequireElems(op, "v", v, kv_elems, d.dtype);
    RequireElems(op, "cuSeqlens", cu, d.batch + 1, DType::I32);
    RequireElems(op, "out", out, q_elems, d.dtype);
    RequireElems(op, "lse", lse, d.num_heads * d.tokens, DType::F32);
    const int32_t* cu_p = static_cast<const int32_t*>(cu.data);
    float* lse_p = static_cast<float*>(lse.data);
    if (device < 0) {
      AttentionForwardCpu(d, q.data, k.data, v.data, cu_p, out.data, lse_p);
    } else {
      AERIE_CUDA_CALL(op, device, AttentionForwardCuda(d, q.data, k.data, v.data, cu_p, out.data, lse_p, CurrentStream(device)));
    }
    return info.Env().Undefined();
  });

  // attentionBackward(dout, q, k, v, out, lse, cuSeqlens, dq, dk, dv, delta, dqAccum | null, ...dims)
  Export(env, exports, "attentionBackward", [](const Napi::CallbackInfo& info) -> Napi::Value {
    const char* op = "attentionBackward";
    TensorArg dout = ArgTensor(info, 0, "dout"), q = ArgTensor(info, 1, "q"), k = ArgTensor(info, 2, "k");
    TensorArg v = ArgTensor(info, 3, "v"), out = ArgTensor(info, 4, "out"), lse = ArgTensor(info, 5, "lse");
    TensorArg cu = ArgTensor(info, 6, "cuSeqlens"), dq = ArgTensor(info, 7, "dq"), dk = ArgTensor(info, 8, "dk");
    TensorArg dv = ArgTensor(info, 9, "dv"), delta = ArgTensor(info, 10, "delta");
    TensorArg dq_accum = ArgOptionalTensor(info, 11, "dqAccum");
    AttentionDims d = ArgDims(info, 12, op);
    int device = RequireSameDevice(op, {{"dout", dout}, {"q", q}, {"k", k}, {"v", v}, {"out", out}, {"lse", lse},
                                        {"cuSeqlens", cu}, {"dq", dq}, {"dk", dk}, {"dv", dv}, {"delta", delta},
                                        {"dqAccum", dq_accum}});
    const size_t q_elems = d.tokens * d.num_heads * d.head_dim, kv_elems = d.keys * d.num_kv_heads * d.head_dim;
    for (auto [name, t] : {std::pair<const char*, TensorArg>{"dout", dout}, {"q", q}, {"out", out}, {"dq", dq}})
      RequireElems(op, name, t, q_elems, d.dtype);
    for (auto [name, t] : {std::pair<const char*, TensorArg>{"k", k}, {"v", v}, {"dk", dk}, {"dv", dv}})
      RequireElems(op, name, t, kv_elems, d.dtype);
    RequireElems(op, "lse", lse, d.num_heads * d.tokens, DType::F32);
    RequireElems(op, "delta", delta, d.num_heads * d.tokens, DType::F32);
    RequireElems(op, "cuSeqlens", cu, d.batch + 1, DType::I32);
    if (device >= 0) {
      if (!dq_accum.data && q_elems > 0) throw std::invalid_argument(std::string(op) + ": dqAccum is required on CUDA");
      RequireElems(op, "dqAccum", dq_accum, q_elems, DType::F32);
    }
    const int32_t* cu_p = static_cast<const int32_t*>(cu.data);
    const float* lse_p = static_cast<const float*>(lse.data);
    float* delta_p = static_cast<float*>(delta.data);
    float* acc_p = static_cast<float*>(dq_accum.data);
    if (device < 0) {
      AttentionBackwardCpu(d, dout.data, q.data, k.data, v.data, out.data, lse_p, cu_p, dq.data, dk.data, dv.data, delta_p, acc_p);
    } else {
      AERIE_CUDA_CALL(op, device,
                      AttentionBackwardCuda(d, dout.data, q.data, k.data, v.data, out.data, lse_p, cu_p, dq.data, dk.data,
                                            dv.data, delta_p, acc_p, CurrentStream(device)));
    }
    return info.Env().Undefined();
  });
}

}  // namespace

AERIE_REGISTER_BINDINGS(attention, RegisterAttention);

}  // namespace aerie
