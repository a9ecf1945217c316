/**
 * Llama 3.x and Qwen3 dense causal LMs (transformers' LlamaForCausalLM and Qwen3ForCausalLM) on the
 * runtime ops. One pre-norm decoder serves both; Qwen3 adds a per-head RMSNorm of q and k (weight
 * [headDim], shared by the heads) before RoPE, and its head_dim need not be hidden / heads.
 *
 *   x = embed[ids]                                  tap 0 = x
 *   for layer l:  y = rmsnorm(x)
 *                 q, k, v = y Wq^T, y Wk^T, y Wv^T (+ biases)   [T, heads, hd]
 *                 q, k = q_norm(q), k_norm(k)       (Qwen3)
 *                 q, k = rope(q), rope(k)           rotate_half layout, positions per token
 *                 cache[slot] = k, v                 (when a slot mapping is given)
 *                 a = attention(q, k, v)            prefill: flash over the packed batch;
 *                                                   paged: over the cache
 *                 x = x + a Wo^T;  y = rmsnorm(x)
 *                 x = x + down(silu(gate(y)) * up(y))   tap l + 1 = x
 *   logits[rows] = norm(x[rows]) lm_head^T        (rows gathered before the norm and the head)
 *
 * q, k, v come from one GEMM against the stacked [Wq; Wk; Wv]: a single token takes views of its
 * output row; several tokens (without a q/k norm) get contiguous q, k, v with the rotary applied by
 * one qkvRotary pass. Steps of few tokens fuse each residual add with the next norm (addRmsnorm);
 * prefill-sized steps accumulate the residual in the o / down GEMM's epilogue (beta = 1 into the
 * residual stream, in place unless that state is a tap) and run only the norm. Either way "x" (the
 * residual stream, what the taps see) and "y" (its norm) are what the layer hands on. Each layer
 * runs inside its own tidy: a layer's temporaries are freed before the next starts, and nothing in
 * the layer loop reads back to the host, so a decode step can be captured as a CUDA graph.
 */
import { type CausalLM, type ForwardInputs, type ForwardOutput, registerCausalLM } from './causal_lm.js';
import type { ModelConfig } from './hf/config.js';
import { PagedKvCache } from './kv_cache.js';
import {
  type DecoderWeights,
  GATE_UP_LAYOUT,
  type LayerWeights,
  type WeightSource,
  decodeWeightBytes,
  disposeWeights,
  loadDenseWeights,
  weightBytes,
} from './weights.js';
import { attention } from '../runtime/ops/attention.js';
import { embedding } from '../runtime/ops/embedding.js';
import { linear, matmul } from '../runtime/ops/matmul.js';
import { addRmsnorm, rmsnorm } from '../runtime/ops/norm.js';
import { pagedAttention, cacheWrite } from '../runtime/ops/paged_attention.js';
import { rotary } from '../runtime/ops/rotary.js';
import { qkvRotary } from '../runtime/ops/qkv_rotary.js';
import { fusedLinear } from '../runtime/ops/fused_linear.js';
import { fusedQkvRotaryCache } from '../runtime/ops/fused_qkv.js';
import { type RopeConfig as RuntimeRope, ropeInvFreq } from '../runtime/ops/rope_params.js';
import { swigluFused } from '../runtime/ops/activation.js';
import { DTYPE_BYTES, type DType } from '../runtime/dtype.js';
import type { Device } from '../runtime/device.js';
import { tidy } from '../runtime/scope.js';
import { Tensor, type Shape } from '../runtime/tensor.js';

/** The runtime's RoPE parameters from a parsed config. */
export function runtimeRope(cfg: ModelConfig): RuntimeRope {
  const r = cfg.rope;
  return {
    theta: r.theta,
    headDim: cfg.headDim,
    partialRotaryFactor: r.partialRotaryFactor,
    maxPositionEmbeddings: cfg.maxPositionEmbeddings,
    scaling: {
      ropeType: r.type,
      factor: r.factor,
      lowFreqFactor: r.lowFreqFactor ?? undefined,
      highFreqFactor: r.highFreqFactor ?? undefined,
      originalMaxPositionEmbeddings: r.originalMaxPositionEmbeddings ?? undefined,
      betaFast: r.betaFast ?? undefined,
      betaSlow: r.betaSlow ?? undefined,
      mscale: r.mscale ?? undefined,
      mscaleAllDim: r.mscaleAllDim ?? undefined,
      attentionFactor: r.type === 'yarn' ? r.attentionFactor : undefined,
      truncate: r.truncate,
    },
  };
}

