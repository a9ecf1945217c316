/**
 * The registry of target-model families, keyed by config.json's `architectures[0]` and `model_type`.
 * A family says what config.json leaves to class defaults (which differ between families: Qwen3's
 * head_dim defaults to 128, Llama's to hidden/heads), which layers slide, and which tensors (names and
 * shapes) its checkpoints hold. Llama and Qwen3 are registered here; Qwen3-MoE, GPT-OSS, Mistral 3
 * and Qwen3-VL register the same way (see docs FAMILIES.md for their differences).
 */
import type { LayerType, ModelConfig } from './model_config.js';

export interface FamilyDefaults {
  /** Class default of head_dim; undefined means hidden_size / num_attention_heads. */
  headDim?: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  ropeTheta: number;
  /** Class default of `use_sliding_window` where the family has that switch (Qwen). */
  useSlidingWindow?: boolean;
}

export interface LayerTypeArgs {
  raw: Readonly<Record<string, unknown>>;
  numHiddenLayers: number;
  slidingWindow: number | null;
}

export interface Family {
  /** Short name ('llama', 'qwen3'). */
  name: string;
  /** `architectures[0]` values that select this family. */
  architectures: readonly string[];
  /** `model_type` values that select it when the architecture is not listed. */
  modelTypes: readonly string[];
  /** Per-head RMSNorm of q and k before RoPE. */
  qkNorm: boolean;
  defaults: FamilyDefaults;
  /** Layer types when config.json has no `layer_types`. */
  defaultLayerTypes(args: LayerTypeArgs): LayerType[];
  /** Tensors a checkpoint of this config must hold, with their shapes. */
  expectedTensors(cfg: ModelConfig): Map<string, number[]>;
  /** Tensors it may hold besides (e.g. lm_head.weight when tied), with their shapes. */
  optionalTensors(cfg: ModelConfig): Map<string, number[]>;
}

const families: Family[] = [];

/** Adds a family; an architecture or model_type already taken is an error. */
export function registerFamily(f: Family): void {
  for (const g of families) {
    const a = f.architectures.find((x) => g.architectures.includes(x));
    const m = f.modelTypes.find((x) => g.modelTypes.includes(x));
    if (a || m) throw new Error(`registerFamily: '${a ?? m}' of family '${f.name}' is already registered by '${g.name}'`);
  }
  families.push(f);
}

/** The family of an architecture, else of the first model_type that names one; undefined if none. */
export function findFamily(architecture: string, modelTypes: readonly string[]): Family | undefined {
  if (architecture) {
    const byArch = families.find((f) => f.architectures.includes(architecture));
    if (byArch) return byArch;
    // An architecture that is named but unknown is not rescued by its model_type: a
    // Qwen3ForSequenceClassification is no causal LM even though its model_type is qwen3.
    return undefined;
  }
  for (const m of modelTypes) {
    const byType = m ? families.find((f) => f.modelTypes.includes(m)) : undefined;
    if (byType) return byType;
  }
  return undefined;
}

export function registeredFamilies(): readonly Family[] {
  return families;
}

/** "LlamaForCausalLM (llama), Qwen3ForCausalLM (qwen3)" for error messages. */
export function knownFamiliesText(): string {
  return families.map((f) => `${f.architectures.join('/')} (${f.modelTypes.join('/')})`).join(', ');
}

/** The dense pre-norm decoder shared by Llama and Qwen3 (Qwen3 adds q_norm and k_norm). */
function denseDecoderTensors(cfg: ModelConfig, qkNorm: boolean): Map<string, number[]> {
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const q = cfg.numAttentionHeads * cfg.headDim;
  const kv = cfg.numKeyValueHeads * cfg.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [cfg.vocabSize, H]);
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    m.set(`${p}self_attn.q_proj.weight`, [q, H]);
    m.set(`${p}self_attn.k_proj.weight`, [kv, H]);
    m.set(`${p}self_attn.v_proj.weight`, [kv, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, q]);
    if (cfg.attentionBias) {
      m.set(`${p}self_attn.q_proj.bias`, [q]);
      m.set(`${p}self_attn.k_proj.bias`, [kv]);
      m.set(`${p}self_attn.v_proj.bias`, [kv]);
      m.set(`${p}self_attn.o_proj.bias`, [H]);
    }
    if (qkNorm) {
      m.set(`${p}self_attn.q_norm.weight`, [cfg.headDim]);
      m.set(`${p}self_attn.k_norm.weight`, [cfg.headDim]);
    }
    m.set(`${p}mlp.gate_proj.weight`, [I, H]);
    m.set(`${p}mlp.up_proj.weight`, [I, H]);
    m.set(`${p}mlp.down_proj.weight`, [H, I]);
    if (cfg.mlpBias) {
      m.set(`${p}mlp.gate_proj.bias`, [I]);
      m.set(`${p}mlp.up_proj.bias`, [I]);
      m.set(`${p}mlp.down_proj.bias`, [H]);
    }
  }
  m.set('model.norm.weight', [H]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, H]);
  return m;
}

/** A tied checkpoint may still store lm_head.weight (a copy of the embedding). */
function tiedHead(cfg: ModelConfig): Map<string, number[]> {
  return cfg.tieWordEmbeddings ? new Map([['lm_head.weight', [cfg.vocabSize, cfg.hiddenSize]]]) : new Map();
}

registerFamily({
  name: 'llama',
  architectures: ['LlamaForCausalLM'],
  modelTypes: ['llama'],
  qkNorm: false,
  // transformers LlamaConfig defaults
  defaults: { rmsNormEps: 1e-6, tieWordEmbeddings: false, maxPositionEmbeddings: 2048, ropeTheta: 10000 },
  defaultLayerTypes: ({ numHiddenLayers }) => Array<LayerType>(numHiddenLayers).fill('full_attention'),
  expectedTensors: (cfg) => denseDecoderTensors(cfg, false),
  optionalTensors: tiedHead,
});

registerFamily({
  name: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  modelTypes: ['qwen3'],
  qkNorm: true,
  // transformers Qwen3Config defaults: head_dim 128 (not hidden/heads), sliding window off
  defaults: {
    headDim: 128,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 32768,
    ropeTheta: 10000,
    useSlidingWindow: false,
  },
  // Qwen3Config: layers from max_window_layers on slide, when the window is on.
  defaultLayerTypes: ({ raw, numHiddenLayers, slidingWindow }) => {
    const mwl = typeof raw.max_window_layers === 'number' ? raw.max_window_layers : 28;
    return Array.from({ length: numHiddenLayers }, (_, i) =>
      slidingWindow !== null && i >= mwl ? 'sliding_attention' : 'full_attention',
    );
  },
  expectedTensors: (cfg) => denseDecoderTensors(cfg, true),
  optionalTensors: tiedHead,
});
