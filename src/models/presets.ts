/**
 * config.json objects of well-known targets (shapes only, no weights), for benchmarks at real sizes
 * with random weights made on the device (weights.ts randomSource): no download needed.
 */
import { parseModelConfig, type ModelConfig } from './hf/config.js';

/** meta-llama/Llama-3.1-8B-Instruct's config.json (transformers 4 layout, as published). */
export const LLAMA_3_1_8B: Readonly<Record<string, unknown>> = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

export const PRESETS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  'llama-3.1-8b': LLAMA_3_1_8B,
};

/** The parsed config of a preset (its `file` names the preset). */
export function presetConfig(name: string): ModelConfig {
  const raw = PRESETS[name];
  if (!raw) throw new Error(`unknown model preset '${name}'; known: ${Object.keys(PRESETS).join(', ')}`);
  return parseModelConfig({ ...raw }, `<preset ${name}>`);
}