/** Steps of at least this many tokens fold the residual adds into the o and down GEMMs. */
const GEMM_RESIDUAL_MIN_TOKENS = 128;
/**
 * Paged steps of at most this many tokens (decode, draft verification) run the fused path: four
 * few-row GEMVs with their norms, SwiGLU and residual adds folded in, and one pass for q/k norm +
 * rotary + cache write. The CUDA GEMV handles up to 8 rows; fusedLinear composes the plain ops beyond.
 * AERIE_UNFUSED_DECODE=1 runs such steps through the general layer instead (for A/B timing).
 */
const FUSED_MAX_TOKENS = 8;

/** A view of `count` elements of t starting at element `offset`, with `shape`. */
function view(t: Tensor, offset: number, shape: Shape): Tensor {
  const es = DTYPE_BYTES[t.dtype];
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(t.storage.view(offset * es, n * es), shape, t.dtype);
}

export class DenseCausalLM implements CausalLM {
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly weights: DecoderWeights;
  private readonly invFreq: Tensor;
  private readonly ropeScaling: number;
  private disposed = false;

  constructor(
    readonly config: ModelConfig,
    source: WeightSource,
    readonly device: Device,
    readonly dtype: DType,
  ) {
    if (config.hiddenAct !== 'silu') throw new Error(`${config.file}: hidden_act '${config.hiddenAct}' is not supported (silu only)`);
    this.numLayers = config.numHiddenLayers;
    this.hiddenSize = config.hiddenSize;
    this.vocabSize = config.vocabSize;
    this.numHeads = config.numAttentionHeads;
    this.numKvHeads = config.numKeyValueHeads;
    this.headDim = config.headDim;
    const rope = ropeInvFreq(runtimeRope(config));
    this.ropeScaling = rope.attentionScaling;
    this.invFreq = Tensor.fromArray(rope.invFreq, [rope.invFreq.length], { dtype: 'float32', device }).keep();
    try {
      this.weights = loadDenseWeights(config, source, dtype, device);
    } catch (e) {
      this.invFreq.dispose();
      throw e;
    }
  }

