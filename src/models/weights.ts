/**
 * Weights of a dense pre-norm decoder (Llama, Qwen3), loaded onto the device in the compute dtype.
 *
 * Layout on the device (H hidden, I intermediate, q = heads * headDim, kv = kvHeads * headDim):
 *   embed    [V, H]             model.embed_tokens.weight
 *   per layer:
 *     inputNorm, postNorm float32 [H]
 *     qkv      [q + 2 kv, H]    q_proj | k_proj | v_proj stacked by rows: one GEMM per step (a single
 *                               token's output row splits into contiguous q, k, v; many tokens' rows
 *                               are split, with the rotary, by qkvRotary); q, k, v below are row views
 *                               of it (separate GEMMs where a q/k norm sits between GEMM and rotary)
 *     qkvBias  [q + 2 kv]       when attention_bias
 *     o        [H, q]  (+ oBias [H])
 *     qNorm, kNorm float32 [headDim]   Qwen3 q/k norm
 *     gateUp   [2 I, H]         gate_proj and up_proj rows interleaved by pairs (gate 0, up 0, gate 1,
 *                               up 1, ...; GATE_UP_LAYOUT): a decode GEMV streams each pair as one
 *                               contiguous 2H run, and swigluFused(., 'pairs') takes the [T, 2I] product
 *     down     [H, I]  (+ biases when mlp_bias)
 *   norm     float32 [H]
 *   lmHead   [V, H]             the embedding itself when tie_word_embeddings
 *
 * Norm weights stay float32 (the norm kernels accept them beside bf16 activations; loading bf16 into
 * float32 is exact). A bfloat16 model whose input, post-attention and final norm weights are all exact
 * in bfloat16 (a bf16 checkpoint always is) also gets bfloat16 copies of them, decodeNorms, for the
 * decode step's fused norm prologues: the same products from half the bytes. Weights come from a
 * WeightSource: a safetensors checkpoint, or random values made on the device (benchmarks at real
 * shapes without a download).
 */
import type { Checkpoint } from './hf/safetensors.js';
import type { ModelConfig } from './hf/config.js';
import type { GateUpLayout } from '../runtime/ops/activation.js';
import { embedding } from '../runtime/ops/embedding.js';
import { cast, fill_ } from '../runtime/ops/elementwise.js';
import { DTYPE_BYTES, type DType } from '../runtime/dtype.js';
import type { Device } from '../runtime/device.js';
import { Tensor, shapeString, type Shape } from '../runtime/tensor.js';

/** Where weights come from: fills a tensor (fresh or a row view of a fused one) with a named weight. */
export interface WeightSource {
  readonly description: string;
  has(name: string): boolean;
  /** Fills `into` with weight `name`, converted to into's dtype; its shape must equal into's. */
  loadInto(name: string, into: Tensor): void;
}

/** A safetensors checkpoint as a weight source (shapes checked against the destination). */
export function checkpointSource(ckpt: Checkpoint): WeightSource {
  return {
    description: ckpt.path,
    has: (name) => ckpt.has(name),
    loadInto(name, into) {
      const info = ckpt.info(name);
      if (info.shape.length !== into.rank || info.shape.some((d, i) => d !== into.shape[i])) {
        throw new Error(`${info.file}: tensor '${name}' is ${shapeString(info.shape)}, expected ${shapeString(into.shape)}`);
      }
      const t = ckpt.load(name, { dtype: into.dtype, device: into.device });
      try {
        into.copy_(t);
      } finally {
        t.dispose();
      }
    },
  };
}

/** Mulberry32: a small seeded generator for host-side random chunks. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashName(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/**
 * Random weights made on the device, for benchmarks at real shapes: one chunk of N(0, std) values
 * (2^22 elements per dtype) is generated on the host once and tiled into every weight by
 * device-to-device copies, starting at a name-dependent offset. Norm weights are 1, biases 0.
 */
export function randomSource(options: { seed?: number; std?: number } = {}): WeightSource & { dispose(): void } {
  const chunks = new Map<string, Tensor>();
  const n = 1 << 22;
  const chunkFor = (dtype: DType, device: Device): Tensor => {
    const key = `${dtype}@${device}`;
    let c = chunks.get(key);
    if (!c) {
      const rand = mulberry32(options.seed ?? 0);
      const std = options.std ?? 0.02;
      const v = new Float32Array(2 * n); // two copies: any window of n elements starts inside it
      for (let i = 0; i < n; i += 2) {
        const u1 = Math.max(rand(), 1e-12);
        const u2 = rand();
        const r = Math.sqrt(-2 * Math.log(u1)) * std;
        v[i] = r * Math.cos(2 * Math.PI * u2);
        v[i + 1] = r * Math.sin(2 * Math.PI * u2);
      }
      v.copyWithin(n, 0, n);
      c = Tensor.fromArray(v, [2 * n], { dtype, device }).keep();
      chunks.set(key, c);
    }
    return c;
  };
  return {
    description: 'random weights',
    has: () => true,
    loadInto(name, into) {
      if (/norm\.weight$/.test(name)) {
        fill_(into, 1);
        return;
      }
      if (/\.bias$/.test(name)) {
        fill_(into, 0);
        return;
      }
      const chunk = chunkFor(into.dtype, into.device);
      const es = DTYPE_BYTES[into.dtype];
      const total = into.numel;
      let start = hashName(name) % n;
      for (let done = 0; done < total; ) {
        const count = Math.min(n, total - done);
        // temporary views, freed at once: left to the garbage collector they would pin the memory
        const dst = into.storage.view(done * es, count * es);
        const src = chunk.storage.view(start * es, count * es);
        dst.copyFrom(src);
        dst.free();
        src.free();
        done += count;
        start = (start + 7919) % n;
      }
    },
    dispose() {
      for (const c of chunks.values()) c.dispose();
      chunks.clear();
    },
  };
}

