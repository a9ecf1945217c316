/**
 * Native surface of the collectives family (native/kernels/bind_collectives.cc): NCCL communicators
 * over CUDA tensors. libnccl is opened on first use; a missing library is an error naming every
 * path searched. Each collective is enqueued on the device's current stream and returns at once
 * (no host synchronisation); its results are ordered on that stream like any kernel's.
 * Counts are elements; `dtype` is the DTYPE_CODE of the tensors.
 */
import type { NativeStorage } from './storage.js';

/** An NCCL communicator owned by the addon. Not freed by the garbage collector: call ncclDestroy/ncclAbort. */
export type NcclCommHandle = { readonly __ncclComm: unique symbol };

/** NCCL's built-in reductions. */
export type NcclRedOp = 'sum' | 'prod' | 'max' | 'min' | 'avg';

export interface CollectivesNative {
  /** NCCL_VERSION_CODE of the loaded library, e.g. 22809 for 2.28.9. */
  ncclVersion(): number;
  /** A fresh ncclUniqueId (128 bytes), made by rank 0 and passed to every rank out of band. */
  ncclUniqueId(): Uint8Array;
  /** ncclCommInitRank on `device` (a worker thread waits for all `nranks` ranks to join). */
  ncclInit(uniqueId: Uint8Array, nranks: number, rank: number, device: number): Promise<NcclCommHandle>;
  /** ncclCommDestroy: collective (every rank destroys); waits for this rank's pending work. */
  ncclDestroy(comm: NcclCommHandle): void;
  /** ncclCommAbort: local, for error paths. */
  ncclAbort(comm: NcclCommHandle): void;
  /** send (count,) -> recv (count,) reduced over ranks; send === recv is in place. */
  ncclAllReduce(comm: NcclCommHandle, send: NativeStorage, recv: NativeStorage, count: number, dtype: number, op: NcclRedOp): void;
  /** send (sendCount,) -> recv (nranks * sendCount,), rank r's block at r * sendCount. */
  ncclAllGather(comm: NcclCommHandle, send: NativeStorage, recv: NativeStorage, sendCount: number, dtype: number): void;
  /** send (nranks * recvCount,) reduced over ranks -> recv (recvCount,): this rank's block. */
  ncclReduceScatter(
    comm: NcclCommHandle,
    send: NativeStorage,
    recv: NativeStorage,
    recvCount: number,
    dtype: number,
    op: NcclRedOp,
  ): void;
  /** root's send (count,) -> every rank's recv (count,); send is read only on root. */
  ncclBroadcast(comm: NcclCommHandle, send: NativeStorage, recv: NativeStorage, count: number, dtype: number, root: number): void;
  /** send (count,) to `peer`; pair with the peer's ncclRecv (inside ncclGroupStart/End to exchange). */
  ncclSend(comm: NcclCommHandle, send: NativeStorage, count: number, dtype: number, peer: number): void;
  /** recv (count,) from `peer`. */
  ncclRecv(comm: NcclCommHandle, recv: NativeStorage, count: number, dtype: number, peer: number): void;
  ncclGroupStart(): void;
  ncclGroupEnd(): void;
}
