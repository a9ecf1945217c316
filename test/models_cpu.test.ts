import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockAllocator, PagedKvCache, kvBytesPerToken } from '../src/models/kv_cache.js';
import { createCausalLM, loadCausalLM } from '../src/models/load.js';
import { presetConfig } from '../src/models/presets.js';
import { randomSource } from '../src/models/weights.js';
import { parseModelConfig } from '../src/models/hf/config.js';
import { type CausalLM, causalLMFactory } from '../src/models/causal_lm.js';
import { decodeStep, prefill } from '../src/models/batch.js';
import { DecodeRunner } from '../src/models/decode_runner.js';
import { generate } from '../src/models/generate.js';
import { writeRandomCheckpoint } from '../src/models/synthetic.js';
import { loadTokenizer } from '../src/models/hf/tokenizer.js';
import { openCheckpoint } from '../src/models/hf/safetensors.js';
import { ropeInvFreq } from '../src/runtime/ops/rope_params.js';
import { runtimeRope } from '../src/models/dense.js';
import { tidy } from '../src/runtime/scope.js';
import { Tensor as TensorClass, type Tensor } from '../src/runtime/tensor.js';
import type { DenseCausalLM } from '../src/models/dense.js';
import { relError } from './helpers/compare.js';
import { Rng } from './helpers/random.js';

// Internal consistency of the target engine on the CPU (fp32), needing no reference outputs: the KV
// cache path (prefill then decode / verify steps) reproduces a full prefill, packing sequences
// reproduces running them alone, taps are the residual stream, and generation is the argmax (or the
// seeded draw) of what a fresh prefill computes. Golden comparisons with transformers are in
// models_golden.test.ts. Two models: the embedded aerie-tiny (Llama, trained) and a random Qwen3
// written here that exercises what aerie-tiny does not: q/k norm, head_dim != hidden / heads, an odd
// head count (3 heads / 1 kv head), attention biases, yarn RoPE and sliding-window layers.
//
// Tolerances: a different summation order (the decode kernel's over keys vs the flash prefill's
// blocks) changes fp32 results by a few ulp per op; through a few layers that is ~1e-6 relative.
const TOL = 2e-5;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TINY = join(root, 'models/aerie-tiny');

const QWEN3_SW = {
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  vocab_size: 300,
  hidden_size: 48,
  intermediate_size: 96,
  num_hidden_layers: 3,
  num_attention_heads: 3,
  num_key_value_heads: 1,
  head_dim: 32,
  attention_bias: true,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  use_sliding_window: true,
  sliding_window: 5,
  max_window_layers: 1,
  max_position_embeddings: 64,
  rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 2, original_max_position_embeddings: 16 },
  eos_token_id: 7,
};

function rows(t: Tensor): Float32Array[] {
  const a = t.toArray() as Float32Array;
  const n = t.shape[t.shape.length - 1];
  return Array.from({ length: a.length / n }, (_, i) => a.subarray(i * n, (i + 1) * n));
}

function ids(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}


/**
 * A plain float64 transcription of transformers' Llama/Qwen3 forward (eager attention) over one
 * sequence, independent of the runtime ops: the engine's semantics (head grouping, q/k norm before
 * RoPE, rotate_half, sliding windows, biases, tied heads) are checked against it before the golden
 * fixtures from transformers itself exist. Returns logits and the residual stream entering each layer
 * (hidden[N] = last layer's output before the final norm).
 */
