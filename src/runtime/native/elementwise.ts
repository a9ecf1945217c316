/** Native surface of the elementwise kernel family (native/kernels/bind_elementwise.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ElementwiseNative {}
