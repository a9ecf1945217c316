/** Native surface of the norm kernel family (native/kernels/bind_norm.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface NormNative {}