function naiveForward(m: CausalLM, seq: number[]): { logits: Float64Array[]; hidden: Float64Array[][] } {
  const cfg = m.config;
  const ckpt = openCheckpoint(dirname(cfg.file));
  const W = (name: string) => Float64Array.from(ckpt.load(name, { dtype: 'float32' }).toArray() as Float32Array);
  const has = (name: string) => ckpt.has(name);
  const H = cfg.hiddenSize, nH = cfg.numAttentionHeads, nKV = cfg.numKeyValueHeads, hd = cfg.headDim, T = seq.length;
  const eps = cfg.rmsNormEps;
  const lin = (x: Float64Array[], w: Float64Array, b: Float64Array | null, nOut: number): Float64Array[] =>
    x.map((r) => {
      const out = new Float64Array(nOut);
      for (let o = 0; o < nOut; o++) {
        let s = b ? b[o] : 0;
        for (let i = 0; i < r.length; i++) s += r[i] * w[o * r.length + i];
        out[o] = s;
      }
      return out;
    });
  const norm = (r: Float64Array, w: Float64Array, off = 0, n = r.length): void => {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += r[off + i] * r[off + i];
    const rs = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) r[off + i] = r[off + i] * rs * w[i];
  };
  const rope = ropeInvFreq(runtimeRope(cfg));
  const half = rope.invFreq.length;
  const rot = (r: Float64Array, heads: number, pos: number): void => {
    for (let h = 0; h < heads; h++) {
      const o = h * hd;
      for (let i = 0; i < half; i++) {
        const ang = pos * rope.invFreq[i];
        const c = Math.cos(ang) * rope.attentionScaling, s = Math.sin(ang) * rope.attentionScaling;
        const x1 = r[o + i], x2 = r[o + i + half];
        r[o + i] = x1 * c - x2 * s;
        r[o + i + half] = x2 * c + x1 * s;
      }
    }
  };
  const embed = W('model.embed_tokens.weight');
  let x = seq.map((id) => embed.slice(id * H, (id + 1) * H));
  const hidden: Float64Array[][] = [x.map((r) => r.slice())];
  const opt = (name: string) => (has(name) ? W(name) : null);
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const y = x.map((r) => r.slice());
    const w1 = W(`${p}input_layernorm.weight`);
    y.forEach((r) => norm(r, w1));
    const q = lin(y, W(`${p}self_attn.q_proj.weight`), opt(`${p}self_attn.q_proj.bias`), nH * hd);
    const k = lin(y, W(`${p}self_attn.k_proj.weight`), opt(`${p}self_attn.k_proj.bias`), nKV * hd);
    const v = lin(y, W(`${p}self_attn.v_proj.weight`), opt(`${p}self_attn.v_proj.bias`), nKV * hd);
    if (cfg.qkNorm) {
      const qn = W(`${p}self_attn.q_norm.weight`), kn = W(`${p}self_attn.k_norm.weight`);
      q.forEach((r) => { for (let h = 0; h < nH; h++) norm(r, qn, h * hd, hd); });
      k.forEach((r) => { for (let h = 0; h < nKV; h++) norm(r, kn, h * hd, hd); });
    }
    q.forEach((r, t) => rot(r, nH, t));
    k.forEach((r, t) => rot(r, nKV, t));
    const window = cfg.layerTypes[l] === 'sliding_attention' ? cfg.slidingWindow! : Infinity;
    const att = q.map((qr, i) => {
      const out = new Float64Array(nH * hd);
      for (let h = 0; h < nH; h++) {
        const g = Math.floor(h / (nH / nKV));
        const js = [...Array(i + 1).keys()].filter((j) => i - j < window);
        const sc = js.map((j) => { let s = 0; for (let d = 0; d < hd; d++) s += qr[h * hd + d] * k[j][g * hd + d]; return s / Math.sqrt(hd); });
        const mx = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, b) => a + b, 0);
        js.forEach((j, n) => { for (let d = 0; d < hd; d++) out[h * hd + d] += (e[n] / z) * v[j][g * hd + d]; });
      }
      return out;
    });
    const o = lin(att, W(`${p}self_attn.o_proj.weight`), opt(`${p}self_attn.o_proj.bias`), H);
    x = x.map((r, t) => r.map((val, i) => val + o[t][i]));
    const y2 = x.map((r) => r.slice());
    const w2 = W(`${p}post_attention_layernorm.weight`);
    y2.forEach((r) => norm(r, w2));
    const I = cfg.intermediateSize;
    const g = lin(y2, W(`${p}mlp.gate_proj.weight`), opt(`${p}mlp.gate_proj.bias`), I);
    const u = lin(y2, W(`${p}mlp.up_proj.weight`), opt(`${p}mlp.up_proj.bias`), I);
    const a = g.map((r, t) => r.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[t][i]));
    const d = lin(a, W(`${p}mlp.down_proj.weight`), opt(`${p}mlp.down_proj.bias`), H);
    x = x.map((r, t) => r.map((val, i) => val + d[t][i]));
    hidden.push(x.map((r) => r.slice()));
  }
  const fn = W('model.norm.weight');
  const y = x.map((r) => r.slice());
  y.forEach((r) => norm(r, fn));
  const head = cfg.tieWordEmbeddings ? embed : W('lm_head.weight');
  const logits = lin(y, head, null, cfg.vocabSize);
  ckpt.close();
  return { logits, hidden };
}

