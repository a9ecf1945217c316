/** Native surface of the embedding kernel family (native/kernels/bind_embedding.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EmbeddingNative {}
