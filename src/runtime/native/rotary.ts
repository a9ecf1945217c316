/** Native surface of the rotary kernel family (native/kernels/bind_rotary.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RotaryNative {}
