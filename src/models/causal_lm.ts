/**
 * The causal LM interface every target family implements, and the registry that maps a config's
 * family (src/models/hf/families.ts: 'llama', 'qwen3', later 'qwen3_moe', 'gpt_oss', ...) to its
 * implementation. Everything above (batching helpers, generation, datagen, serving) talks to this
 * interface only, so a new family adds a module that calls registerCausalLM and nothing else changes.
 *
 * One forward call runs one step over a flat batch of T tokens, in one of two attention modes:
 *  - 'prefill': packed variable-length sequences that start at position 0 (cu_seqlens), attending
 *    within the batch (flash attention, causal or sliding); K/V also go into the paged cache when a
 *    slot mapping is given.
 *  - 'paged': B sequences with Q new tokens each (T = B * Q; decode is Q = 1, verifying drafted
 *    tokens Q > 1) attending over the paged cache after their K/V are written to it.
 * Logits are computed only for the rows asked (gathered before the head: never [T, V]); hidden
 * states are tapped at any layer ids, Speculators convention: id k is the residual stream entering
 * layer k (0 is the embedding output), id N (the layer count) the last layer's output before the
 * final norm.
 */
import type { ModelConfig } from './hf/config.js';
import type { WeightSource } from './weights.js';
import type { PagedKvCache } from './kv_cache.js';
import type { DType } from '../runtime/dtype.js';
import type { Device } from '../runtime/device.js';
import type { Tensor } from '../runtime/tensor.js';

export type AttentionInputs =
  | {
      kind: 'prefill';
      /** int32 [B + 1]: 0, then cumulative sequence lengths, ending at T. */
      cuSeqlens: Tensor;
    }
  | {
      kind: 'paged';
      /** int32 [B, maxBlocks]: each sequence's cache blocks. */
      blockTable: Tensor;
      /** int32 [B]: tokens of each sequence in the cache after this step's are written. */
      seqLens: Tensor;
      /** New tokens per sequence (T = B * queries). */
      queries: number;
    };

export interface ForwardInputs {
  /** int32 [T] token ids. */
  ids: Tensor;
  /** int32 [T] positions. */
  positions: Tensor;
  attention: AttentionInputs;
  /** Write this step's K/V into the cache at slotMapping int32 [T] (-1 skips a token). Required for 'paged'. */
  kv?: { cache: PagedKvCache; slotMapping: Tensor };
  /** Rows of T to compute logits for: int32 [R], or 'all'; none when absent. */
  logitRows?: Tensor | 'all';
  /** Write the float32 [R, V] logits into this tensor (CUDA graphs) instead of a new one. */
  logitsOut?: Tensor;
  /** Layer ids to tap (0 .. numLayers). */
  taps?: readonly number[];
}

export interface ForwardOutput {
  /** float32 [R, V], or null when no rows were asked. */
  logits: Tensor | null;
  /** Tap id -> [T, H] hidden states in the compute dtype. */
  taps: Map<number, Tensor>;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly device: Device;
  /** Compute (and weight, and KV cache) dtype. */
  readonly dtype: DType;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** One step; every tensor it allocates is freed except the returned ones. */
  forward(inputs: ForwardInputs): ForwardOutput;
  /** The head applied to tapped last-layer states: final norm + lm_head of h [R, H] -> float32 [R, V]. */
  headLogits(h: Tensor): Tensor;
  /** A paged KV cache sized for this model. */
  createKvCache(options: { numBlocks: number; blockSize?: number }): PagedKvCache;
  /** Bytes of all weights on the device. */
  weightBytes(): number;
  /** Bytes of weights one decode step reads (the roofline's numerator). */
  decodeWeightBytes(): number;
  dispose(): void;
}

export interface CausalLMOptions {
  /** Default 'cpu'. */
  device?: Device;
  /** Default: float32 on the CPU, bfloat16 on CUDA. */
  dtype?: DType;
}

export type CausalLMFactory = (config: ModelConfig, weights: WeightSource, options: Required<CausalLMOptions>) => CausalLM;

const factories = new Map<string, CausalLMFactory>();

/** Registers the implementation of a family (by its registry name in hf/families.ts). */
export function registerCausalLM(family: string, factory: CausalLMFactory): void {
  if (factories.has(family)) throw new Error(`registerCausalLM: family '${family}' already has an implementation`);
  factories.set(family, factory);
}

export function causalLMFactory(config: ModelConfig): CausalLMFactory {
  const f = factories.get(config.family);
  if (!f) {
    throw new Error(
      `${config.file}: family '${config.family}' (${config.architecture}) has no model implementation yet; implemented: ${[...factories.keys()].join(', ')}`,
    );
  }
  return f;
}

export function resolveOptions(options: CausalLMOptions): Required<CausalLMOptions> {
  const device = options.device ?? 'cpu';
  const dtype = options.dtype ?? (device === 'cpu' ? 'float32' : 'bfloat16');
  if (dtype !== 'float32' && dtype !== 'bfloat16') throw new TypeError(`model dtype must be float32 or bfloat16, got ${dtype}`);
  return { device, dtype };
}
