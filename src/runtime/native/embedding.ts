/** Native surface of the embedding kernel family (native/kernels/bind_embedding.cc). */
import type { NativeStorage } from './storage.js';

export interface EmbeddingNative {
  /**
   * out [tokens, hidden] (weight's dtype) = rows of weight [vocab, hidden] at ids [tokens] (int32 or
   * int64). CPU: an id outside [0, vocab) throws; CUDA: its row is written as zeros.
   */
  embedding(
    weight: NativeStorage,
    ids: NativeStorage,
    out: NativeStorage,
    weightDType: number,
    idDType: number,
    tokens: number,
    vocab: number,
    hidden: number,
  ): void;
  /**
   * dweight float32 [vocab, hidden] += scatter-add of dout [tokens, hidden] by ids [tokens].
   * CPU: deterministic, out-of-range ids throw; CUDA: fp32 atomicAdd (order not deterministic),
   * out-of-range ids skipped.
   */
  embeddingBackward(
    dout: NativeStorage,
    ids: NativeStorage,
    dweight: NativeStorage,
    doutDType: number,
    idDType: number,
    tokens: number,
    vocab: number,
    hidden: number,
  ): void;
}
