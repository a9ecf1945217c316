/** The native storage and handle types shared by the core binding and every kernel family's surface. */
/** A span of bytes on the CPU or a CUDA device (native/src/storage.h). */
export interface NativeStorage {
  readonly bytes: number;
  /** -1 for the CPU, N for cuda:N. */
  readonly device: number;
  readonly freed: boolean;
  free(): void;
  view(byteOffset: number, bytes: number): NativeStorage;
  read(byteOffset?: number, bytes?: number): ArrayBuffer;
  write(data: ArrayBufferView | ArrayBuffer, byteOffset?: number): void;
  copyFrom(src: NativeStorage): void;
  fill(byte: number): void;
}

/** Opaque handles owned by the addon (freed explicitly, or by the garbage collector). */
export type StreamHandle = { readonly __stream: unique symbol };
export type EventHandle = { readonly __event: unique symbol };
export type GraphHandle = { readonly __graph: unique symbol };

