/**
 * One rank of a multi-process collective test. Compiled by tsc to dist/test/helpers/ and started by
 * test/helpers/collective_procs.ts with an IPC channel. Protocol (messages on the channel):
 *   parent -> worker  { type: 'start', scenario, rank, worldSize, port?, uniqueId?, timeoutMs? }
 *   worker -> parent  { type: 'rendezvous', port?, uniqueId? }   (rank 0: what the others need)
 *   worker -> parent  { type: 'result', ok, data?, error? }
 * then the worker closes its communicator and exits on its own (a hang means a leaked handle).
 */
import { createCommunicator, ncclUniqueId, type Communicator } from '../../src/runtime/collectives/index.js';
import { Tensor } from '../../src/runtime/tensor.js';
import type { DType } from '../../src/runtime/dtype.js';
import type { Device } from '../../src/runtime/device.js';
import { ncclInputs, tcpInputs } from './collective_cases.js';

export interface StartMessage {
  type: 'start';
  scenario: 'tcp-collectives' | 'tcp-peer-death' | 'tcp-timeout' | 'nccl-collectives';
  rank: number;
  worldSize: number;
  port?: number;
  uniqueId?: number[];
  timeoutMs?: number;
}

function send(message: unknown): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

function t(values: number[] | string[], shape: number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  const data = dtype === 'int64' ? BigInt64Array.from((values as string[]).map((v) => BigInt(v))) : (values as number[]);
  return Tensor.fromArray(data, shape, { dtype, device });
}

const nums = (x: Tensor) => x.toNumbers();
const strs = (x: Tensor) => Array.from(x.toArray() as BigInt64Array, (v) => String(v));

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (e) {
    return (e as Error).message;
  }
}

async function tcpComm(m: StartMessage): Promise<Communicator> {
  return createCommunicator({
    backend: 'tcp',
    rank: m.rank,
    worldSize: m.worldSize,
    rendezvous: {
      host: '127.0.0.1',
      port: m.rank === 0 ? 0 : m.port!,
      token: 'collective-test',
      onListening: (port) => void send({ type: 'rendezvous', port }),
    },
    timeoutMs: m.timeoutMs ?? 30_000,
    connectTimeoutMs: 30_000,
  });
}

async function tcpCollectives(m: StartMessage): Promise<unknown> {
  const r = m.rank;
  const n = m.worldSize;
  const inp = tcpInputs(r);
  const comm = await tcpComm(m);
  const out: Record<string, unknown> = {};
  out.sumF32 = nums(await comm.allReduce(t(inp.sumF32, [1000]), 'sum'));
  out.maxF32 = nums(await comm.allReduce(t(inp.maxF32, [10, 100]), 'max'));
  out.minF32 = nums(await comm.allReduce(t(inp.minF32, [17]), 'min'));
  out.sumI32 = nums(await comm.allReduce(t(inp.sumI32, [4], 'int32'), 'sum'));
  out.maxI32 = nums(await comm.allReduce(t(inp.maxI32, [4], 'int32'), 'max'));
  out.sumI64 = strs(await comm.allReduce(t(inp.sumI64, [3], 'int64'), 'sum'));
  out.avgBf16 = nums(await comm.allReduce(t(inp.avgBf16, [33], 'bfloat16'), 'avg'));
  out.sumF16 = nums(await comm.allReduce(t(inp.sumF16, [9], 'float16'), 'sum'));
  const g = await comm.allGather(t(inp.gather, [2, 3]));
  out.gather = nums(g);
  out.gatherShape = g.shape;
  const s = await comm.reduceScatter(t(inp.scatter, [6, 2]), 'sum');
  out.scatter = nums(s);
  out.scatterShape = s.shape;
  out.bcast = nums(await comm.broadcast(t(inp.bcast, [5]), 1));
  // A ring exchange: 1 -> 2 is relayed by rank 0.
  out.ring = nums(await comm.sendRecv(t(inp.ring, [4]), (r + 1) % n, Tensor.zeros([4]), (r + n - 1) % n));
  // A lone send and recv between two non-zero ranks.
  if (r === 2) await comm.send(t(inp.ring, [4]), 1);
  if (r === 1) out.direct = nums(await comm.recv(Tensor.zeros([4]), 2));
  await comm.barrier();
  // Ranks that disagree fail that operation on every rank with the same message; the group goes on.
  out.mismatch = await errorOf(comm.allReduce(Tensor.zeros([3], r === 2 ? 'bfloat16' : 'float32'), 'sum'));
  out.afterMismatch = nums(await comm.allReduce(t([r], [1]), 'sum'));
  await comm.close();
  out.afterClose = await errorOf(comm.barrier());
  return out;
}

