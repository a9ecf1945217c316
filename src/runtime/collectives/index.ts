/**
 * Collective communication: one Communicator interface, two backends.
 *   - 'nccl': CUDA tensors, one GPU per rank, through NCCL (opened at run time).
 *   - 'tcp': CPU tensors between processes over node:net (CPU-only machines, multi-process tests).
 */
import { fail } from '../check.js';
import type { Device } from '../device.js';
import type { Backend, Communicator } from './communicator.js';
import { NcclCommunicator } from './nccl.js';
import { TcpCommunicator, type TcpRendezvous } from './tcp.js';

export * from './communicator.js';
export { NcclCommunicator, ncclUniqueId, ncclVersion, type NcclCommunicatorOptions, type P2POp } from './nccl.js';
export { TcpCommunicator, type TcpCommunicatorOptions, type TcpRendezvous } from './tcp.js';

export interface CreateCommunicatorOptions {
  backend: Backend;
  rank: number;
  worldSize: number;
  /** nccl: this rank's CUDA device (required). tcp: 'cpu' (the default). */
  device?: Device;
  /** tcp: rank 0's address (and the shared token). */
  rendezvous?: TcpRendezvous;
  /** nccl: the 128-byte id from ncclUniqueId() on rank 0, the same on every rank. */
  uniqueId?: Uint8Array;
  /** tcp: longest wait for a peer inside an operation (default 120 s). */
  timeoutMs?: number;
  /** tcp: longest wait for the group to form (default 60 s). */
  connectTimeoutMs?: number;
}

/** Forms a group; resolves once every rank has joined. */
export async function createCommunicator(options: CreateCommunicatorOptions): Promise<Communicator> {
  const op = 'createCommunicator';
  switch (options.backend) {
    case 'nccl':
      if (!options.uniqueId) fail(op, "the nccl backend needs uniqueId (ncclUniqueId() on rank 0, passed to every rank)");
      if (!options.device) fail(op, "the nccl backend needs device, e.g. 'cuda:0'");
      return NcclCommunicator.create({ rank: options.rank, worldSize: options.worldSize, device: options.device, uniqueId: options.uniqueId });
    case 'tcp':
      if (options.device !== undefined && options.device !== 'cpu') {
        fail(op, `the tcp backend works on CPU tensors, got device '${options.device}'; use the nccl backend for CUDA`);
      }
      if (!options.rendezvous) fail(op, 'the tcp backend needs rendezvous: { host, port, token? } of rank 0');
      return TcpCommunicator.create({
        rank: options.rank,
        worldSize: options.worldSize,
        rendezvous: options.rendezvous,
        timeoutMs: options.timeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
      });
    default:
      fail(op, `unknown backend '${String((options as { backend: unknown }).backend)}'; expected 'nccl' or 'tcp'`);
  }
}
