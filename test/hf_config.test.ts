import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelConfig, parseModelConfig } from '../src/models/hf/config.js';
import { registerFamily, findFamily } from '../src/models/hf/families.js';

// The stand-in checkpoints live in shared/, beside the repository.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const models = [join(root, '../shared/models'), join(root, 'shared/models')].find((p) => existsSync(p));
const withModels = models ? it : it.skip;
if (!models) console.warn('hf_config: ../shared/models is absent; the stand-in checkpoint tests are skipped');

/** A minimal valid Llama config; `over` replaces or (with undefined) removes fields. */
function llama(over: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 100,
    rms_norm_eps: 1e-5,
    ...over,
  };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

function qwen3(over: Record<string, unknown> = {}): Record<string, unknown> {
  return llama({ architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', ...over });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'aerie-hf-config-'));
}

describe('config.json of the stand-in checkpoints', () => {
  withModels('aerie-tiny is a tied Llama with transformers 5 rope_parameters', () => {
    const c = loadModelConfig(join(models!, 'aerie-tiny'));
    expect(c.family).toBe('llama');
    expect(c.architecture).toBe('LlamaForCausalLM');
    expect([c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim]).toEqual([256, 768, 4, 8, 4, 32]);
    expect(c.vocabSize).toBe(8192);
    expect(c.rmsNormEps).toBe(1e-5);
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.attentionBias).toBe(false);
    expect(c.qkNorm).toBe(false);
    expect(c.maxPositionEmbeddings).toBe(4096);
    expect(c.dtype).toBe('bfloat16');
    expect(c.bosTokenId).toBeNull();
    expect(c.eosTokenIds).toEqual([2]);
    expect(c.padTokenId).toBe(0);
    expect(c.slidingWindow).toBeNull();
    expect(c.layerTypes).toEqual(Array(4).fill('full_attention'));
    expect(c.rope).toMatchObject({ theta: 10000, type: 'default', factor: 1, attentionFactor: 1, partialRotaryFactor: 1 });
  });

  withModels('aerie-small is a tied Qwen3 with q/k norms', () => {
    const c = loadModelConfig(join(models!, 'aerie-small'));
    expect(c.family).toBe('qwen3');
    expect(c.qkNorm).toBe(true);
    expect([c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim]).toEqual([512, 1408, 8, 8, 4, 64]);
    expect(c.rmsNormEps).toBe(1e-6);
    expect(c.rope.theta).toBe(1e6);
    expect(c.slidingWindow).toBeNull();
    expect(c.layerTypes).toHaveLength(8);
    expect(c.eosTokenIds).toEqual([2]);
  });
});

describe('config.json parsing', () => {
  it('defaults num_key_value_heads to the heads and head_dim per family', () => {
    const l = parseModelConfig(llama({ num_key_value_heads: undefined }), 'l.json');
    expect(l.numKeyValueHeads).toBe(4);
    expect(l.headDim).toBe(16); // hidden / heads
    // transformers' Qwen3Config defaults head_dim to 128, not hidden / heads
    expect(parseModelConfig(qwen3(), 'q.json').headDim).toBe(128);
    expect(parseModelConfig(qwen3({ head_dim: 32 }), 'q.json').headDim).toBe(32);
    expect(l.tieWordEmbeddings).toBe(false);
    expect(l.rope).toMatchObject({ theta: 10000, type: 'default' });
  });

  it('reads transformers 4 rope_theta + rope_scaling (llama3, with `type` or `rope_type`)', () => {
    const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    for (const key of ['rope_type', 'type']) {
      const c = parseModelConfig(llama({ rope_theta: 500000, rope_scaling: { [key]: 'llama3', ...scaling }, max_position_embeddings: 131072 }), 'c.json');
      expect(c.rope).toMatchObject({ theta: 500000, type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192, attentionFactor: 1 });
    }
    expect(parseModelConfig(llama({ rope_theta: 1e6, rope_scaling: null }), 'c.json').rope).toMatchObject({ theta: 1e6, type: 'default' });
  });

  it('reads transformers 5 rope_parameters, yarn included', () => {
    // GPT-OSS's values: truncate false, attention factor 0.1 ln 32 + 1
    const c = parseModelConfig(
      llama({
        max_position_embeddings: 131072,
        rope_parameters: { rope_type: 'yarn', rope_theta: 150000, factor: 32, beta_fast: 32, beta_slow: 1, truncate: false, original_max_position_embeddings: 4096 },
      }),
      'c.json',
    );
    expect(c.rope).toMatchObject({ theta: 150000, type: 'yarn', factor: 32, betaFast: 32, betaSlow: 1, truncate: false, originalMaxPositionEmbeddings: 4096 });
    expect(c.rope.attentionFactor).toBeCloseTo(0.1 * Math.log(32) + 1, 12);
    // DeepSeek-style mscale / mscale_all_dim: the ratio of the two mscales (1 when equal)
    const d = parseModelConfig(llama({ rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096 } }), 'c.json');
    expect(d.rope.attentionFactor).toBeCloseTo(1, 12);
    expect(d.rope).toMatchObject({ betaFast: 32, betaSlow: 1, truncate: true });
    // Qwen3 yarn in the transformers 4 layout; factor absent -> max / original
    const q = parseModelConfig(qwen3({ rope_theta: 1e6, max_position_embeddings: 131072, rope_scaling: { type: 'yarn', original_max_position_embeddings: 32768 } }), 'c.json');
    expect(q.rope).toMatchObject({ type: 'yarn', factor: 4, theta: 1e6 });
    // explicit attention_factor wins; partial rotary from the top level
    const p = parseModelConfig(llama({ partial_rotary_factor: 0.5, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 2, attention_factor: 1.5 } }), 'c.json');
    expect(p.rope).toMatchObject({ attentionFactor: 1.5, partialRotaryFactor: 0.5, originalMaxPositionEmbeddings: 2048 });
  });

  it('takes the nested text_config of a multimodal wrapper', () => {
    if (!findFamily('TestVLForConditionalGeneration', [])) {
      const base = findFamily('Qwen3ForCausalLM', [])!;
      registerFamily({ ...base, name: 'test-vl', architectures: ['TestVLForConditionalGeneration'], modelTypes: ['test_vl'] });
    }
    const c = parseModelConfig(
      {
        architectures: ['TestVLForConditionalGeneration'],
        model_type: 'test_vl',
        tie_word_embeddings: true,
        eos_token_id: [7],
        vision_config: { hidden_size: 1152 },
        text_config: { ...qwen3({ architectures: undefined }), model_type: 'test_vl_text', hidden_size: 96, torch_dtype: 'float16', rope_scaling: { rope_type: 'default', mrope_section: [8, 4, 4], mrope_interleaved: true }, rope_theta: 5e6 },
      },
      'vl.json',
    );
    expect(c.family).toBe('test-vl');
    expect(c.hiddenSize).toBe(96);
    expect(c.modelType).toBe('test_vl_text');
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.dtype).toBe('float16');
    expect(c.eosTokenIds).toEqual([7]);
    expect(c.rope).toMatchObject({ theta: 5e6, type: 'default', mropeSection: [8, 4, 4], mropeInterleaved: true });
  });

  it("generation_config.json's eos ids (lists too) replace config.json's, as in transformers' generate", () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(llama({ eos_token_id: [5, 6], torch_dtype: 'float32', bos_token_id: 1 })));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [9, 5] }));
    const c = loadModelConfig(dir);
    expect(c.eosTokenIds).toEqual([9, 5]);
    // a generation_config.json without eos_token_id leaves config.json's
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ pad_token_id: 0 }));
    expect(loadModelConfig(dir).eosTokenIds).toEqual([5, 6]);
    expect(c.bosTokenId).toBe(1);
    expect(c.dtype).toBe('float32');
  });

  it('derives sliding-window layers', () => {
    const q = parseModelConfig(qwen3({ num_hidden_layers: 4, use_sliding_window: true, sliding_window: 4096, max_window_layers: 2 }), 'c.json');
    expect(q.layerTypes).toEqual(['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention']);
    expect(q.slidingWindow).toBe(4096);
    // use_sliding_window false switches the window off (Qwen's class default too)
    expect(parseModelConfig(qwen3({ use_sliding_window: false, sliding_window: 4096 }), 'c.json').slidingWindow).toBeNull();
    expect(parseModelConfig(qwen3({ sliding_window: 4096 }), 'c.json').slidingWindow).toBeNull();
    const g = parseModelConfig(llama({ sliding_window: 128, layer_types: ['sliding_attention', 'full_attention'] }), 'c.json');
    expect(g.layerTypes).toEqual(['sliding_attention', 'full_attention']);
    expect(g.slidingWindow).toBe(128);
    expect(() => parseModelConfig(llama({ layer_types: ['full_attention'] }), 'c.json')).toThrow(/c\.json: field 'layer_types' must be a list of 2 entries/);
    expect(() => parseModelConfig(llama({ layer_types: ['full_attention', 'chunked_attention'] }), 'c.json')).toThrow(/'layer_types\[1\]' is 'chunked_attention'/);
    expect(() => parseModelConfig(llama({ layer_types: ['sliding_attention', 'full_attention'] }), 'c.json')).toThrow(/sliding_attention layers but no 'sliding_window'/);
  });
});

