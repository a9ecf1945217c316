/** The typed form of a Hugging Face config.json (parsed by config.ts; family defaults in families.ts). */
import type { DType } from '../../runtime/dtype.js';

export type RopeType = 'default' | 'llama3' | 'yarn';

/**
 * Rotary embedding parameters, normalised from either config layout. Fields that a type does not use
 * keep neutral values (factor 1, partialRotaryFactor 1) or null.
 */
export interface RopeConfig {
  theta: number;
  type: RopeType;
  /** Frequency scaling factor (llama3, yarn); 1 for default. */
  factor: number;
  /** llama3 only. */
  lowFreqFactor: number | null;
  highFreqFactor: number | null;
  /** llama3 and yarn: the pre-extension context length (yarn defaults it to max_position_embeddings). */
  originalMaxPositionEmbeddings: number | null;
  /** yarn only (defaults 32 and 1, as transformers). */
  betaFast: number | null;
  betaSlow: number | null;
  mscale: number | null;
  mscaleAllDim: number | null;
  /**
   * The factor applied to cos and sin: yarn's explicit `attention_factor`, else
   * mscale(factor, mscale) / mscale(factor, mscale_all_dim) when both are set, else 0.1·ln(factor)+1
   * (transformers 5 `_compute_yarn_parameters`); 1 for the other types.
   */
  attentionFactor: number;
  /** yarn: round the correction range to integers (default true; GPT-OSS sets false). */
  truncate: boolean;
  /** Fraction of head_dim that rotates (1 for full rotary). */
  partialRotaryFactor: number;
  /** Qwen3-VL multimodal rope (`mrope_section`), kept for the later family; null otherwise. */
  mropeSection: number[] | null;
  mropeInterleaved: boolean;
}

export type LayerType = 'full_attention' | 'sliding_attention';

export interface ModelConfig {
  /** Path of the config.json this came from. */
  file: string;
  /** `architectures[0]` of the top-level config. */
  architecture: string;
  /** `model_type` of the language model (text_config's when nested). */
  modelType: string;
  /** Registry name of the family ('llama', 'qwen3', ...). */
  family: string;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  hiddenAct: string;
  maxPositionEmbeddings: number;
  /** Window of sliding-attention layers (keys including the current token), or null when none. */
  slidingWindow: number | null;
  /** One entry per layer. */
  layerTypes: LayerType[];
  bosTokenId: number | null;
  /** Stop tokens: generation_config.json's eos first, then config.json's, without repeats. */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** `dtype` (transformers 5) or `torch_dtype` (4); null when absent. */
  dtype: DType | null;
  rope: RopeConfig;
  /** The language-model config object as read (text_config when nested), for family-specific fields. */
  raw: Readonly<Record<string, unknown>>;
  /** The whole config.json object. */
  topLevel: Readonly<Record<string, unknown>>;
}
