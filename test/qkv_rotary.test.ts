import { describe, expect, it } from 'vitest';
import { relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';
import { Tensor } from '../src/runtime/tensor.js';
import { tidy } from '../src/runtime/scope.js';
import { rotary } from '../src/runtime/ops/rotary.js';
import { qkvRotary } from '../src/runtime/ops/qkv_rotary.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { parseModelConfig } from '../src/models/hf/config.js';
import { createCausalLM } from '../src/models/load.js';
import { randomSource } from '../src/models/weights.js';
import { prefill } from '../src/models/batch.js';

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
  { name: 'default hd 36 (unvectorised)', headDim: 36, cfg: { theta: 10000, headDim: 36 } },
];

function run(device: 'cpu' | 'cuda:0', T: number, nH: number, nKV: number, headDim: number, dtype: 'float32' | 'bfloat16' | 'float16', cfg: object, seed: number) {
  const rng = new Rng(seed);
  const { invFreq, attentionScaling } = ropeInvFreq(cfg as Parameters<typeof ropeInvFreq>[0]);
  const qkv = Tensor.fromArray(rng.normal(T * (nH + 2 * nKV) * headDim), [T, (nH + 2 * nKV) * headDim], { dtype, device });
  const pos = Tensor.fromArray(Int32Array.from({ length: T }, (_, i) => (i * 37) % 5000), [T], { dtype: 'int32', device });
  const inv = Tensor.fromArray(invFreq, [invFreq.length], { dtype: 'float32', device });
  return { qkv, pos, inv, attentionScaling, out: qkvRotary(qkv, pos, inv, { heads: nH, kvHeads: nKV, headDim, attentionScaling }) };
}

describe('qkvRotary (CPU): split + rotary of q and k, bit for bit', () => {
  for (const { name, headDim, cfg } of configs) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`${name}, ${dtype}`, () => {
        tidy(() => {
          const [T, nH, nKV] = [19, 6, 2];
          const { qkv, pos, inv, attentionScaling, out } = run('cpu', T, nH, nKV, headDim, dtype, cfg, 5);
          const w = (nH + 2 * nKV) * headDim;
          const all = qkv.toArray() as Float32Array;
          const part = (lo: number, hi: number, heads: number) => {
            const a = new Float32Array(T * (hi - lo));
            for (let t = 0; t < T; t++) a.set(all.subarray(t * w + lo, t * w + hi), t * (hi - lo));
            return Tensor.fromArray(a, [T, heads, headDim], { dtype });
          };
          const q = rotary(part(0, nH * headDim, nH), pos, inv, { attentionScaling });
          const k = rotary(part(nH * headDim, (nH + nKV) * headDim, nKV), pos, inv, { attentionScaling });
          const v = part((nH + nKV) * headDim, w, nKV);
          expect(out.q.shape).toEqual([T, nH, headDim]);
          expect(out.k.shape).toEqual([T, nKV, headDim]);
          expect(out.v.shape).toEqual([T, nKV, headDim]);
          expect(bitsEqual(out.q, q)).toBe(true);
          expect(bitsEqual(out.k, k)).toBe(true);
          expect(bitsEqual(out.v, v)).toBe(true);
        });
      });
    }
  }
  it('rejects a width that is not (heads + 2 kvHeads) * headDim', () => {
    tidy(() => {
      const x = Tensor.zeros([3, 40]);
      const pos = Tensor.fromArray(new Int32Array(3), [3], { dtype: 'int32' });
      const inv = Tensor.zeros([4]);
      expect(() => qkvRotary(x, pos, inv, { heads: 2, kvHeads: 1, headDim: 8 })).toThrow(/qkvRotary/);
    });
  });
});

// A prefill of many tokens takes the fused path (stacked qkv GEMM + qkvRotary, residual adds in the
// GEMM epilogues, the final norm only at the picked rows); a short one the separate ops. Causality
// makes the first rows of the long prefill the short prefill's.
describe('dense prefill: the many-token path equals the few-token path', () => {
  const LLAMA = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 200,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    attention_bias: true,
    mlp_bias: true,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
    max_position_embeddings: 512,
    rope_theta: 10000,
    eos_token_id: 1,
  };
  it('logits and taps (float32, CPU)', () => {
    const cfg = parseModelConfig(LLAMA, '<test>');
    const src = randomSource({ seed: 11, std: 0.1 });
    const m = createCausalLM(cfg, src, { dtype: 'float32' });
    src.dispose();
    try {
      tidy(() => {
        const rng = new Rng(3);
        const ids = Array.from({ length: 170 }, () => Math.floor(rng.next() * 200));
        const n = 90;
        const taps = [0, 1, 3, 4];
        const long = prefill(m, [{ ids, logits: [n - 1, 169] }, { ids: ids.slice(0, 40), logits: 'last' }], { taps });
        const short = prefill(m, [{ ids: ids.slice(0, n), logits: 'last' }], { taps });
        const H = 64;
        const lg = long.logits!.toArray() as Float32Array;
        const sg = short.logits!.toArray() as Float32Array;
        expect(relError(lg.subarray(0, 200), sg.subarray(0, 200))).toBeLessThan(1e-5);
        for (const k of taps) {
          const a = long.taps.get(k)!.toArray() as Float32Array;
          const b = short.taps.get(k)!.toArray() as Float32Array;
          expect(relError(a.subarray(0, n * H), b.subarray(0, n * H)), `tap ${k}`).toBeLessThan(1e-5);
        }
        // 'all' logits over the long step agree with the picked rows.
        const all = m.forward({
          ids: Tensor.fromArray(Int32Array.from(ids), [170], { dtype: 'int32' }),
          positions: Tensor.fromArray(Int32Array.from({ length: 170 }, (_, i) => i), [170], { dtype: 'int32' }),
          attention: { kind: 'prefill', cuSeqlens: Tensor.fromArray(Int32Array.from([0, 170]), [2], { dtype: 'int32' }) },
          logitRows: 'all',
        }).logits!.toArray() as Float32Array;
        expect(relError(all.subarray((n - 1) * 200, n * 200), sg.subarray(0, 200))).toBeLessThan(1e-5);
        expect(relError(all.subarray(169 * 200, 170 * 200), lg.subarray(200, 400))).toBeLessThan(1e-6);
      });
    } finally {
      m.dispose();
    }
  });
});
