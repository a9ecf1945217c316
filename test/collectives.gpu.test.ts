import { describe, expect, it } from 'vitest';
import { gpuCount, hasGpu } from './helpers/gpu.js';
import { Tensor } from '../src/runtime/tensor.js';
import { Stream } from '../src/runtime/cuda.js';
import { createCommunicator, NcclCommunicator, ncclUniqueId, ncclVersion } from '../src/runtime/collectives/index.js';
import { Rng } from './helpers/random.js';
import { NCCL_WORLD, ncclExpected } from './helpers/collective_cases.js';
import { runGroup, workerUnavailable } from './helpers/collective_procs.js';

// A group of one rank reduces nothing: every result must equal the input bit for bit, so the checks
// are exact (toEqual) in float32 and bfloat16 alike.
describe.skipIf(!hasGpu)('NCCL on one GPU (nranks = 1)', () => {
  const dev = 'cuda:0' as const;

  it('loads libnccl 2.10+ and makes 128-byte unique ids', () => {
    expect(ncclVersion()).toBeGreaterThanOrEqual(21000);
    const a = ncclUniqueId();
    expect(a.byteLength).toBe(128);
    expect(Array.from(ncclUniqueId())).not.toEqual(Array.from(a));
  });

  it('every collective returns the input, stream-ordered, in float32 and bfloat16', async () => {
    const comm = await createCommunicator({ backend: 'nccl', rank: 0, worldSize: 1, device: dev, uniqueId: ncclUniqueId() });
    const rng = new Rng(11);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      for (const n of [1, 1000, 4097]) {
        const host = Tensor.fromArray(rng.normal(n), [n], { dtype });
        const want = host.toNumbers();
        for (const op of ['sum', 'avg', 'max', 'min'] as const) {
          const x = host.to(dev);
          expect(await comm.allReduce(x, op)).toBe(x);
          expect(x.toNumbers(), `${dtype} ${op} n=${n}`).toEqual(want);
        }
        const g = await comm.allGather(host.to(dev));
        expect(g.shape).toEqual([n]);
        expect(g.toNumbers()).toEqual(want);
        const s = await comm.reduceScatter(host.to(dev), 'sum');
        expect(s.toNumbers()).toEqual(want);
        const b = await comm.broadcast(host.to(dev), 0);
        expect(b.toNumbers()).toEqual(want);
        const r = await comm.sendRecv(host.to(dev), 0, Tensor.zeros([n], dtype, dev), 0); // to itself, grouped
        expect(r.toNumbers()).toEqual(want);
      }
    }
    const i64 = Tensor.fromArray([2 ** 40, -3, 7], [3], { dtype: 'int64', device: dev });
    await comm.allReduce(i64, 'max');
    expect(i64.toNumbers()).toEqual([2 ** 40, -3, 7]);
    await comm.barrier();
    await comm.close();
    await expect(comm.barrier()).rejects.toThrow(/barrier: the communicator is closed/);
  });

  it('enqueues on the current stream', async () => {
    const comm = await NcclCommunicator.create({ rank: 0, worldSize: 1, device: dev, uniqueId: ncclUniqueId() });
    const s = new Stream(dev);
    const x = Tensor.fromArray([1, 2, 3], [3], { device: dev });
    await s.run(() => comm.allReduce(x, 'sum'));
    s.synchronize();
    expect(x.toNumbers()).toEqual([1, 2, 3]);
    s.destroy();
    await comm.close();
  });

  it('names the op, devices and shapes when misused', async () => {
    const comm = await NcclCommunicator.create({ rank: 0, worldSize: 1, device: dev, uniqueId: ncclUniqueId() });
    await expect(comm.allReduce(Tensor.zeros([2]))).rejects.toThrow(/allReduce: t is float32\[2\] on cpu but this communicator works on cuda:0/);
    await expect(comm.allReduce(Tensor.zeros([2], 'int32', dev), 'avg')).rejects.toThrow(/avg needs a floating dtype/);
    await expect(comm.broadcast(Tensor.zeros([2], 'float32', dev), 1)).rejects.toThrow(/broadcast: root 1 is outside \[0, 1\)/);
    await expect(NcclCommunicator.create({ rank: 0, worldSize: 1, device: `cuda:${gpuCount}`, uniqueId: ncclUniqueId() })).rejects.toThrow(
      new RegExp(`ncclInit: cuda:${gpuCount} does not exist`),
    );
    comm.abort();
    await expect(comm.allReduce(Tensor.zeros([2], 'float32', dev))).rejects.toThrow(/the communicator is closed/);
  });
});

const unavailable = workerUnavailable();
if (gpuCount < 2) console.warn(`collectives.gpu.test.ts: the 2-GPU NCCL test needs 2 CUDA devices, found ${gpuCount}; skipped`);
else if (unavailable.includes('is missing')) console.warn(`collectives.gpu.test.ts: skipping the 2-GPU NCCL test: ${unavailable}`);

describe.skipIf(gpuCount < 2 || unavailable.includes('is missing'))('NCCL across 2 processes on 2 GPUs', () => {
  it('the compiled worker is up to date', () => {
    expect(unavailable).toBe('');
  });

  it('rank 0 makes the unique id, the parent hands it to rank 1, and every result is exact', async () => {
    const outcomes = await runGroup({ scenario: 'nccl-collectives', worldSize: NCCL_WORLD, deadlineMs: 180_000 });
    const want = ncclExpected(NCCL_WORLD);
    for (const o of outcomes) {
      expect(o.error, `rank ${o.rank}: ${o.stderr}`).toBe('');
      expect(o.exitCode, `rank ${o.rank} exit code`).toBe(0);
      const d = o.data;
      // Small integers and halves: every sum, max and average is exact in float32 and bfloat16.
      expect(d.sumF32).toEqual(want.sumF32);
      expect(d.sumBf16).toEqual(want.sumBf16);
      expect(d.maxF32).toEqual(want.maxF32);
      expect(d.avgF32).toEqual(want.avgF32);
      expect(d.gather).toEqual(want.gather);
      expect(d.gatherShape).toEqual([4, 3]);
      expect(d.scatter).toEqual(want.scatter(o.rank));
      expect(d.scatterShape).toEqual([2, 2]);
      expect(d.bcast).toEqual(want.bcast);
      expect(d.swap).toEqual(want.swap(o.rank));
    }
  });
});
