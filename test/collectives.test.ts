import { afterEach, describe, expect, it } from 'vitest';
import { type AddressInfo, createServer } from 'node:net';
import { Tensor } from '../src/runtime/tensor.js';
import { native } from '../src/runtime/binding.js';
import { floatToBf16Bits } from '../src/runtime/dtype.js';
import {
  type Communicator,
  NcclCommunicator,
  TcpCommunicator,
  createCommunicator,
  ncclUniqueId,
  ncclVersion,
} from '../src/runtime/collectives/index.js';
import { reduceBytes } from '../src/runtime/collectives/reduce.js';
import { FrameDecoder } from '../src/runtime/collectives/framing.js';
import { TCP_WORLD, tcpExpected } from './helpers/collective_cases.js';
import { runGroup, workerUnavailable } from './helpers/collective_procs.js';

/** A group of `n` TCP communicators inside this process (rank 0 on a free port). */
async function localGroup(n: number, extra: { timeoutMs?: number; token?: string } = {}): Promise<TcpCommunicator[]> {
  let announce!: (port: number) => void;
  const port = new Promise<number>((res) => (announce = res));
  const root = TcpCommunicator.create({
    rank: 0,
    worldSize: n,
    rendezvous: { port: 0, token: extra.token, onListening: announce },
    timeoutMs: extra.timeoutMs,
  });
  const p = await port;
  const others = Array.from({ length: n - 1 }, (_, i) =>
    TcpCommunicator.create({ rank: i + 1, worldSize: n, rendezvous: { port: p, token: extra.token }, timeoutMs: extra.timeoutMs }),
  );
  return Promise.all([root, ...others]);
}

