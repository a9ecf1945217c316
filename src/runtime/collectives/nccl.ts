/**
 * NcclCommunicator: collectives over CUDA tensors through NCCL, one GPU per process (or per
 * communicator). Rank 0 makes the unique id (ncclUniqueId()) and hands it to every rank out of band
 * (IPC, a file, a TCP store); each rank then creates its communicator with the same id.
 *
 * Stream ordering: every operation is enqueued on the device's current stream and its promise
 * resolves as soon as it is enqueued, not when the data has arrived. Kernels launched later on that
 * stream, and host reads of the tensors (toArray, which copy on the current stream), see the
 * results; code on other streams must wait on an event. barrier() is the exception: it waits on the
 * host until every rank has reached it.
 */
import { native, type NativeStorage } from '../binding.js';
import type { NcclCommHandle } from '../native/collectives.js';
import { type Device, deviceIndex } from '../device.js';
import { fail } from '../check.js';
import { Tensor } from '../tensor.js';
import {
  type Communicator,
  type ReduceOp,
  checkGroup,
  checkPeer,
  checkReduce,
  checkTensor,
  gatheredShape,
  scatteredShape,
} from './communicator.js';

/** A fresh 128-byte NCCL unique id; create it on rank 0 and pass it to every rank. */
export function ncclUniqueId(): Uint8Array {
  return native().ncclUniqueId();
}

/** NCCL_VERSION_CODE of the loaded libnccl (e.g. 22809 for 2.28.9); throws when libnccl is missing. */
export function ncclVersion(): number {
  return native().ncclVersion();
}

export interface NcclCommunicatorOptions {
  rank: number;
  worldSize: number;
  /** The CUDA device this rank uses. */
  device: Device;
  /** From ncclUniqueId() on rank 0: the same bytes on every rank. */
  uniqueId: Uint8Array;
}

/** One send or receive of a grouped point-to-point batch. */
export interface P2POp {
  op: 'send' | 'recv';
  tensor: Tensor;
  peer: number;
}

export class NcclCommunicator implements Communicator {
  readonly backend = 'nccl' as const;
  private handle: NcclCommHandle | null;

  private constructor(
    handle: NcclCommHandle,
    readonly rank: number,
    readonly worldSize: number,
    readonly device: Device,
  ) {
    this.handle = handle;
  }

  /** ncclCommInitRank: resolves once all worldSize ranks have joined with the same uniqueId. */
  static async create(options: NcclCommunicatorOptions): Promise<NcclCommunicator> {
    const { rank, worldSize, device, uniqueId } = options;
    checkGroup('NcclCommunicator', rank, worldSize);
    if (device === undefined || device === 'cpu') fail('NcclCommunicator', `needs a CUDA device, got '${String(device)}'; use the tcp backend for CPU tensors`);
    if (!(uniqueId instanceof Uint8Array) || uniqueId.byteLength !== 128) {
      fail('NcclCommunicator', 'uniqueId must be the 128-byte Uint8Array from ncclUniqueId() on rank 0');
    }
    const handle = await native().ncclInit(uniqueId, worldSize, rank, deviceIndex(device));
    return new NcclCommunicator(handle, rank, worldSize, device);
  }

  private comm(op: string): NcclCommHandle {
    if (!this.handle) fail(op, 'the communicator is closed');
    return this.handle;
  }

  allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    return attempt(() => {
      checkTensor('allReduce', 't', t, this.device);
      checkReduce('allReduce', t, op);
      native().ncclAllReduce(this.comm('allReduce'), t.storage, t.storage, t.numel, t.dtypeCode, op);
      return t;
    });
  }

  allGather(t: Tensor): Promise<Tensor> {
    return attempt(() => {
      checkTensor('allGather', 't', t, this.device);
      const comm = this.comm('allGather');
      const out = Tensor.empty(gatheredShape(t.shape, this.worldSize), t.dtype, this.device);
      try {
        native().ncclAllGather(comm, t.storage, out.storage, t.numel, t.dtypeCode);
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    });
  }

  reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    return attempt(() => {
      checkTensor('reduceScatter', 't', t, this.device);
      checkReduce('reduceScatter', t, op);
      const shape = scatteredShape('reduceScatter', t, this.worldSize);
      const comm = this.comm('reduceScatter');
      const out = Tensor.empty(shape, t.dtype, this.device);
      try {
        native().ncclReduceScatter(comm, t.storage, out.storage, out.numel, t.dtypeCode, op);
      } catch (e) {
        out.dispose();
        throw e;
      }
      return out;
    });
  }

  broadcast(t: Tensor, root: number): Promise<Tensor> {
    return attempt(() => {
      checkTensor('broadcast', 't', t, this.device);
      checkPeer('broadcast', 'root', root, this.worldSize);
      native().ncclBroadcast(this.comm('broadcast'), t.storage, t.storage, t.numel, t.dtypeCode, root);
      return t;
    });
  }

  /** A lone send completes only with the peer's matching recv; use sendRecv or batch to exchange. */
  send(t: Tensor, peer: number): Promise<void> {
    return attempt(() => {
      this.enqueueP2P('send', [{ op: 'send', tensor: t, peer }]);
    });
  }

  recv(t: Tensor, peer: number): Promise<Tensor> {
    return attempt(() => {
      this.enqueueP2P('recv', [{ op: 'recv', tensor: t, peer }]);
      return t;
    });
  }

  sendRecv(sendT: Tensor, dst: number, recvT: Tensor, src: number): Promise<Tensor> {
    return attempt(() => {
      this.enqueueP2P('sendRecv', [
        { op: 'send', tensor: sendT, peer: dst },
        { op: 'recv', tensor: recvT, peer: src },
      ]);
      return recvT;
    });
  }

  /** Sends and receives in one NCCL group (ncclGroupStart/End), so any pattern of exchanges is safe. */
  batch(ops: readonly P2POp[]): Promise<void> {
    return attempt(() => this.enqueueP2P('batch', ops));
  }

  private enqueueP2P(name: string, ops: readonly P2POp[]): void {
    for (const [i, p] of ops.entries()) {
      checkTensor(name, `${p.op} #${i}`, p.tensor, this.device);
      checkPeer(name, 'peer', p.peer, this.worldSize);
    }
    const comm = this.comm(name);
    const b = native();
    const enqueue = (p: P2POp, s: NativeStorage) =>
      p.op === 'send' ? b.ncclSend(comm, s, p.tensor.numel, p.tensor.dtypeCode, p.peer) : b.ncclRecv(comm, s, p.tensor.numel, p.tensor.dtypeCode, p.peer);
    if (ops.length === 1) {
      enqueue(ops[0], ops[0].tensor.storage);
      return;
    }
    b.ncclGroupStart();
    try {
      for (const p of ops) enqueue(p, p.tensor.storage);
    } finally {
      b.ncclGroupEnd();
    }
  }

  /** Waits on the host until every rank has reached the barrier (an all-reduce of one element, then a sync). */
  barrier(): Promise<void> {
    return attempt(() => {
      const comm = this.comm('barrier');
      const token = Tensor.zeros([1], 'int32', this.device);
      try {
        native().ncclAllReduce(comm, token.storage, token.storage, 1, token.dtypeCode, 'sum');
        token.toArray(); // a copy on the current stream: returns once the all-reduce is done
      } finally {
        token.dispose();
      }
    });
  }

  /** ncclCommDestroy: every rank must call it; this rank's pending work completes first. */
  close(): Promise<void> {
    return attempt(() => {
      if (!this.handle) return;
      const h = this.handle;
      this.handle = null;
      native().ncclDestroy(h);
    });
  }

  /** ncclCommAbort: drops the communicator at once, without the other ranks (for error paths). */
  abort(): void {
    if (!this.handle) return;
    const h = this.handle;
    this.handle = null;
    native().ncclAbort(h);
  }
}

/** Runs an enqueueing body and reports its outcome as a promise (argument errors become rejections). */
function attempt<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (e) {
    return Promise.reject(e);
  }
}
