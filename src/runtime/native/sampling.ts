/** Native surface of the sampling kernel family (native/kernels/bind_sampling.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SamplingNative {}