const open: Communicator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe('host reductions (the TCP backend math)', () => {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

  it('sums floats in float64 and rounds once to the storage dtype', () => {
    // 1 + 2^-8 + 2^-30 lies just above the midpoint between the bf16 values 1 and 1 + 2^-7, so the
    // correctly rounded sum is 1 + 2^-7. Rounding through float32 to nearest first would land
    // exactly on the midpoint and tie to 1.
    const inputs = [1, 2 ** -8, 2 ** -30].map((v) => bytes(floatToBf16Bits(new Float32Array([v]))));
    const out = new Uint16Array(reduceBytes('bfloat16', 'sum', inputs).slice().buffer);
    expect(out[0]).toBe(floatToBf16Bits(new Float32Array([1 + 2 ** -7]))[0]);
    // float32: 2^24 + 1 + 1 is exact in float64 (2^24 + 2), while float32 pairwise would lose both 1s.
    const f = [2 ** 24, 1, 1].map((v) => bytes(new Float32Array([v])));
    expect(Array.from(new Float32Array(reduceBytes('float32', 'sum', f).slice().buffer))).toEqual([2 ** 24 + 2]);
  });

  it('wraps integer sums, propagates NaN through max, and averages floats', () => {
    const i32 = [2 ** 31 - 1, 1].map((v) => bytes(Int32Array.from([v])));
    expect(Array.from(new Int32Array(reduceBytes('int32', 'sum', i32).slice().buffer))).toEqual([-(2 ** 31)]);
    const i64 = [2n ** 63n - 1n, 2n].map((v) => bytes(BigInt64Array.from([v])));
    expect(Array.from(new BigInt64Array(reduceBytes('int64', 'sum', i64).slice().buffer))).toEqual([-(2n ** 63n) + 1n]);
    const nan = [NaN, 1].map((v) => bytes(new Float32Array([v, 2])));
    const m = new Float32Array(reduceBytes('float32', 'max', nan).slice().buffer);
    expect(Number.isNaN(m[0])).toBe(true);
    expect(m[1]).toBe(2);
    const avg = [1, 2, 4].map((v) => bytes(new Float32Array([v])));
    expect(new Float32Array(reduceBytes('float32', 'avg', avg).slice().buffer)[0]).toBe(Math.fround(7 / 3));
    expect(() => reduceBytes('int32', 'avg', i32)).toThrow(/avg needs a floating dtype/);
  });

  it('frames survive arbitrary chunking and reject foreign bytes', () => {
    const d = new FrameDecoder();
    const json = Buffer.from(JSON.stringify({ t: 'x', n: 1 }));
    const prefix = Buffer.alloc(16);
    prefix.writeUInt32LE(0x31434541, 0);
    prefix.writeUInt32LE(json.length, 4);
    prefix.writeUIntLE(3, 8, 6);
    const wire = Buffer.concat([prefix, json, Buffer.from([7, 8, 9]), prefix, json, Buffer.from([1, 2, 3])]);
    const frames = [];
    for (let i = 0; i < wire.length; i += 5) frames.push(...d.push(wire.subarray(i, i + 5)));
    expect(frames.map((f) => [f.header, Array.from(f.payload)])).toEqual([
      [{ t: 'x', n: 1 }, [7, 8, 9]],
      [{ t: 'x', n: 1 }, [1, 2, 3]],
    ]);
    expect(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(/bad magic/);
  });
});

describe('TcpCommunicator in one process', () => {
  it('a group of one returns its own data', async () => {
    const c = await createCommunicator({ backend: 'tcp', rank: 0, worldSize: 1, rendezvous: { port: 0 } });
    open.push(c);
    const x = Tensor.fromArray([1, -2, 3], [3]);
    expect((await c.allReduce(x, 'avg')).toNumbers()).toEqual([1, -2, 3]);
    const g = await c.allGather(Tensor.scalar(5));
    expect(g.shape).toEqual([1]);
    expect(g.toNumbers()).toEqual([5]);
    expect((await c.reduceScatter(Tensor.fromArray([1, 2], [2, 1]), 'max')).shape).toEqual([2, 1]);
    const r = await c.sendRecv(Tensor.fromArray([4, 5], [2]), 0, Tensor.zeros([2]), 0);
    expect(r.toNumbers()).toEqual([4, 5]);
    await c.barrier();
  });

  it('all-reduces, gathers and exchanges across two ranks', async () => {
    const [a, b] = await localGroup(2);
    open.push(a, b);
    const xa = Tensor.fromArray([1, 2, 3, 4], [2, 2], { dtype: 'bfloat16' });
    const xb = Tensor.fromArray([10, 20, 30, 40], [2, 2], { dtype: 'bfloat16' });
    await Promise.all([a.allReduce(xa, 'sum'), b.allReduce(xb, 'sum')]);
    expect(xa.toNumbers()).toEqual([11, 22, 33, 44]);
    expect(xb.toNumbers()).toEqual([11, 22, 33, 44]);
    const [ga, gb] = await Promise.all([a.allGather(Tensor.fromArray([1, 2], [2], { dtype: 'int32' })), b.allGather(Tensor.fromArray([3, 4], [2], { dtype: 'int32' }))]);
    expect(ga.toNumbers()).toEqual([1, 2, 3, 4]);
    expect(gb.dtype).toBe('int32');
    // Both send first, then receive: sends are buffered, so this cannot deadlock.
    const ta = Tensor.zeros([2]);
    const tb = Tensor.zeros([2]);
    await Promise.all([a.send(Tensor.fromArray([7, 8], [2]), 1), b.send(Tensor.fromArray([5, 6], [2]), 0)]);
    await Promise.all([a.recv(ta, 1), b.recv(tb, 0)]);
    expect([ta.toNumbers(), tb.toNumbers()]).toEqual([[5, 6], [7, 8]]);
  });

  it('rejects a wrong token and still forms the group with the right one', async () => {
    let announce!: (port: number) => void;
    const port = new Promise<number>((res) => (announce = res));
    const root = TcpCommunicator.create({ rank: 0, worldSize: 2, rendezvous: { port: 0, token: 'secret', onListening: announce } });
    const p = await port;
    await expect(TcpCommunicator.create({ rank: 1, worldSize: 2, rendezvous: { port: p, token: 'guess' } })).rejects.toThrow(
      /rank 0 at 127\.0\.0\.1:\d+ rejected rank 1: token mismatch/,
    );
    await expect(TcpCommunicator.create({ rank: 1, worldSize: 3, rendezvous: { port: p, token: 'secret' } })).rejects.toThrow(
      /worldSize 3 differs from rank 0's 2/,
    );
    const good = await TcpCommunicator.create({ rank: 1, worldSize: 2, rendezvous: { port: p, token: 'secret' } });
    open.push(await root, good);
  });

  it('a rank that starts before rank 0 keeps trying to connect', async () => {
    const probe = createServer();
    await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((res) => probe.close(res));
    const early = TcpCommunicator.create({ rank: 1, worldSize: 2, rendezvous: { port }, connectTimeoutMs: 10_000 });
    await new Promise((res) => setTimeout(res, 300)); // a few refused attempts
    const root = await TcpCommunicator.create({ rank: 0, worldSize: 2, rendezvous: { port } });
    const one = await early;
    open.push(root, one);
    const [x] = await Promise.all([root.allReduce(Tensor.fromArray([1], [1])), one.allReduce(Tensor.fromArray([2], [1]))]);
    expect(x.toNumbers()).toEqual([3]);
  });

  it('times out clearly when rank 0 is not there or a rank never joins', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
    const ghost = (probe.address() as AddressInfo).port;
    await new Promise((res) => probe.close(res));
    await expect(
      TcpCommunicator.create({ rank: 1, worldSize: 2, rendezvous: { port: ghost }, connectTimeoutMs: 300 }),
    ).rejects.toThrow(new RegExp(`rank 1 could not connect to rank 0 at 127\\.0\\.0\\.1:${ghost} within 300 ms`));
    await expect(TcpCommunicator.create({ rank: 0, worldSize: 3, rendezvous: { port: 0 }, connectTimeoutMs: 300 })).rejects.toThrow(
      /rank 0 waited 300 ms on 127\.0\.0\.1:\d+ but rank\(s\) 1, 2 never joined/,
    );
    // A port already taken.
    const busy = createServer();
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', res));
    const taken = (busy.address() as AddressInfo).port;
    await expect(TcpCommunicator.create({ rank: 0, worldSize: 2, rendezvous: { port: taken } })).rejects.toThrow(
      new RegExp(`rank 0 cannot listen on 127\\.0\\.0\\.1:${taken}: listen EADDRINUSE`),
    );
    await new Promise((res) => busy.close(res));
  });

  it('names the op, shapes and dtypes when misused', async () => {
    const [a, b] = await localGroup(2, { timeoutMs: 5000 });
    open.push(a, b);
    await expect(a.allReduce(Tensor.zeros([2], 'uint8'))).rejects.toThrow(/allReduce: cannot reduce uint8\[2\] on cpu; expected dtype/);
    await expect(a.allReduce(Tensor.zeros([2], 'int32'), 'avg')).rejects.toThrow(/allReduce: avg needs a floating dtype, got int32\[2\]/);
    await expect(a.reduceScatter(Tensor.zeros([3, 2]))).rejects.toThrow(/reduceScatter: the first dimension of float32\[3, 2\] on cpu must be a multiple of worldSize 2/);
    await expect(a.broadcast(Tensor.zeros([2]), 2)).rejects.toThrow(/broadcast: root 2 is outside \[0, 2\)/);
    await expect(a.send(Tensor.zeros([2]), -1)).rejects.toThrow(/send: peer -1 is outside \[0, 2\)/);
    await expect(a.allReduce(Tensor.zeros([2]), 'prod' as never)).rejects.toThrow(/unknown reduction 'prod'/);
    const gone = Tensor.zeros([2]);
    gone.dispose();
    await expect(a.allReduce(gone)).rejects.toThrow(/allReduce: t was already disposed/);
    // A receive whose tensor does not match what was sent fails that receive only.
    await a.send(Tensor.fromArray([1, 2, 3, 4], [4]), 1);
    await expect(b.recv(Tensor.zeros([3]), 0)).rejects.toThrow(/tcp recv on rank 1 of 2: rank 0 sent float32 \(16 bytes\) but the receiving tensor is float32\[3\] on cpu \(12 bytes\)/);
    const [x] = await Promise.all([a.allReduce(Tensor.fromArray([1], [1]), 'max'), b.allReduce(Tensor.fromArray([2], [1]), 'max')]);
    expect(x.toNumbers()).toEqual([2]);
    await Promise.all([a.close(), b.close()]);
    await expect(a.barrier()).rejects.toThrow(/tcp barrier on rank 0 of 2: the communicator is closed/);
  });

  it('createCommunicator checks its options', async () => {
    await expect(createCommunicator({ backend: 'tcp', rank: 0, worldSize: 2, device: 'cuda:0', rendezvous: { port: 0 } })).rejects.toThrow(
      /the tcp backend works on CPU tensors, got device 'cuda:0'/,
    );
    await expect(createCommunicator({ backend: 'tcp', rank: 0, worldSize: 2 })).rejects.toThrow(/the tcp backend needs rendezvous/);
    await expect(createCommunicator({ backend: 'tcp', rank: 2, worldSize: 2, rendezvous: { port: 0 } })).rejects.toThrow(/rank 2 is outside \[0, 2\)/);
    await expect(createCommunicator({ backend: 'nccl', rank: 0, worldSize: 1, device: 'cuda:0' })).rejects.toThrow(/the nccl backend needs uniqueId/);
    await expect(createCommunicator({ backend: 'mpi' as never, rank: 0, worldSize: 1 })).rejects.toThrow(/unknown backend 'mpi'/);
    await expect(NcclCommunicator.create({ rank: 0, worldSize: 1, device: 'cpu', uniqueId: new Uint8Array(128) })).rejects.toThrow(
      /needs a CUDA device, got 'cpu'; use the tcp backend/,
    );
    await expect(NcclCommunicator.create({ rank: 0, worldSize: 1, device: 'cuda:0', uniqueId: new Uint8Array(16) })).rejects.toThrow(
      /uniqueId must be the 128-byte Uint8Array/,
    );
  });
});