  forward(inputs: ForwardInputs): ForwardOutput {
    if (this.disposed) throw new Error('forward: the model was disposed');
    const T = inputs.ids.shape[0];
    const taps = [...new Set(inputs.taps ?? [])];
    for (const k of taps) {
      if (!Number.isInteger(k) || k < 0 || k > this.numLayers) throw new RangeError(`forward: tap ${k} is outside 0 .. ${this.numLayers} (layer ids)`);
    }
    if (inputs.ids.rank !== 1 || inputs.ids.dtype !== 'int32') throw new TypeError(`forward: ids must be int32 [T], got ${inputs.ids.describe()}`);
    if (inputs.positions.rank !== 1 || inputs.positions.shape[0] !== T || inputs.positions.dtype !== 'int32') {
      throw new TypeError(`forward: positions must be int32 [${T}], got ${inputs.positions.describe()}`);
    }
    const att = inputs.attention;
    if (att.kind === 'paged') {
      if (!inputs.kv) throw new TypeError("forward: attention 'paged' needs kv (the cache and a slot mapping)");
      if (att.seqLens.shape[0] * att.queries !== T) {
        throw new TypeError(`forward: ${att.seqLens.shape[0]} sequences x ${att.queries} queries != ${T} tokens`);
      }
    }
    if (inputs.kv && inputs.kv.cache.numLayers !== this.numLayers) {
      throw new TypeError(`forward: the KV cache has ${inputs.kv.cache.numLayers} layers, the model ${this.numLayers}`);
    }
    if (att.kind === 'paged' && T <= FUSED_MAX_TOKENS && process.env.AERIE_UNFUSED_DECODE !== '1') return this.forwardFused(inputs, taps);
    return tidy(() => {
      const w = this.weights;
      const tapped = new Map<number, Tensor>();
      let x = embedding(w.embed, inputs.ids);
      if (taps.includes(0)) tapped.set(0, x);
      const rows = inputs.logitRows;
      let y: Tensor | null = rmsnorm(x, w.layers[0].inputNorm, this.config.rmsNormEps).y;
      for (let l = 0; l < this.numLayers; l++) {
        const last = l + 1 === this.numLayers;
        const nextNorm = last ? w.norm : w.layers[l + 1].inputNorm;
        // The final norm is needed over every row only for 'all' logits; picked rows are normed
        // after the gather (rmsnorm is per row, so the values are the same).
        const needY = !last || rows === 'all';
        // x may be overwritten (the attention residual accumulated into it) unless it is a tap.
        const xWritable = !taps.includes(l);
        const xIn = x;
        const yIn: Tensor = y!;
        const out = tidy(() => this.layer(l, w.layers[l], xIn, yIn, nextNorm, inputs, xWritable, needY));
        if (out.x !== xIn && tapped.get(l) !== xIn) xIn.dispose(); // a tapped state is returned
        yIn.dispose();
        x = out.x;
        y = out.y;
        if (taps.includes(l + 1)) tapped.set(l + 1, x);
      }
      let logits: Tensor | null = null;
      if (rows !== undefined) {
        const picked = rows === 'all' ? y! : rmsnorm(embedding(x, rows), w.norm, this.config.rmsNormEps).y;
        logits = linear(picked, w.lmHead, undefined, { outDType: 'float32', out: inputs.logitsOut });
      }
      return { logits, taps: tapped };
    });
  }

  /**
   * The paged path for steps of few tokens: per layer
   *
   *   q   = fusedQkvRotaryCache(x, Wqkv, norm: inputNorm, ...)      rmsnorm prologue, then q/k norm,
   *                                                                  rotary, k and v to the cache (on
   *                                                                  CUDA one kernel without q/k norms)
   *   o   = pagedAttention(q, cache)
   *   h   = fusedLinear(o, Wo, residual: x)                          x + o Wo^T (in place unless x is a tap)
   *   act = fusedLinear(h, WgateUp, norm: postNorm, swiglu)          rmsnorm prologue, SwiGLU epilogue
   *   x   = fusedLinear(act, Wdown, residual: h)                     in place into h
   *
   * and the head with the final norm as its prologue. Every rounding point is the unfused path's, so
   * the results are the same (on CUDA up to the order of the norms' fp32 sums).
   */
  private forwardFused(inputs: ForwardInputs, taps: number[]): ForwardOutput {
    const att = inputs.attention;
    if (att.kind !== 'paged' || !inputs.kv) throw new TypeError('forwardFused: needs paged attention and a KV cache');
    const { cache, slotMapping } = inputs.kv;
    const cfg = this.config;
    const eps = cfg.rmsNormEps;
    const T = inputs.ids.shape[0];
    const nH = this.numHeads;
    const hd = this.headDim;
    const B = att.seqLens.shape[0];
    return tidy(() => {
      const w = this.weights;
      const tapped = new Map<number, Tensor>();
      let x = embedding(w.embed, inputs.ids);
      if (taps.includes(0)) tapped.set(0, x);
      for (let l = 0; l < this.numLayers; l++) {
        const lw = w.layers[l];
        const a = lw.attn;
        const xIn = x;
        const sliding = cfg.layerTypes[l] === 'sliding_attention' && cfg.slidingWindow !== null;
        x = tidy(() => {
          const q = fusedQkvRotaryCache(xIn, a.qkv, { norm: { weight: w.decodeNorms?.input[l] ?? lw.inputNorm, eps }, bias: a.qkvBias ?? undefined }, inputs.positions, this.invFreq, {
            heads: nH,
            kvHeads: this.numKvHeads,
            headDim: hd,
            attentionScaling: this.ropeScaling,
            qNorm: a.qNorm ?? undefined,
            kNorm: a.kNorm ?? undefined,
            eps,
            kCache: cache.k[l],
            vCache: cache.v[l],
            slotMapping,
          });
          const qb = att.queries === 1 ? q.reshape([B, nH, hd]) : q.reshape([B, att.queries, nH, hd]);
          const o = pagedAttention(qb, cache.k[l], cache.v[l], att.blockTable, att.seqLens, { window: sliding ? cfg.slidingWindow! : 0 });
          q.dispose();
          // A tapped x must survive the layer: the attention residual then goes to a new tensor.
          // The o weight streams into L2 while attention leaves memory idle (prefetchL2).
          const h = fusedLinear(o.reshape([T, nH * hd]), a.o, { bias: a.oBias ?? undefined, residual: xIn, out: taps.includes(l) ? undefined : xIn, prefetchL2: true });
          o.dispose();
          const act = fusedLinear(h, lw.gateUp, { norm: { weight: w.decodeNorms?.post[l] ?? lw.postNorm, eps }, bias: lw.gateUpBias ?? undefined, swiglu: true, gateUpLayout: GATE_UP_LAYOUT });
          fusedLinear(act, lw.down, { bias: lw.downBias ?? undefined, residual: h, out: h });
          act.dispose();
          return h;
        });
        if (x !== xIn && tapped.get(l) !== xIn) xIn.dispose();
        if (taps.includes(l + 1)) tapped.set(l + 1, x);
      }
      const rows = inputs.logitRows;
      let logits: Tensor | null = null;
      if (rows !== undefined) {
        const picked = rows === 'all' ? x : embedding(x, rows);
        logits = fusedLinear(picked, w.lmHead, { norm: { weight: w.decodeNorms?.final ?? w.norm, eps }, outDType: 'float32', out: inputs.logitsOut });
      }
      return { logits, taps: tapped };
    });
  }