describe('paged KV cache bookkeeping', () => {
  it('allocates lowest blocks first, releases, and names a full cache', () => {
    const a = new BlockAllocator(4);
    expect(a.allocate(2)).toEqual([0, 1]);
    expect(a.numFree).toBe(2);
    expect(() => a.allocate(3)).toThrow(/KV cache is full: 3 more blocks needed, 2 of 4 free/);
    a.release([0]);
    expect(a.allocate(1)).toEqual([0]);
    expect(() => a.release([3])).toThrow(/not allocated/);
  });

  it('maps positions to slots and builds padded block tables', () => {
    const cache = new PagedKvCache({ numLayers: 2, kvHeads: 1, headDim: 4, dtype: 'float32', device: 'cpu', numBlocks: 6, blockSize: 4 });
    try {
      expect(cache.k[1].shape).toEqual([6, 4, 1, 4]);
      expect(cache.bytesPerToken).toBe(kvBytesPerToken(2, 1, 4, 'float32'));
      expect(cache.bytesPerToken).toBe(2 * 2 * 1 * 4 * 4);
      const s0 = cache.newSequence();
      const s1 = cache.newSequence();
      cache.reserve(s0, 5); // blocks 0, 1
      cache.reserve(s1, 3); // block 2
      cache.reserve(s0, 8); // still 2 blocks
      expect(s0.blocks).toEqual([0, 1]);
      expect(cache.slot(s0, 6)).toBe(1 * 4 + 2);
      expect(cache.slot(s1, 2)).toBe(2 * 4 + 2);
      expect(() => cache.slot(s1, 4)).toThrow(/beyond its 1 reserved blocks/);
      const t = cache.blockTable([s0, null, s1], 3);
      expect(Array.from(t.data)).toEqual([0, 1, 0, 0, 0, 0, 2, 0, 0]);
      cache.release(s0);
      expect(cache.allocator.numFree).toBe(5);
      expect(() => cache.reserve(s1, 4 * 7)).toThrow(/KV cache is full/);
    } finally {
      cache.dispose();
    }
  });
});

interface Case {
  name: string;
  model: () => CausalLM;
}

const CASES: Case[] = [
  { name: 'aerie-tiny (Llama, embedded)', model: () => loadCausalLM(TINY) },
  {
    name: 'random Qwen3 (q/k norm, 3/1 heads, head_dim 32, biases, yarn, sliding window 5)',
    model: () => loadCausalLM(writeRandomCheckpoint(mkdtempSync(join(tmpdir(), 'aerie-q3sw-')), QWEN3_SW, { seed: 3 })),
  },
];