describe('NCCL binding without a GPU', () => {
  const b = native();

  it('checks its arguments before touching NCCL', () => {
    expect(() => b.ncclInit(new Uint8Array(5), 1, 0, 0)).toThrow(/ncclInit: uniqueId must be the 128-byte Uint8Array/);
    expect(() => b.ncclInit(new Uint8Array(128), 2, 2, 0)).toThrow(/ncclInit: rank 2 is outside \[0, 2\)/);
    expect(() => b.ncclInit(new Uint8Array(128), 0, 0, 0)).toThrow(/ncclInit: nranks must be >= 1/);
    const x = Tensor.zeros([4]);
    expect(() => b.ncclAllReduce({} as never, x.storage, x.storage, 4, 0, 'sum')).toThrow(/ncclAllReduce: argument comm must be an NCCL communicator handle/);
  });

  it('reports a missing libnccl with the loader message, or a missing device', () => {
    let version = 0;
    try {
      version = ncclVersion();
    } catch (e) {
      const message = (e as Error).message;
      expect(message).toMatch(/ncclVersion: cannot load libnccl\.so\.2; tried:/);
      expect(message).toMatch(/AERIE_CUDA_LIB_PATH/);
      expect(() => ncclUniqueId()).toThrow(/ncclUniqueId: cannot load libnccl\.so\.2/);
    }
    if (version) expect(version).toBeGreaterThanOrEqual(21000); // libnccl present: it must be 2.10 or newer
    if (b.cudaDeviceCount() === 0) {
      expect(() => b.ncclInit(new Uint8Array(128), 1, 0, 0)).toThrow(/ncclInit: .*(built without CUDA|cuda:0 does not exist)/);
    }
  });
});

