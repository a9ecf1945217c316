/** Native surface of the activation kernel family (native/kernels/bind_activation.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ActivationNative {}
