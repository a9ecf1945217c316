import { describe, expect, it } from 'vitest';
import { hasGpu } from './helpers/gpu.js';
import { Rng } from './helpers/random.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { qkvRotary } from '../src/runtime/ops/qkv_rotary.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';

// The CUDA kernel computes the same steps as the CPU twin (split + rotary_math.h), so q, k and v are
// equal bit for bit, on the vectorised path (head dims whose halves are multiples of 16 bytes) and
// the scalar one.
function bitsEqual(a: Tensor, b: Tensor): boolean {
  const x = a.toArray();
  const y = b.toArray();
  if (x.length !== y.length) return false;
  const ux = x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x;
  const uy = y instanceof Float32Array ? new Uint32Array(y.buffer, y.byteOffset, y.length) : y;
  for (let i = 0; i < ux.length; i++) if (ux[i] !== uy[i]) return false;
  return true;
}

const configs = [
  { name: 'llama3 hd 128', headDim: 128, cfg: { theta: 500000, headDim: 128, scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } } },
  { name: 'yarn hd 96', headDim: 96, cfg: { theta: 1e6, headDim: 96, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768 } } },
  { name: 'partial rotary 0.25 of hd 128', headDim: 128, cfg: { theta: 1e7, headDim: 128, partialRotaryFactor: 0.25 } },
  { name: 'default hd 36 (scalar path)', headDim: 36, cfg: { theta: 10000, headDim: 36 } },
];

function run(device: 'cpu' | 'cuda:0', T: number, nH: number, nKV: number, headDim: number, dtype: 'float32' | 'bfloat16' | 'float16', cfg: object) {
  const rng = new Rng(9);
  const { invFreq, attentionScaling } = ropeInvFreq(cfg as Parameters<typeof ropeInvFreq>[0]);
  const qkv = Tensor.fromArray(rng.normal(T * (nH + 2 * nKV) * headDim), [T, (nH + 2 * nKV) * headDim], { dtype, device });
  const pos = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => (i * 37) % 5000), [T], { dtype: 'int32', device });
  const inv = Tensor.fromArray(invFreq, [invFreq.length], { dtype: 'float32', device });
  return qkvRotary(qkv, pos, inv, { heads: nH, kvHeads: nKV, headDim, attentionScaling });
}

describe.skipIf(!hasGpu)('qkvRotary (CUDA vs CPU twin, bit for bit)', () => {
  for (const { name, headDim, cfg } of configs) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      it(`${name}, ${dtype}`, () => {
        tidy(() => {
          const a = run('cpu', 333, 8, 2, headDim, dtype, cfg);
          const b = run('cuda:0', 333, 8, 2, headDim, dtype, cfg);
          expect(bitsEqual(b.q, a.q)).toBe(true);
          expect(bitsEqual(b.k, a.k)).toBe(true);
          expect(bitsEqual(b.v, a.v)).toBe(true);
        });
      });
    }
  }
});
