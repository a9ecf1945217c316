import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { firstByteDifference } from './helpers/compare.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { CudaEvent, CudaGraph, Stream, memoryInfo, memoryStats, synchronize, emptyCache } from '../src/runtime/cuda.js';
import { Rng } from './helpers/random.js';

describe.skipIf(!hasGpu)('CUDA runtime core', () => {
  const dev = 'cuda:0' as const;

  it('round-trips every dtype through the device (pinned staging)', () => {
    const rng = new Rng(7);
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      const host = Tensor.fromArray(rng.normal(5000), [50, 100], { dtype });
      const back = host.to(dev).to('cpu');
      expect(Array.from(back.toFloat32Array())).toEqual(Array.from(host.toFloat32Array()));
    }
    const big = rng.uniform((40 << 20) / 4); // 40 MiB: more than the 16 MiB staging buffer
    const t = Tensor.fromArray(big, [big.length], { device: dev });
    expect(firstByteDifference(t.toFloat32Array(), big)).toBe(-1);
    t.dispose();
  });

  it('device-to-device copies, views and rows', () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [3, 2], { device: dev });
    expect(Array.from(a.clone().toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(a.rows(1, 2).toFloat32Array())).toEqual([3, 4]);
  });

  it('caching allocator reuses blocks and reports usage and peak', () => {
    synchronize(dev);
    const before = memoryStats(dev);
    const x = Tensor.empty([1 << 20], 'float32', dev);
    const during = memoryStats(dev);
    expect(during.bytesInUse - before.bytesInUse).toBe(4 << 20);
    expect(during.peakBytesInUse).toBeGreaterThanOrEqual(during.bytesInUse);
    x.dispose();
    expect(memoryStats(dev).bytesInUse).toBe(before.bytesInUse);
    const mallocs = memoryStats(dev).numCudaMallocs;
    const y = Tensor.empty([1 << 20], 'float32', dev); // same size: served from the cache
    expect(memoryStats(dev).numCudaMallocs).toBe(mallocs);
    y.dispose();
  });

  it('out of memory is an error saying how much was asked and how much is free', () => {
    const { total } = memoryInfo(dev);
    expect(() => Tensor.empty([Math.ceil((total * 2) / 4)], 'float32', dev)).toThrow(/out of device memory on cuda:0: asked for \d+ bytes .* free of/);
    // the process is still healthy afterwards
    const t = Tensor.fromArray([1, 2], [2], { device: dev });
    expect(Array.from(t.toFloat32Array())).toEqual([1, 2]);
  });

  it('streams and events order work and time it', () => {
    const s = new Stream(dev);
    const start = new CudaEvent(dev);
    const end = new CudaEvent(dev);
    const src = Tensor.fromArray(new Rng(3).uniform(1 << 20), [1 << 20], { device: dev });
    let dst!: Tensor;
    s.run(() => {
      start.record(s);
      dst = src.clone();
      end.record(s);
    });
    end.synchronize();
    expect(end.elapsedMsSince(start)).toBeGreaterThanOrEqual(0);
    expect(firstByteDifference(dst.toFloat32Array(), src.toFloat32Array())).toBe(-1);
    s.destroy();
  });

  it('captures a fixed-shape step in a CUDA graph and replays it', () => {
    const input = Tensor.fromArray([1, 2, 3, 4], [4], { device: dev });
    const output = Tensor.zeros([4], 'float32', dev);
    const step = () => tidy(() => {
      const tmp = input.clone(); // a temporary inside the step, freed inside the capture
      output.copy_(tmp);
    });
    step(); // warm the allocator cache
    const graph = CudaGraph.capture(dev, step);
    input.storage.write(new Float32Array([5, 6, 7, 8]));
    graph.replay();
    expect(Array.from(output.toFloat32Array())).toEqual([5, 6, 7, 8]);
    input.storage.write(new Float32Array([9, 9, 9, 9]));
    graph.replay();
    expect(Array.from(output.toFloat32Array())).toEqual([9, 9, 9, 9]);
    graph.destroy();
    emptyCache(dev);
  });
});