export interface AttentionWeights {
  qkv: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  qkvBias: Tensor | null;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  o: Tensor;
  oBias: Tensor | null;
  qNorm: Tensor | null;
  kNorm: Tensor | null;
}

/**
 * How gateUp (and gateUpBias) hold their rows. Pairs made decode's gate/up GEMV faster than
 * [gate | up] halves: 1.856 against 1.877 ms for 32 layers, a decode step 238.7 against 236.6
 * tokens/s (H200, 2026-11-29, bench/RESULTS.md).
 */
export const GATE_UP_LAYOUT: GateUpLayout = 'pairs';

export interface LayerWeights {
  inputNorm: Tensor;
  postNorm: Tensor;
  attn: AttentionWeights;
  gateUp: Tensor;
  gateUpBias: Tensor | null;
  down: Tensor;
  downBias: Tensor | null;
}

export interface DecoderWeights {
  embed: Tensor;
  layers: LayerWeights[];
  norm: Tensor;
  lmHead: Tensor;
  tied: boolean;
  /** The model's weights as allocated (views excluded): what weightBytes counts. */
  owned: Tensor[];
  /**
   * bfloat16 models: inputNorm, postNorm and norm as bfloat16 copies, made only when every value is
   * exact in bfloat16, so that a norm computes the same products from half the bytes. The decode step
   * passes them to its fused prologues; null otherwise. Freed with the weights, not in `owned`.
   */
  decodeNorms: { input: Tensor[]; post: Tensor[]; final: Tensor } | null;
}

/** Bytes of the distinct weight tensors. */
export function weightBytes(w: DecoderWeights): number {
  return w.owned.reduce((s, t) => s + t.byteLength, 0);
}

/**
 * Bytes a decode step reads: every weight except the embedding table (one row per token) — but the
 * head when it is the tied embedding — with the bfloat16 decodeNorms in place of the norms they copy.
 */
export function decodeWeightBytes(w: DecoderWeights): number {
  const replaced = new Set<Tensor>();
  let copies = 0;
  if (w.decodeNorms) {
    for (const l of w.layers) replaced.add(l.inputNorm).add(l.postNorm);
    replaced.add(w.norm);
    for (const t of [...w.decodeNorms.input, ...w.decodeNorms.post, w.decodeNorms.final]) copies += t.byteLength;
  }
  return w.owned.reduce((s, t) => s + ((t === w.embed && !w.tied) || replaced.has(t) ? 0 : t.byteLength), copies);
}

export function disposeWeights(w: DecoderWeights): void {
  for (const t of w.owned) t.dispose();
  if (w.decodeNorms) for (const t of [...w.decodeNorms.input, ...w.decodeNorms.post, w.decodeNorms.final]) t.dispose();
  for (const l of w.layers) {
    for (const t of [l.attn.q, l.attn.k, l.attn.v, l.attn.qBias, l.attn.kBias, l.attn.vBias]) t?.dispose();
  }
  w.owned.length = 0;
}

/**
 * Loads a dense decoder's weights (names as transformers' LlamaForCausalLM / Qwen3ForCausalLM) into
 * `dtype` on `device`. On failure everything allocated so far is freed.
 */
