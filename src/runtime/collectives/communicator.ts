/**
 * The collective-communication interface shared by the NCCL backend (CUDA tensors, one GPU per
 * process) and the TCP backend (CPU tensors between processes, for CPU-only machines and tests),
 * plus the argument checks both use, so misuse reads the same whichever backend runs.
 *
 * Shapes: allGather concatenates along the first dimension ([d0, ...] -> [worldSize * d0, ...]; a
 * scalar counts as [1]); reduceScatter is its inverse ([worldSize * k, ...] -> [k, ...], rank r
 * keeping block r). allReduce, broadcast and recv write into the tensor they are given.
 */
import { fail } from '../check.js';
import { type DType, isFloating } from '../dtype.js';
import type { Device } from '../device.js';
import type { Shape, Tensor } from '../tensor.js';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'avg', 'max', 'min'];

/** Dtypes the reductions accept (avg: floating only). Gathers, broadcasts and send/recv take any dtype. */
export const REDUCE_DTYPES: readonly DType[] = ['float32', 'bfloat16', 'float16', 'int32', 'int64'];

export type Backend = 'nccl' | 'tcp';

export interface Communicator {
  readonly backend: Backend;
  readonly rank: number;
  readonly worldSize: number;
  /** Where this communicator's tensors live: a CUDA device (nccl) or 'cpu' (tcp). */
  readonly device: Device;
  /** Reduces `t` over all ranks, in place; resolves to `t`. */
  allReduce(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /** Every rank's `t` concatenated along the first dimension, in rank order (a new tensor). */
  allGather(t: Tensor): Promise<Tensor>;
  /** Reduces `t` ([worldSize * k, ...]) over ranks and returns this rank's block [k, ...] (a new tensor). */
  reduceScatter(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /** Copies root's `t` into every rank's `t`; resolves to `t`. */
  broadcast(t: Tensor, root: number): Promise<Tensor>;
  /** Sends `t` to `peer`, whose recv of the same dtype and size takes it. */
  send(t: Tensor, peer: number): Promise<void>;
  /** Receives from `peer` into `t`; resolves to `t`. */
  recv(t: Tensor, peer: number): Promise<Tensor>;
  /** send(sendT, dst) and recv(recvT, src) together (safe for exchanges in a ring); resolves to recvT. */
  sendRecv(sendT: Tensor, dst: number, recvT: Tensor, src: number): Promise<Tensor>;
  /** Resolves once every rank has reached the barrier. */
  barrier(): Promise<void>;
  /** Releases the communicator (every rank should call it); later calls fail. */
  close(): Promise<void>;
}

/** `worldSize` and `rank` form a valid group. */
export function checkGroup(op: string, rank: number, worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1) fail(op, `worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) fail(op, `rank ${rank} is outside [0, ${worldSize})`);
}

/** `t` is live and on the communicator's device. */
export function checkTensor(op: string, name: string, t: Tensor, device: Device): void {
  if (t.isDisposed) fail(op, `${name} was already disposed`);
  if (t.device !== device) fail(op, `${name} is ${t.describe()} but this communicator works on ${device}`);
}

export function checkReduce(op: string, t: Tensor, reduce: ReduceOp): void {
  if (!REDUCE_OPS.includes(reduce)) fail(op, `unknown reduction '${reduce}'; expected ${REDUCE_OPS.join(', ')}`);
  if (!REDUCE_DTYPES.includes(t.dtype)) fail(op, `cannot reduce ${t.describe()}; expected dtype ${REDUCE_DTYPES.join(', ')}`);
  if (reduce === 'avg' && !isFloating(t.dtype)) fail(op, `avg needs a floating dtype, got ${t.describe()}`);
}

export function checkPeer(op: string, name: string, peer: number, worldSize: number): void {
  if (!Number.isInteger(peer) || peer < 0 || peer >= worldSize) fail(op, `${name} ${peer} is outside [0, ${worldSize})`);
}

/** Shape of allGather's output. */
export function gatheredShape(shape: Shape, worldSize: number): Shape {
  if (shape.length === 0) return [worldSize];
  return [worldSize * shape[0], ...shape.slice(1)];
}

/** Shape of reduceScatter's output; the first dimension must split evenly over the ranks. */
export function scatteredShape(op: string, t: Tensor, worldSize: number): Shape {
  if (t.rank === 0 || t.shape[0] % worldSize !== 0) {
    fail(op, `the first dimension of ${t.describe()} must be a multiple of worldSize ${worldSize}`);
  }
  return [t.shape[0] / worldSize, ...t.shape.slice(1)];
}