describe.each(CASES)('engine consistency: $name', ({ model: make }) => {
  let m: CausalLM;
  beforeAll(() => {
    m = make();
  });
  afterAll(() => m?.dispose());

  it('matches a plain float64 transcription of the transformers forward (logits and every tap)', () => {
    const rng = new Rng(10);
    const seq = ids(rng, 13, m.vocabSize);
    const ref = naiveForward(m, seq);
    const taps = [...Array(m.numLayers + 1).keys()];
    tidy(() => {
      const out = prefill(m, [{ ids: seq, logits: 'all' }], { taps });
      rows(out.logits!).forEach((r, p) => expect(relError(r, ref.logits[p]), `logits at ${p}`).toBeLessThan(1e-5));
      for (const k of taps) rows(out.taps.get(k)!).forEach((r, p) => expect(relError(r, ref.hidden[k][p]), `tap ${k} at ${p}`).toBeLessThan(1e-5));
    });
  });

  it('prefill, decode and multi-token verify steps over the paged cache reproduce one full prefill', () => {
    const rng = new Rng(11);
    const seq = ids(rng, 23, m.vocabSize);
    tidy(() => {
      const full = rows(prefill(m, [{ ids: seq, logits: 'all' }]).logits!);
      const cache = m.createKvCache({ numBlocks: 8, blockSize: 4 });
      try {
        const s = cache.newSequence();
        const pre = prefill(m, [{ ids: seq.slice(0, 10), seq: s }], { cache });
        expect(pre.rows).toEqual([{ sequence: 0, position: 9 }]);
        expect(relError(rows(pre.logits!)[0], full[9])).toBeLessThan(TOL);
        for (let p = 10; p < 16; p++) {
          const d = decodeStep(m, cache, [s], [[seq[p]]]);
          expect(d.rows).toEqual([{ sequence: 0, position: p }]);
          expect(relError(rows(d.logits!)[0], full[p]), `decode at ${p}`).toBeLessThan(TOL);
        }
        for (const [a, b] of [[16, 20], [20, 23]]) {
          const v = decodeStep(m, cache, [s], [seq.slice(a, b)]);
          const got = rows(v.logits!);
          for (let p = a; p < b; p++) expect(relError(got[p - a], full[p]), `verify at ${p}`).toBeLessThan(TOL);
        }
        expect(s.length).toBe(23);
      } finally {
        cache.dispose();
      }
    });
  });

  it('a packed batch equals each sequence alone (logits and taps)', () => {
    const rng = new Rng(12);
    const seqs = [ids(rng, 9, m.vocabSize), ids(rng, 1, m.vocabSize), ids(rng, 14, m.vocabSize)];
    const taps = [0, 1, m.numLayers];
    tidy(() => {
      const packed = prefill(m, seqs.map((s) => ({ ids: s, logits: 'all' as const })), { taps });
      expect(packed.offsets).toEqual([0, 9, 10, 24]);
      const lp = rows(packed.logits!);
      seqs.forEach((s, i) => {
        const alone = prefill(m, [{ ids: s, logits: 'all' }], { taps });
        const la = rows(alone.logits!);
        for (let p = 0; p < s.length; p++) expect(relError(lp[packed.offsets[i] + p], la[p])).toBeLessThan(1e-6);
        for (const k of taps) {
          const hp = rows(packed.taps.get(k)!);
          const ha = rows(alone.taps.get(k)!);
          for (let p = 0; p < s.length; p++) expect(relError(hp[packed.offsets[i] + p], ha[p])).toBeLessThan(1e-6);
        }
      });
    });
  });

  it('taps: [T, H] residual states; tap 0 is the embedding; tap N + final norm + lm_head gives the logits', () => {
    const rng = new Rng(13);
    const seq = ids(rng, 7, m.vocabSize);
    const N = m.numLayers;
    tidy(() => {
      const out = prefill(m, [{ ids: seq, logits: [2, 6] }], { taps: [N, 0, 2] });
      expect([...out.taps.keys()].sort()).toEqual([0, 2, N]);
      for (const t of out.taps.values()) expect(t.shape).toEqual([7, m.hiddenSize]);
      expect(out.logits!.shape).toEqual([2, m.vocabSize]);
      const ckpt = openCheckpoint(dirname(m.config.file));
      try {
        const embed = ckpt.load('model.embed_tokens.weight', { dtype: 'float32' }).toArray() as Float32Array;
        const t0 = rows(out.taps.get(0)!);
        seq.forEach((id, p) => expect(Array.from(t0[p])).toEqual(Array.from(embed.subarray(id * m.hiddenSize, (id + 1) * m.hiddenSize))));
      } finally {
        ckpt.close();
      }
      const head = rows(m.headLogits(out.taps.get(N)!));
      const lg = rows(out.logits!);
      expect(relError(head[2], lg[0])).toBeLessThan(1e-6);
      expect(relError(head[6], lg[1])).toBeLessThan(1e-6);
      expect(() => prefill(m, [{ ids: seq }], { taps: [N + 1] })).toThrow(/tap .* is outside 0 \.\. /);
    });
  });

  it('batched decode of sequences of different lengths equals decoding them alone; padded fixed-shape steps too', () => {
    const rng = new Rng(14);
    const a = ids(rng, 12, m.vocabSize);
    const b = ids(rng, 5, m.vocabSize);
    tidy(() => {
      const fa = rows(prefill(m, [{ ids: a, logits: 'all' }]).logits!);
      const fb = rows(prefill(m, [{ ids: b, logits: 'all' }]).logits!);
      const cache = m.createKvCache({ numBlocks: 16, blockSize: 4 });
      try {
        const [sa, sb] = [cache.newSequence(), cache.newSequence()];
        prefill(m, [{ ids: a.slice(0, 8), seq: sa }, { ids: b.slice(0, 2), seq: sb }], { cache });
        const d = decodeStep(m, cache, [sa, sb], [[a[8]], [b[2]]]);
        const got = rows(d.logits!);
        expect(relError(got[0], fa[8])).toBeLessThan(TOL);
        expect(relError(got[1], fb[2])).toBeLessThan(TOL);
        // The fixed-shape runner (what CUDA graphs replay), with a padding row between the two.
        const runner = new DecodeRunner(m, cache, 3, 4);
        try {
          for (let j = 0; j < 2; j++) {
            const lg = rows(runner.step([sa, null, sb], [a[9 + j], 0, b[3 + j]]));
            expect(relError(lg[0], fa[9 + j])).toBeLessThan(TOL);
            expect(relError(lg[2], fb[3 + j])).toBeLessThan(TOL);
            expect(lg[1].every(Number.isFinite)).toBe(true);
          }
        } finally {
          runner.dispose();
        }
        expect([sa.length, sb.length]).toEqual([11, 5]);
        // A bad token in any row is refused before a block is reserved for any row.
        const sc = cache.newSequence();
        prefill(m, [{ ids: a.slice(0, 4), seq: sc }], { cache }); // 4 tokens: its next one needs a second block
        expect(sc.blocks).toHaveLength(1);
        const free = cache.allocator.numFree;
        const two = new DecodeRunner(m, cache, 2, 4);
        try {
          expect(() => two.step([sc, sa], [a[4], m.vocabSize])).toThrow(/outside the vocabulary/);
          expect(sc.blocks).toHaveLength(1);
          expect(cache.allocator.numFree).toBe(free);
          expect([sc.length, sa.length]).toEqual([4, 11]);
        } finally {
          two.dispose();
        }
      } finally {
        cache.dispose();
      }
    });
  });

  it('greedy generation is the argmax of a fresh prefill at every step; batching changes nothing', () => {
    const rng = new Rng(15);
    const p1 = ids(rng, 6, m.vocabSize);
    const p2 = ids(rng, 11, m.vocabSize);
    const one = generate(m, [p1], { maxNewTokens: 12, ignoreEos: true });
    expect(one.tokens[0]).toHaveLength(12);
    expect(one.finishReasons).toEqual(['length']);
    tidy(() => {
      const ctx = [...p1];
      for (const tok of one.tokens[0]) {
        const lg = rows(prefill(m, [{ ids: ctx }]).logits!)[0];
        let best = 0;
        for (let i = 1; i < lg.length; i++) if (lg[i] > lg[best]) best = i;
        expect(tok).toBe(best);
        ctx.push(tok);
      }
    });
    const both = generate(m, [p2, p1], { maxNewTokens: 12, ignoreEos: true });
    expect(both.tokens[1]).toEqual(one.tokens[0]);
    expect(both.tokens[0]).toEqual(generate(m, [p2], { maxNewTokens: 12, ignoreEos: true }).tokens[0]);
  });

  it('seeded sampling: the same seed gives the same tokens, whatever else is in the batch', () => {
    const rng = new Rng(16);
    const p1 = ids(rng, 5, m.vocabSize);
    const p2 = ids(rng, 8, m.vocabSize);
    const opts = { maxNewTokens: 10, temperature: 1.5, topK: 50, topP: 0.95, ignoreEos: true };
    const a = generate(m, [p1], { ...opts, seed: 42 });
    const b = generate(m, [p1], { ...opts, seed: 42 });
    expect(b.tokens).toEqual(a.tokens);
    // Request i draws with seed + i: p1 as request 1 with seed 41 draws as request 0 with seed 42.
    const c = generate(m, [p2, p1], { ...opts, seed: 41 });
    expect(c.tokens[1]).toEqual(a.tokens[0]);
    const d = generate(m, [p1], { ...opts, seed: 7 });
    expect(d.tokens[0]).not.toEqual(a.tokens[0]);
  });

  it('stops at EOS and stop tokens (kept), continues with ignoreEos, and stops at maxNewTokens', () => {
    const rng = new Rng(17);
    const p = ids(rng, 6, m.vocabSize);
    const free = generate(m, [p], { maxNewTokens: 8, ignoreEos: true }).tokens[0];
    const k = 3;
    const target = free[k];
    const first = free.indexOf(target);
    const byEos = generate(m, [p], { maxNewTokens: 8, eosTokenIds: [target] });
    expect(byEos.tokens[0]).toEqual(free.slice(0, first + 1));
    expect(byEos.finishReasons).toEqual(['eos']);
    const byStop = generate(m, [p], { maxNewTokens: 8, stopTokenIds: [target], ignoreEos: true });
    expect(byStop.tokens[0]).toEqual(free.slice(0, first + 1));
    expect(byStop.finishReasons).toEqual(['stop']);
    const ignored = generate(m, [p], { maxNewTokens: 8, eosTokenIds: [target], ignoreEos: true });
    expect(ignored.tokens[0]).toEqual(free);
    expect(ignored.finishReasons).toEqual(['length']);
    expect(generate(m, [p], { maxNewTokens: 0 }).tokens).toEqual([[]]);
  });

  it('rejects bad inputs with clear errors', () => {
    expect(() => prefill(m, [{ ids: [0, m.vocabSize] }])).toThrow(/token 1 is .* outside the vocabulary/);
    expect(() => prefill(m, [{ ids: [] }])).toThrow(/empty/);
    const cache = m.createKvCache({ numBlocks: 1, blockSize: 4 });
    try {
      const s = cache.newSequence();
      expect(() => prefill(m, [{ ids: [1, 2, 3, 4, 5], seq: s }], { cache })).toThrow(/KV cache is full/);
    } finally {
      cache.dispose();
    }
  });
});