  /**
   * One decoder layer: returns the new residual stream x and its norm y (by nextNorm; null unless
   * needY). With many tokens the residual adds are accumulated by the o and down GEMMs themselves
   * (beta = 1 into the residual stream) and only the norm runs after them; the attention residual
   * goes into x itself when xWritable (the returned x is then the same tensor), else into a copy
   * made by addRmsnorm.
   */
  private layer(
    l: number,
    w: LayerWeights,
    x: Tensor,
    y: Tensor,
    nextNorm: Tensor,
    inputs: ForwardInputs,
    xWritable: boolean,
    needY: boolean,
  ): { x: Tensor; y: Tensor | null } {
    const cfg = this.config;
    const eps = cfg.rmsNormEps;
    const T = x.shape[0];
    const nH = this.numHeads;
    const nKV = this.numKvHeads;
    const hd = this.headDim;
    const a = w.attn;

    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (T === 1) {
      // One token: one GEMM against the stacked weight; its output row splits into q | k | v.
      const qkv = linear(y, a.qkv, a.qkvBias ?? undefined);
      q = view(qkv, 0, [1, nH, hd]);
      k = view(qkv, nH * hd, [1, nKV, hd]);
      v = view(qkv, (nH + nKV) * hd, [1, nKV, hd]);
    } else if (!a.qNorm) {
      // Many tokens: one GEMM against the stacked weight, then one pass splits its rows into
      // contiguous q, k, v with q and k rotated (bit for bit rotary's).
      const qkv = linear(y, a.qkv, a.qkvBias ?? undefined);
      ({ q, k, v } = qkvRotary(qkv, inputs.positions, this.invFreq, { heads: nH, kvHeads: nKV, headDim: hd, attentionScaling: this.ropeScaling }));
      qkv.dispose();
    } else {
      q = linear(y, a.q, a.qBias ?? undefined).reshape([T, nH, hd]);
      k = linear(y, a.k, a.kBias ?? undefined).reshape([T, nKV, hd]);
      v = linear(y, a.v, a.vBias ?? undefined).reshape([T, nKV, hd]);
    }
    if (T === 1 || a.qNorm) {
      if (a.qNorm && a.kNorm) {
        q = rmsnorm(q, a.qNorm, eps).y;
        k = rmsnorm(k, a.kNorm, eps).y;
      }
      // The views of the stacked output may be rotated in place too: q, k and v do not overlap.
      rotary(q, inputs.positions, this.invFreq, { attentionScaling: this.ropeScaling, inPlace: true });
      rotary(k, inputs.positions, this.invFreq, { attentionScaling: this.ropeScaling, inPlace: true });
    }

    const sliding = cfg.layerTypes[l] === 'sliding_attention' && cfg.slidingWindow !== null;
    const window = sliding ? cfg.slidingWindow! : undefined;
    if (inputs.kv) cacheWrite(inputs.kv.cache.k[l], inputs.kv.cache.v[l], k, v, inputs.kv.slotMapping);
    let o: Tensor;
    const att = inputs.attention;
    if (att.kind === 'prefill') {
      const r = attention(q, k, v, { cuSeqlens: att.cuSeqlens, mask: sliding ? 'sliding' : 'causal', window });
      r.lse.dispose();
      o = r.out;
    } else {
      const B = att.seqLens.shape[0];
      const qb = att.queries === 1 ? q.reshape([B, nH, hd]) : q.reshape([B, att.queries, nH, hd]);
      o = pagedAttention(qb, inputs.kv!.cache.k[l], inputs.kv!.cache.v[l], att.blockTable, att.seqLens, { window: window ?? 0 });
    }
    const o2 = o.reshape([T, nH * hd]);
    // Residual adds in the GEMM epilogue (h = x + a W^T, one rounding) for prefill-sized steps; small
    // steps (decode) keep the separate fused add + norm.
    const gemmResidual = T >= GEMM_RESIDUAL_MIN_TOKENS;
    let post: { h: Tensor; y: Tensor };
    if (gemmResidual && xWritable) {
      matmul(o2, a.o, { transB: true, bias: a.oBias ?? undefined, beta: 1, out: x });
      o.dispose();
      post = { h: x, y: rmsnorm(x, w.postNorm, eps).y };
    } else {
      const attnOut = linear(o2, a.o, a.oBias ?? undefined);
      o.dispose();
      post = addRmsnorm(attnOut, x, w.postNorm, eps);
      attnOut.dispose();
    }
    // The big [T, 2I] and [T, I] temporaries are freed as soon as they are used (long prefills).
    const gateUp = linear(post.y, w.gateUp, w.gateUpBias ?? undefined);
    post.y.dispose();
    const act = swigluFused(gateUp, GATE_UP_LAYOUT);
    gateUp.dispose();
    if (gemmResidual) {
      // post.h is x itself (writable) or addRmsnorm's fresh h: accumulate the MLP output into it.
      matmul(act, w.down, { transB: true, bias: w.downBias ?? undefined, beta: 1, out: post.h });
      act.dispose();
      return { x: post.h, y: needY ? rmsnorm(post.h, nextNorm, eps).y : null };
    }
    const mlpOut = linear(act, w.down, w.downBias ?? undefined);
    act.dispose();
    const next = addRmsnorm(mlpOut, post.h, nextNorm, eps);
    return { x: next.h, y: next.y };
  }

  headLogits(h: Tensor): Tensor {
    return tidy(() => {
      const y = rmsnorm(h, this.weights.norm, this.config.rmsNormEps).y;
      return linear(y, this.weights.lmHead, undefined, { outDType: 'float32' });
    });
  }

  createKvCache(options: { numBlocks: number; blockSize?: number }): PagedKvCache {
    return new PagedKvCache({
      numLayers: this.numLayers,
      kvHeads: this.numKvHeads,
      headDim: this.headDim,
      dtype: this.dtype,
      device: this.device,
      numBlocks: options.numBlocks,
      blockSize: options.blockSize,
    });
  }

  weightBytes(): number {
    return weightBytes(this.weights);
  }

  decodeWeightBytes(): number {
    return decodeWeightBytes(this.weights);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeWeights(this.weights);
    this.invFreq.dispose();
  }
}

const dense = (config: ModelConfig, source: WeightSource, o: { device: Device; dtype: DType }) =>
  new DenseCausalLM(config, source, o.device, o.dtype);
registerCausalLM('llama', dense);
registerCausalLM('qwen3', dense);
