/** Native surface of the optimizer kernel family (native/kernels/bind_optimizer.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface OptimizerNative {}
