/**
 * 100 repeated forward + backward calls of the MLP block (RMSNorm -> gate/up projections -> SwiGLU ->
 * down projection, and back) leave device memory in use flat: every temporary returns to the
 * caching allocator. (Attention's own 100-call check is in attention.gpu.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { memoryStats, synchronize } from '../src/runtime/cuda.js';
import { rmsnorm, rmsnormBackward } from '../src/runtime/ops/norm.js';
import { matmul, linear } from '../src/runtime/ops/matmul.js';
import { swiglu, swigluBackward } from '../src/runtime/ops/activation.js';
import { attention, attentionBackward } from '../src/runtime/ops/attention.js';

describe.skipIf(!hasGpu)('device memory stays flat over repeated steps', () => {
  const dev = 'cuda:0' as const;
  const rng = new Rng(11);
  const T = 96, H = 256, I = 512;
  const put = (shape: number[], std = 0.5) => Tensor.fromArray(rng.normal(shape.reduce((a, b) => a * b), std), shape, { dtype: 'bfloat16', device: dev });

  it('MLP forward + backward x100', () => {
    const x = put([T, H]);
    const wNorm = put([H]);
    const wGate = put([I, H], 0.05);
    const wUp = put([I, H], 0.05);
    const wDown = put([H, I], 0.05);
    const dy = put([T, H]);
    const step = () =>
      tidy(() => {
        const { y: xn, rstd } = rmsnorm(x, wNorm, 1e-5);
        const gate = linear(xn, wGate);
        const up = linear(xn, wUp);
        const act = swiglu(gate, up);
        linear(act, wDown);
        // backward
        const dAct = matmul(dy, wDown); // [T, I]
        matmul(dy, act, { transA: true }); // dW_down [H, I]
        const { dgate, dup } = swigluBackward(dAct, gate, up);
        const dxn = matmul(dgate, wGate);
        const dxn2 = matmul(dup, wUp);
        matmul(dgate, xn, { transA: true });
        matmul(dup, xn, { transA: true });
        rmsnormBackward(dxn, x, wNorm, rstd);
        rmsnormBackward(dxn2, x, wNorm, rstd);
      });
    step();
    synchronize(dev);
    const before = memoryStats(dev).bytesInUse;
    const mallocsBefore = memoryStats(dev).numCudaMallocs;
    for (let i = 0; i < 100; i++) step();
    synchronize(dev);
    const after = memoryStats(dev);
    expect(after.bytesInUse).toBe(before);
    // a fixed-shape step is served from the cache after its first run
    expect(after.numCudaMallocs).toBe(mallocsBefore);
  });

  it('attention forward + backward x100 (GQA, causal, two documents)', () => {
    const q = put([T, 8, 64]);
    const k = put([T, 2, 64]);
    const v = put([T, 2, 64]);
    const dout = put([T, 8, 64]);
    const cuSeqlens = Tensor.fromArray([0, 40, T], [3], { dtype: 'int32', device: dev });
    const opts = { cuSeqlens, mask: 'causal' as const };
    const step = () =>
      tidy(() => {
        const { out, lse } = attention(q, k, v, opts);
        attentionBackward(dout, q, k, v, out, lse, opts);
      });
    step();
    synchronize(dev);
    const before = memoryStats(dev).bytesInUse;
    for (let i = 0; i < 100; i++) step();
    synchronize(dev);
    expect(memoryStats(dev).bytesInUse).toBe(before);
  });
});
