/** Native surface of the paged_attention kernel family (native/kernels/bind_paged_attention.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PagedAttentionNative {}