export function loadDenseWeights(cfg: ModelConfig, src: WeightSource, dtype: DType, device: Device): DecoderWeights {
  const owned: Tensor[] = [];
  const views: Tensor[] = [];
  const normCopies: Tensor[] = []; // decodeNorms
  const alloc = (shape: Shape, dt: DType = dtype): Tensor => {
    const t = Tensor.empty(shape, dt, device).keep();
    owned.push(t);
    return t;
  };
  const one = (name: string, shape: Shape, dt: DType = dtype): Tensor => {
    const t = alloc(shape, dt);
    src.loadInto(name, t);
    return t;
  };
  /**
   * Reorders the rows of a stacked [gate | up] tensor ([2I, ...]) in place into pairs (gate 0, up 0,
   * gate 1, ...): one gather (embedding) on the device into a temporary, copied back.
   */
  const toPairs = (halves: Tensor): void => {
    const n = halves.shape[0];
    const order = new Int32Array(n);
    for (let i = 0; i < n / 2; i++) {
      order[2 * i] = i;
      order[2 * i + 1] = n / 2 + i;
    }
    const ids = Tensor.fromArray(order, [n], { dtype: 'int32', device });
    const rows2d = halves.reshape([n, n === 0 ? 0 : halves.numel / n]);
    let paired: Tensor | null = null;
    try {
      paired = embedding(rows2d, ids);
      halves.copy_(paired);
    } finally {
      ids.dispose();
      rows2d.dispose();
      paired?.dispose();
    }
  };
  /** Stacks named [n_i, ...rest] weights by rows into one tensor; returns it and its row views. */
  const stacked = (parts: [string, Shape][]): { all: Tensor; views: Tensor[] } => {
    const rows = parts.reduce((s, [, sh]) => s + sh[0], 0);
    const rest = parts[0][1].slice(1);
    const all = alloc([rows, ...rest]);
    const vs: Tensor[] = [];
    let r = 0;
    for (const [name, sh] of parts) {
      const v = all.rows(r, r + sh[0]).keep();
      views.push(v);
      src.loadInto(name, v);
      vs.push(v);
      r += sh[0];
    }
    return { all, views: vs };
  };
  try {
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const q = cfg.numAttentionHeads * cfg.headDim;
    const kv = cfg.numKeyValueHeads * cfg.headDim;
    const embed = one('model.embed_tokens.weight', [cfg.vocabSize, H]);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const p = `model.layers.${l}.`;
      const a = `${p}self_attn.`;
      const qkv = stacked([[`${a}q_proj.weight`, [q, H]], [`${a}k_proj.weight`, [kv, H]], [`${a}v_proj.weight`, [kv, H]]]);
      const qkvBias = cfg.attentionBias ? stacked([[`${a}q_proj.bias`, [q]], [`${a}k_proj.bias`, [kv]], [`${a}v_proj.bias`, [kv]]]) : null;
      const attn: AttentionWeights = {
        qkv: qkv.all,
        q: qkv.views[0],
        k: qkv.views[1],
        v: qkv.views[2],
        qkvBias: qkvBias?.all ?? null,
        qBias: qkvBias?.views[0] ?? null,
        kBias: qkvBias?.views[1] ?? null,
        vBias: qkvBias?.views[2] ?? null,
        o: one(`${a}o_proj.weight`, [H, q]),
        oBias: cfg.attentionBias ? one(`${a}o_proj.bias`, [H]) : null,
        qNorm: cfg.qkNorm ? one(`${a}q_norm.weight`, [cfg.headDim], 'float32') : null,
        kNorm: cfg.qkNorm ? one(`${a}k_norm.weight`, [cfg.headDim], 'float32') : null,
      };
      const m = `${p}mlp.`;
      const gateUp = stacked([[`${m}gate_proj.weight`, [I, H]], [`${m}up_proj.weight`, [I, H]]]);
      const gateUpBias = cfg.mlpBias ? stacked([[`${m}gate_proj.bias`, [I]], [`${m}up_proj.bias`, [I]]]) : null;
      // The gate/up views were only needed to load: the stacked tensor holds the bytes.
      for (const v of [...gateUp.views, ...(gateUpBias?.views ?? [])]) {
        v.dispose();
        views.splice(views.indexOf(v), 1);
      }
      if (GATE_UP_LAYOUT === 'pairs') {
        toPairs(gateUp.all);
        if (gateUpBias) toPairs(gateUpBias.all);
      }
      layers.push({
        inputNorm: one(`${p}input_layernorm.weight`, [H], 'float32'),
        postNorm: one(`${p}post_attention_layernorm.weight`, [H], 'float32'),
        attn,
        gateUp: gateUp.all,
        gateUpBias: gateUpBias?.all ?? null,
        down: one(`${m}down_proj.weight`, [H, I]),
        downBias: cfg.mlpBias ? one(`${m}down_proj.bias`, [H]) : null,
      });
    }
    const norm = one('model.norm.weight', [H], 'float32');
    const tied = cfg.tieWordEmbeddings;
    const lmHead = tied ? embed : one('lm_head.weight', [cfg.vocabSize, H]);
    let decodeNorms: DecoderWeights['decodeNorms'] = null;
    const prologueNorms = [...layers.flatMap((l) => [l.inputNorm, l.postNorm]), norm];
    const exactInBf16 = (t: Tensor): boolean => {
      const v = t.toFloat32Array() as Float32Array;
      return new Uint32Array(v.buffer, v.byteOffset, v.length).every((bits) => (bits & 0xffff) === 0);
    };
    if (dtype === 'bfloat16' && prologueNorms.every(exactInBf16)) {
      const copy = (t: Tensor): Tensor => {
        const c = cast(t, 'bfloat16').keep();
        normCopies.push(c);
        return c;
      };
      decodeNorms = { input: layers.map((l) => copy(l.inputNorm)), post: layers.map((l) => copy(l.postNorm)), final: copy(norm) };
    }
    return { embed, layers, norm, lmHead, tied, owned, decodeNorms };
  } catch (e) {
    for (const t of [...views, ...owned, ...normCopies]) t.dispose();
    throw e;
  }
}
