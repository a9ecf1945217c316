/** Native surface of the collectives kernel family (native/kernels/bind_collectives.cc). Filled in by that family. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface CollectivesNative {}