describe('aerie-tiny chat generation (embedded model)', () => {
  it('renders a chat, generates greedily and stops at <|im_end|>', () => {
    const m = loadCausalLM(TINY);
    try {
      const tok = loadTokenizer(TINY);
      const prompt = tok.encodeChat([{ role: 'user', content: 'Continue this python code from a.py:\n```python\nimport os\n\n\ndef main():\n```' }], {
        addGenerationPrompt: true,
      });
      const r = generate(m, [prompt], { maxNewTokens: 200 });
      expect(r.tokens[0].length).toBeGreaterThan(0);
      expect(r.promptTokens).toBe(prompt.length);
      if (r.finishReasons[0] === 'eos') expect(r.tokens[0][r.tokens[0].length - 1]).toBe(2);
      expect(typeof tok.decode(r.tokens[0])).toBe('string');
    } finally {
      m.dispose();
    }
  });
});

describe('random weights on the device and presets (what the benchmarks build)', () => {
  it('the Llama-3.1-8B preset parses to its shapes', () => {
    const c = presetConfig('llama-3.1-8b');
    expect([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.intermediateSize, c.vocabSize]).toEqual([
      4096, 32, 32, 8, 128, 14336, 128256,
    ]);
    expect(c.rope.type).toBe('llama3');
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(kvBytesPerToken(c.numHiddenLayers, c.numKeyValueHeads, c.headDim, 'bfloat16')).toBe(128 * 1024);
    expect(() => presetConfig('nope')).toThrow(/unknown model preset 'nope'/);
  });

  it('a model on random weights runs, counts its bytes, and repeats a decode step identically', () => {
    const raw = { ...QWEN3_SW, tie_word_embeddings: true };
    const cfg = parseModelConfig(raw, '<test>');
    const src = randomSource({ seed: 4 });
    const m = createCausalLM(cfg, src, { dtype: 'bfloat16' });
    src.dispose();
    try {
      expect(m.dtype).toBe('bfloat16');
      // bf16 weights + float32 norms; the tied head is the embedding (counted once, read by decode).
      const H = 48, I = 96, V = 300, q = 3 * 32, kv = 32, L = 3;
      const bf16 = V * H + L * (H * (q + 2 * kv) + (q + 2 * kv) + H * q + H + 3 * H * I);
      const f32 = L * (2 * H + 2 * 32) + H;
      expect(m.weightBytes()).toBe(2 * bf16 + 4 * f32);
      // Random norms are 1, exact in bf16: decode reads bf16 copies of the 2 L + 1 prologue norms.
      expect(m.decodeWeightBytes()).toBe(m.weightBytes() - (4 - 2) * (2 * L + 1) * H);
      const cache = m.createKvCache({ numBlocks: 4, blockSize: 4 });
      try {
        const s = cache.newSequence();
        tidy(() => {
          const p = prefill(m, [{ ids: [1, 2, 3, 4, 5], seq: s }], { cache });
          expect(Array.from(p.logits!.toArray() as Float32Array).every(Number.isFinite)).toBe(true);
          const runner = new DecodeRunner(m, cache, 1, 4);
          try {
            const a = Float32Array.from(runner.step([s], [6]).toArray() as Float32Array);
            runner.repeatLast();
            expect(Float32Array.from(runner.logits.toArray() as Float32Array)).toEqual(a);
          } finally {
            runner.dispose();
          }
        });
      } finally {
        cache.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});

describe('bfloat16 copies of the prologue norms (decodeNorms)', () => {
  /** randomSource, but every norm weight holds varied values: exact in bf16, or each off by 2^-12. */
  const normsSource = (exact: boolean) => {
    const base = randomSource({ seed: 6 });
    return {
      ...base,
      loadInto(name: string, into: Tensor) {
        if (!/norm\.weight$/.test(name)) return base.loadInto(name, into);
        const v = Float32Array.from({ length: into.numel }, (_, i) => 0.5 + (i % 97) / 64 + (exact ? 0 : 2 ** -12));
        const t = TensorClass.fromArray(v, into.shape, { dtype: into.dtype, device: into.device });
        into.copy_(t);
        t.dispose();
      },
    };
  };
  const cfg = parseModelConfig({ ...QWEN3_SW }, '<test>');
  const decodeLogits = (m: CausalLM): Float32Array[] => {
    const cache = m.createKvCache({ numBlocks: 8, blockSize: 4 });
    try {
      const s = cache.newSequence();
      return tidy(() => {
        prefill(m, [{ ids: [3, 1, 4, 1, 5], seq: s }], { cache });
        return [9, 2, 6].map((t) => Float32Array.from(decodeStep(m, cache, [s], [[t]]).logits!.toArray() as Float32Array));
      });
    } finally {
      cache.dispose();
    }
  };

  it('are made when every value is exact and give the float32 norms\' logits bit for bit; absent otherwise', () => {
    const src = normsSource(true);
    const m = createCausalLM(cfg, src, { dtype: 'bfloat16' }) as DenseCausalLM;
    try {
      const dn = m.weights.decodeNorms!;
      expect(dn).not.toBeNull();
      expect(dn.input).toHaveLength(cfg.numHiddenLayers);
      expect(dn.final.dtype).toBe('bfloat16');
      expect(dn.post[1].toFloat32Array()).toEqual(m.weights.layers[1].postNorm.toFloat32Array());
      const withCopies = decodeLogits(m);
      m.weights.decodeNorms = null; // the decode prologues read the float32 norms
      try {
        expect(decodeLogits(m)).toEqual(withCopies);
      } finally {
        m.weights.decodeNorms = dn;
      }
    } finally {
      m.dispose();
      src.dispose();
    }
    const inexact = normsSource(false);
    const m2 = createCausalLM(cfg, inexact, { dtype: 'bfloat16' }) as DenseCausalLM;
    try {
      expect(m2.weights.decodeNorms).toBeNull();
      expect(m2.decodeWeightBytes()).toBe(m2.weightBytes() - m2.weights.embed.byteLength);
    } finally {
      m2.dispose();
      inexact.dispose();
    }
  });
});

describe('loading errors', () => {
  it('names the file when the checkpoint disagrees with config.json, and a family without an implementation', () => {
    const dir = writeRandomCheckpoint(mkdtempSync(join(tmpdir(), 'aerie-bad-')), QWEN3_SW, { seed: 1 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...QWEN3_SW, intermediate_size: 64 }));
    expect(() => loadCausalLM(dir)).toThrow(/checkpoint does not match .*config\.json[\s\S]*mlp\.down_proj\.weight/);
    const cfg = parseModelConfig({ ...QWEN3_SW }, '/x/config.json');
    expect(() => causalLMFactory({ ...cfg, family: 'gpt_oss', architecture: 'GptOssForCausalLM' })).toThrow(
      /\/x\/config\.json: family 'gpt_oss' \(GptOssForCausalLM\) has no model implementation yet; implemented: llama, qwen3/,
    );
    expect(() => loadCausalLM(join(dir, 'nope'))).toThrow(/no config\.json/);
  });
});
