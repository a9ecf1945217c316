// JavaScript glue of the embedding family.
//   embedding(weight, ids, out, weightDType, idDType, tokens, vocab, hidden)
//   embeddingBackward(dout, ids, dweight, doutDType, idDType, tokens, vocab, hidden)
#include "embedding.h"
#include "napi_util.h"

namespace aerie {
namespace {

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const char* op = "embedding";
  TensorArg weight = ArgTensor(info, 0, "weight"), ids = ArgTensor(info, 1, "ids"), out = ArgTensor(info, 2, "out");
  EmbeddingArgs a;
  a.weight_type = ArgDType(info, 3, "weightDType");
  a.id_type = ArgDType(info, 4, "idDType");
  a.tokens = ArgSize(info, 5, "tokens");
  a.vocab = ArgSize(info, 6, "vocab");
  a.hidden = ArgSize(info, 7, "hidden");
  CheckEmbeddingArgs(a);
  int device = RequireSameDevice(op, {{"weight", weight}, {"ids", ids}, {"out", out}});
  RequireElems(op, "weight", weight, static_cast<size_t>(a.vocab * a.hidden), a.weight_type);
  RequireElems(op, "ids", ids, static_cast<size_t>(a.tokens), a.id_type);
  RequireElems(op, "out", out, static_cast<size_t>(a.tokens * a.hidden), a.weight_type);
  a.weight = weight.data;
  a.ids = ids.data;
  a.out = out.data;
  if (device < 0) EmbeddingCpu(a);
  else AERIE_CUDA_CALL("embedding", device, EmbeddingCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingBackward";
  TensorArg dout = ArgTensor(info, 0, "dout"), ids = ArgTensor(info, 1, "ids"), dweight = ArgTensor(info, 2, "dweight");
  EmbeddingBackwardArgs a;
  a.dout_type = ArgDType(info, 3, "doutDType");
  a.id_type = ArgDType(info, 4, "idDType");
  a.tokens = ArgSize(info, 5, "tokens");
  a.vocab = ArgSize(info, 6, "vocab");
  a.hidden = ArgSize(info, 7, "hidden");
  CheckEmbeddingBackwardArgs(a);
  int device = RequireSameDevice(op, {{"dout", dout}, {"ids", ids}, {"dweight", dweight}});
  RequireElems(op, "dout", dout, static_cast<size_t>(a.tokens * a.hidden), a.dout_type);
  RequireElems(op, "ids", ids, static_cast<size_t>(a.tokens), a.id_type);
  RequireElems(op, "dweight", dweight, static_cast<size_t>(a.vocab * a.hidden), DType::F32);
  a.dout = dout.data;
  a.ids = ids.data;
  a.dweight = static_cast<float*>(dweight.data);
  if (device < 0) EmbeddingBackwardCpu(a);
  else AERIE_CUDA_CALL("embeddingBackward", device, EmbeddingBackwardCuda(a, CurrentStream(device)));
  return info.Env().Undefined();
}

void RegisterEmbedding(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "embedding", Embedding);
  Export(env, exports, "embeddingBackward", EmbeddingBackward);
}

}  // namespace

AERIE_REGISTER_BINDINGS(embedding, RegisterEmbedding);

}  // namespace aerie
