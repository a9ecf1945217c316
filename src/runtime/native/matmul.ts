/** Native surface of the matmul kernel family (native/kernels/bind_matmul.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface MatmulNative {}