async function tcpPeerDeath(m: StartMessage): Promise<unknown> {
  const comm = await tcpComm(m);
  if (m.rank === 2) process.exit(3); // dies without closing
  const error = await errorOf(comm.allReduce(t([1, 2, 3], [3]), 'sum'));
  await comm.close();
  return { error };
}

async function tcpTimeout(m: StartMessage): Promise<unknown> {
  const comm = await tcpComm(m);
  const start = Date.now();
  if (m.rank === 2) {
    // Late: joins the all-reduce only after the others gave up, and learns why from rank 0.
    await new Promise((resolve) => setTimeout(resolve, 4 * (m.timeoutMs ?? 0)));
    const error = await errorOf(comm.allReduce(t([1, 2, 3], [3]), 'sum'));
    await comm.close();
    return { error };
  }
  const error = await errorOf(comm.allReduce(t([1, 2, 3], [3]), 'sum'));
  const elapsedMs = Date.now() - start;
  await comm.close();
  return { error, elapsedMs };
}

async function ncclCollectives(m: StartMessage): Promise<unknown> {
  const r = m.rank;
  const n = m.worldSize;
  const dev = `cuda:${r}` as Device;
  let id: Uint8Array;
  if (r === 0) {
    id = ncclUniqueId();
    await send({ type: 'rendezvous', uniqueId: Array.from(id) });
  } else {
    id = Uint8Array.from(m.uniqueId!);
  }
  const comm = await createCommunicator({ backend: 'nccl', rank: r, worldSize: n, device: dev, uniqueId: id });
  const inp = ncclInputs(r);
  const out: Record<string, unknown> = {};
  // Results are stream-ordered: toNumbers copies on the current stream, after the collective.
  out.sumF32 = nums(await comm.allReduce(t(inp.sumF32, [inp.sumF32.length], 'float32', dev), 'sum'));
  out.sumBf16 = nums(await comm.allReduce(t(inp.sumBf16, [inp.sumBf16.length], 'bfloat16', dev), 'sum'));
  out.maxF32 = nums(await comm.allReduce(t(inp.maxF32, [10, 10], 'float32', dev), 'max'));
  out.avgF32 = nums(await comm.allReduce(t(inp.avgF32, [64], 'float32', dev), 'avg'));
  const g = await comm.allGather(t(inp.gather, [2, 3], 'float32', dev));
  out.gather = nums(g);
  out.gatherShape = g.shape;
  const s = await comm.reduceScatter(t(inp.scatter, [4, 2], 'float32', dev), 'sum');
  out.scatter = nums(s);
  out.scatterShape = s.shape;
  out.bcast = nums(await comm.broadcast(t(inp.bcast, [5], 'float32', dev), 1));
  const peer = n - 1 - r;
  out.swap = nums(await comm.sendRecv(t(inp.swap, [7], 'float32', dev), peer, Tensor.zeros([7], 'float32', dev), peer));
  await comm.barrier();
  await comm.close();
  return out;
}

const scenarios: Record<StartMessage['scenario'], (m: StartMessage) => Promise<unknown>> = {
  'tcp-collectives': tcpCollectives,
  'tcp-peer-death': tcpPeerDeath,
  'tcp-timeout': tcpTimeout,
  'nccl-collectives': ncclCollectives,
};

process.on('message', (message: StartMessage) => {
  if (message?.type !== 'start') return;
  void (async () => {
    let report: unknown;
    try {
      report = { type: 'result', ok: true, data: await scenarios[message.scenario](message) };
    } catch (e) {
      report = { type: 'result', ok: false, error: (e as Error).stack ?? String(e) };
    }
    await send(report);
    process.disconnect(); // the IPC channel is the last handle: the process now exits by itself
  })();
});
