/** Native surface of the loss kernel family (native/kernels/bind_loss.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface LossNative {}