describe('config.json errors name the file and the field', () => {
  it('an unknown architecture names it and the known ones', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(llama({ architectures: ['FancyNetForCausalLM'], model_type: 'fancy' })));
    expect(() => loadModelConfig(dir)).toThrow(
      new RegExp(`${join(dir, 'config.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: unsupported architecture 'FancyNetForCausalLM'.*known: LlamaForCausalLM \\(llama\\), Qwen3ForCausalLM \\(qwen3\\)`),
    );
    // a known model_type does not rescue an unknown head
    expect(() => parseModelConfig(qwen3({ architectures: ['Qwen3ForSequenceClassification'] }), 'c.json')).toThrow(/unsupported architecture 'Qwen3ForSequenceClassification'/);
    // without architectures the model_type decides
    expect(parseModelConfig(qwen3({ architectures: undefined }), 'c.json').family).toBe('qwen3');
    expect(() => parseModelConfig(llama({ architectures: undefined, model_type: 'fancy' }), 'c.json')).toThrow(/c\.json: no 'architectures' field and unsupported model_type 'fancy'; known: /);
  });

  it('missing or mistyped required fields', () => {
    expect(() => parseModelConfig(llama({ hidden_size: undefined }), 'm.json')).toThrow("m.json: field 'hidden_size' is missing: expected a positive integer");
    expect(() => parseModelConfig(llama({ vocab_size: '100' }), 'm.json')).toThrow(`m.json: field 'vocab_size' is "100": expected a positive integer`);
    expect(() => parseModelConfig(llama({ num_attention_heads: 0 }), 'm.json')).toThrow(/field 'num_attention_heads' is 0/);
    expect(() => parseModelConfig(llama({ num_key_value_heads: 3 }), 'm.json')).toThrow(/'num_attention_heads' \(4\) is not a multiple of 'num_key_value_heads' \(3\)/);
    expect(() => parseModelConfig(llama({ tie_word_embeddings: 'yes' }), 'm.json')).toThrow(/field 'tie_word_embeddings' is "yes": expected true or false/);
    expect(() => parseModelConfig(llama({ eos_token_id: [1, -2] }), 'm.json')).toThrow(/field 'eos_token_id'.*a token id or a list of token ids/);
    expect(() => parseModelConfig(llama({ dtype: 'float8' }), 'm.json')).toThrow(/m\.json: field 'dtype' is 'float8'/);
    expect(() => parseModelConfig({ architectures: ['Qwen3ForCausalLM'], text_config: { ...qwen3(), intermediate_size: undefined } }, 'n.json')).toThrow(
      "n.json: field 'text_config.intermediate_size' is missing",
    );
  });

  it('rope errors', () => {
    expect(() => parseModelConfig(llama({ rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }), 'r.json')).toThrow(
      "r.json: field 'rope_parameters.rope_type' is 'longrope': supported RoPE types are default, llama3, yarn",
    );
    expect(() => parseModelConfig(llama({ rope_theta: 1e4, rope_scaling: { type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 } }), 'r.json')).toThrow(
      "r.json: field 'rope_scaling.low_freq_factor' is missing: expected a positive number",
    );
    expect(() => parseModelConfig(llama({ rope_scaling: 'yarn' }), 'r.json')).toThrow(/'rope_scaling' must be an object or null/);
  });

  it('a missing or unreadable config.json', () => {
    const dir = tempDir();
    expect(() => loadModelConfig(dir)).toThrow(`${dir}: no config.json (expected ${join(dir, 'config.json')})`);
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": 4,');
    expect(() => loadModelConfig(dir)).toThrow(/config\.json: not valid JSON/);
    writeFileSync(join(dir, 'config.json'), '[1, 2]');
    expect(() => loadModelConfig(dir)).toThrow(/config\.json: expected a JSON object/);
  });
});