const unavailable = workerUnavailable();
const missing = unavailable.includes('is missing');
if (missing) console.warn(`collectives.test.ts: skipping the multi-process tests: ${unavailable}`);

describe.skipIf(missing)('TCP collectives across 3 processes', () => {
  it('the compiled worker is up to date', () => {
    expect(unavailable).toBe('');
  });

  it('all-reduce, all-gather, reduce-scatter, broadcast, send/recv and barrier give exact results on every rank', async () => {
    const outcomes = await runGroup({ scenario: 'tcp-collectives', worldSize: TCP_WORLD });
    const want = tcpExpected(TCP_WORLD);
    for (const o of outcomes) {
      expect(o.error, `rank ${o.rank}: ${o.stderr}`).toBe('');
      expect(o.ok).toBe(true);
      expect(o.exitCode, `rank ${o.rank} exit code`).toBe(0);
      const d = o.data;
      expect(d.sumF32).toEqual(want.sumF32);
      expect(d.maxF32).toEqual(want.maxF32);
      expect(d.minF32).toEqual(want.minF32);
      expect(d.sumI32).toEqual(want.sumI32);
      expect(d.maxI32).toEqual(want.maxI32);
      expect(d.sumI64).toEqual(want.sumI64);
      expect(d.avgBf16).toEqual(want.avgBf16);
      expect(d.sumF16).toEqual(want.sumF16);
      expect(d.gather).toEqual(want.gather);
      expect(d.gatherShape).toEqual(want.gatherShape);
      expect(d.scatter).toEqual(want.scatter(o.rank));
      expect(d.scatterShape).toEqual(want.scatterShape);
      expect(d.bcast).toEqual(want.bcast);
      expect(d.ring).toEqual(want.ring(o.rank));
      if (o.rank === 1) expect(d.direct).toEqual(want.direct);
      expect(d.mismatch).toMatch(/tcp allReduce on rank \d of 3: ranks disagree: rank 2 passed dtype "bfloat16", bytes 6, op "sum" but rank 0 passed dtype "float32", bytes 12, op "sum"/);
      expect(d.afterMismatch).toEqual([0 + 1 + 2]);
      expect(d.afterClose).toMatch(/the communicator is closed/);
    }
  });

  it('a rank that dies fails the others with an error naming it', async () => {
    const outcomes = await runGroup({ scenario: 'tcp-peer-death', worldSize: 3, timeoutMs: 30_000 });
    expect(outcomes[2].exitCode).toBe(3);
    for (const o of outcomes.slice(0, 2)) {
      expect(o.error, `rank ${o.rank}: ${o.stderr}`).toBe('');
      expect(o.data.error).toMatch(/lost the connection to rank 2/);
      expect(o.data.error).not.toMatch(/timed out/); // noticed at once, not after the 30 s timeout
      expect(o.exitCode).toBe(0);
    }
    expect(outcomes[1].data.error).toMatch(/rank 0 reports: lost the connection to rank 2/);
  });

  it('a rank that is late past the timeout is named on every rank', async () => {
    const outcomes = await runGroup({ scenario: 'tcp-timeout', worldSize: 3, timeoutMs: 1000 });
    for (const o of outcomes) {
      expect(o.error, `rank ${o.rank}: ${o.stderr}`).toBe('');
      expect(o.exitCode).toBe(0);
    }
    const [r0, r1, r2] = outcomes.map((o) => o.data);
    expect(r0.error).toMatch(/tcp allReduce on rank 0 of 3: timed out after 1000 ms waiting for rank 2 to join allReduce \(seq 0\)/);
    expect(r0.elapsedMs).toBeLessThan(5000);
    expect(r1.error).toMatch(/tcp allReduce on rank 1 of 3: rank 0 reports: timed out after 1000 ms waiting for rank 2/);
    expect(r2.error).toMatch(/tcp allReduce on rank 2 of 3: the communicator is unusable after an earlier failure: rank 0 reports: timed out/);
  });
});
