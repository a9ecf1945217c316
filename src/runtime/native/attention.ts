/** Native surface of the attention kernel family (native/kernels/bind_attention.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AttentionNative {}
