/**
 * config.json (and generation_config.json) of a Hugging Face checkpoint, parsed into a typed
 * ModelConfig. Accepts both the transformers 4 layout (`rope_theta` + `rope_scaling`, `torch_dtype`)
 * and the transformers 5 layout (`rope_parameters`, `dtype`), and multimodal wrappers whose language
 * model sits under `text_config`. The family (Llama, Qwen3, ...) comes from the registry in
 * families.ts, keyed by `architectures[0]` and `model_type`; it supplies the defaults that differ
 * between families. Every error names the file and the field.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDType, type DType } from '../../runtime/dtype.js';
import { findFamily, knownFamiliesText, type Family } from './families.js';

export type { RopeType, RopeConfig, LayerType, ModelConfig } from './model_config.js';
import type { LayerType, ModelConfig, RopeConfig, RopeType } from './model_config.js';

type Json = Record<string, unknown>;

/** Reads and validates `dir/config.json` (and `dir/generation_config.json` when present). */
export function loadModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new Error(`${dir}: no config.json (expected ${file})`);
  const top = readJsonObject(file);
  const genFile = join(dir, 'generation_config.json');
  const gen = existsSync(genFile) ? readJsonObject(genFile) : null;
  return parseModelConfig(top, file, gen ? { json: gen, file: genFile } : undefined);
}

/** Reads a JSON file that must hold an object; errors name the file. */
export function readJsonObject(file: string): Json {
  if (!existsSync(file) || !statSync(file).isFile()) throw new Error(`${file}: file not found`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new Error(`${file}: expected a JSON object at the top level`);
  return v;
}

/**
 * Parses a config.json object. `file` names the source in errors; `generation` is the optional
 * generation_config.json, whose eos_token_id joins the stop tokens.
 */
export function parseModelConfig(top: Json, file: string, generation?: { json: Json; file: string }): ModelConfig {
  const archs = top.architectures;
  if (archs !== undefined && !(Array.isArray(archs) && archs.every((a) => typeof a === 'string'))) {
    throw new Error(`${file}: field 'architectures' must be a list of strings`);
  }
  const architecture = Array.isArray(archs) && archs.length > 0 ? (archs[0] as string) : '';
  let text: Json = top;
  let where = '';
  if (top.text_config !== undefined && top.text_config !== null) {
    if (!isObject(top.text_config)) throw new Error(`${file}: field 'text_config' must be an object`);
    text = top.text_config;
    where = 'text_config.';
  }
  const f = new Fields(text, file, where);
  const modelType = f.optString('model_type') ?? (typeof top.model_type === 'string' ? top.model_type : '');
  const topModelType = typeof top.model_type === 'string' ? top.model_type : '';
  const family = findFamily(architecture, [modelType, topModelType]);
  if (!family) {
    const mt = modelType || topModelType || '?';
    const what = architecture
      ? `unsupported architecture '${architecture}' (model_type '${mt}')`
      : `no 'architectures' field and unsupported model_type '${mt}'`;
    throw new Error(`${file}: ${what}; known: ${knownFamiliesText()}`);
  }
  const d = family.defaults;

  const hiddenSize = f.posInt('hidden_size');
  const intermediateSize = f.posInt('intermediate_size');
  const numHiddenLayers = f.posInt('num_hidden_layers');
  const numAttentionHeads = f.posInt('num_attention_heads');
  const numKeyValueHeads = f.optPosInt('num_key_value_heads') ?? numAttentionHeads;
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new Error(
      `${file}: field '${where}num_attention_heads' (${numAttentionHeads}) is not a multiple of '${where}num_key_value_heads' (${numKeyValueHeads})`,
    );
  }
  let headDim = f.optPosInt('head_dim');
  if (headDim === null) {
    if (d.headDim !== undefined) headDim = d.headDim;
    else {
      if (hiddenSize % numAttentionHeads !== 0) {
        throw new Error(
          `${file}: no '${where}head_dim' and '${where}hidden_size' (${hiddenSize}) is not a multiple of '${where}num_attention_heads' (${numAttentionHeads})`,
        );
      }
      headDim = hiddenSize / numAttentionHeads;
    }
  }
  const vocabSize = f.posInt('vocab_size');
  const rmsNormEps = f.optPosNumber('rms_norm_eps') ?? d.rmsNormEps;
  // transformers 5 ties a wrapper's weights by the top-level flag; fall back to the text config's.
  const tieTop = where ? new Fields(top, file, '').optBool('tie_word_embeddings') : null;
  const tieWordEmbeddings = tieTop ?? f.optBool('tie_word_embeddings') ?? d.tieWordEmbeddings;
  const attentionBias = f.optBool('attention_bias') ?? false;
  const mlpBias = f.optBool('mlp_bias') ?? false;
  const hiddenAct = f.optString('hidden_act') ?? 'silu';
  const maxPositionEmbeddings = f.optPosInt('max_position_embeddings') ?? d.maxPositionEmbeddings;

  // Sliding windows: `use_sliding_window: false` (Qwen) switches the window off; `layer_types`, when
  // given, says which layers slide; otherwise the family decides (Mistral: all, Qwen: from
  // max_window_layers, Llama: none).
  const useSliding = f.optBool('use_sliding_window') ?? d.useSlidingWindow ?? null;
  let slidingWindow = f.optPosInt('sliding_window');
  if (useSliding === false) slidingWindow = null;
  let layerTypes: LayerType[];
  const lt = text.layer_types;
  if (lt !== undefined && lt !== null) {
    if (!Array.isArray(lt) || lt.length !== numHiddenLayers) {
      throw new Error(`${file}: field '${where}layer_types' must be a list of ${numHiddenLayers} entries (one per layer)`);
    }
    layerTypes = lt.map((t, i) => {
      if (t !== 'full_attention' && t !== 'sliding_attention') {
        throw new Error(
          `${file}: field '${where}layer_types[${i}]' is '${String(t)}': expected 'full_attention' or 'sliding_attention'`,
        );
      }
      return t;
    });
  } else {
    layerTypes = family.defaultLayerTypes({ raw: text, numHiddenLayers, slidingWindow });
  }
  if (layerTypes.includes('sliding_attention')) {
    if (slidingWindow === null) {
      throw new Error(`${file}: '${where}layer_types' has sliding_attention layers but no '${where}sliding_window'`);
    }
  } else {
    slidingWindow = null; // a window that no layer uses
  }

  const bosTokenId = f.optTokenId('bos_token_id') ?? topTokenId(top, file, 'bos_token_id');
  const padTokenId = f.optTokenId('pad_token_id') ?? topTokenId(top, file, 'pad_token_id');
  // As transformers' generate: generation_config.json's eos_token_id, when it sets one, replaces
  // config.json's; otherwise the config's (the nested text_config's and the top level's).
  const eos: number[] = generation ? new Fields(generation.json, generation.file, '').tokenIds('eos_token_id') : [];
  if (eos.length === 0) {
    eos.push(...f.tokenIds('eos_token_id'));
    if (where) eos.push(...new Fields(top, file, '').tokenIds('eos_token_id'));
  }
  const eosTokenIds = [...new Set(eos)];

  const dtypeName = f.optString('dtype') ?? f.optString('torch_dtype') ?? (typeof top.dtype === 'string' ? top.dtype : null) ??
    (typeof top.torch_dtype === 'string' ? top.torch_dtype : null);
  let dtype: DType | null = null;
  if (dtypeName !== null) {
    try {
      dtype = parseDType(dtypeName);
    } catch {
      throw new Error(`${file}: field '${where}dtype' is '${dtypeName}': expected bfloat16, float16 or float32`);
    }
  }

  const rope = parseRope(text, top, file, where, maxPositionEmbeddings, d.ropeTheta);

  return {
    file,
    architecture,
    modelType: modelType || topModelType,
    family: family.name,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize,
    rmsNormEps,
    tieWordEmbeddings,
    attentionBias,
    mlpBias,
    qkNorm: family.qkNorm,
    hiddenAct,
    maxPositionEmbeddings,
    slidingWindow,
    layerTypes,
    bosTokenId,
    eosTokenIds,
    padTokenId,
    dtype,
    rope,
    raw: text,
    topLevel: top,
  };
}

/** The family entry for a parsed config. */
export function familyOf(cfg: ModelConfig): Family {
  const fam = findFamily(cfg.architecture, [cfg.modelType]);
  if (!fam) throw new Error(`${cfg.file}: unsupported architecture '${cfg.architecture}'; known: ${knownFamiliesText()}`);
  return fam;
}

function topTokenId(top: Json, file: string, key: string): number | null {
  return new Fields(top, file, '').optTokenId(key);
}

/**
 * RoPE from `rope_parameters` (transformers 5: one object holding rope_theta and rope_type, or one
 * object per layer type) or from `rope_theta` + `rope_scaling` (transformers 4, with `type` or
 * `rope_type`).
 */
function parseRope(text: Json, top: Json, file: string, where: string, maxPos: number, defaultTheta: number): RopeConfig {
  let params: Json | null = null;
  let pwhere = '';
  const rp = text.rope_parameters;
  if (rp !== undefined && rp !== null) {
    if (!isObject(rp)) throw new Error(`${file}: field '${where}rope_parameters' must be an object`);
    // Per-layer-type form ({full_attention: {...}, sliding_attention: {...}}): the full-attention one.
    if (isObject(rp.full_attention)) {
      params = rp.full_attention;
      pwhere = `${where}rope_parameters.full_attention.`;
    } else {
      params = rp;
      pwhere = `${where}rope_parameters.`;
    }
  }
  const rs = text.rope_scaling;
  let scaling: Json | null = null;
  if (rs !== undefined && rs !== null) {
    if (!isObject(rs)) throw new Error(`${file}: field '${where}rope_scaling' must be an object or null`);
    scaling = rs;
  }
  const p = new Fields(params ?? scaling ?? {}, file, params ? pwhere : `${where}rope_scaling.`);
  const f = new Fields(text, file, where);
  const theta =
    (params ? p.optPosNumber('rope_theta') : null) ?? f.optPosNumber('rope_theta') ??
    (scaling ? new Fields(scaling, file, `${where}rope_scaling.`).optPosNumber('rope_theta') : null) ?? defaultTheta;
  const typeField = p.optString('rope_type') !== null ? 'rope_type' : 'type';
  let typeName = p.optString(typeField) ?? 'default';
  // Qwen2-VL style configs name mrope as a type; it rotates like default with sections.
  if (typeName === 'mrope') typeName = 'default';
  const partial = p.optPosNumber('partial_rotary_factor') ?? f.optPosNumber('partial_rotary_factor') ??
    (where ? new Fields(top, file, '').optPosNumber('partial_rotary_factor') : null) ?? 1;
  if (partial > 1) throw new Error(`${file}: field '${pwhere || where}partial_rotary_factor' is ${partial}: must be in (0, 1]`);
  const msec = (params ?? scaling)?.mrope_section;
  let mropeSection: number[] | null = null;
  if (msec !== undefined && msec !== null) {
    if (!Array.isArray(msec) || !msec.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new Error(`${file}: field '${p.where}mrope_section' must be a list of non-negative integers`);
    }
    mropeSection = msec as number[];
  }
  const base: RopeConfig = {
    theta,
    type: 'default',
    factor: 1,
    lowFreqFactor: null,
    highFreqFactor: null,
    originalMaxPositionEmbeddings: null,
    betaFast: null,
    betaSlow: null,
    mscale: null,
    mscaleAllDim: null,
    attentionFactor: 1,
    truncate: true,
    partialRotaryFactor: partial,
    mropeSection,
    mropeInterleaved: p.optBool('mrope_interleaved') ?? false,
  };
  switch (typeName) {
    case 'default':
      return base;
    case 'llama3':
      return {
        ...base,
        type: 'llama3',
        factor: p.posNumber('factor'),
        lowFreqFactor: p.posNumber('low_freq_factor'),
        highFreqFactor: p.posNumber('high_freq_factor'),
        originalMaxPositionEmbeddings: p.posInt('original_max_position_embeddings'),
      };
    case 'yarn': {
      const orig = p.optPosInt('original_max_position_embeddings') ?? f.optPosInt('original_max_position_embeddings') ?? maxPos;
      // transformers 5: `factor` as given, or max_position_embeddings / original when absent.
      // (transformers 4.4x replaced factor by that ratio whenever original_max_position_embeddings was
      // set; the two agree for GPT-OSS, and the stand-ins follow 5.)
      const factor = p.optPosNumber('factor') ?? maxPos / orig;
      const mscale = p.optNumber('mscale');
      const mscaleAllDim = p.optNumber('mscale_all_dim');
      const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionFactor = p.optPosNumber('attention_factor');
      if (attentionFactor === null) {
        attentionFactor = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
      }
      return {
        ...base,
        type: 'yarn',
        factor,
        originalMaxPositionEmbeddings: orig,
        // `or` semantics as transformers: 0 or null fall back to the default.
        betaFast: p.optNumber('beta_fast') || 32,
        betaSlow: p.optNumber('beta_slow') || 1,
        mscale,
        mscaleAllDim,
        attentionFactor,
        truncate: p.optBool('truncate') ?? true,
      };
    }
    default:
      throw new Error(`${file}: field '${p.where}${typeField}' is '${typeName}': supported RoPE types are default, llama3, yarn`);
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed field access with errors naming the file and the (possibly nested) field. */
class Fields {
  constructor(
    readonly obj: Json,
    readonly file: string,
    readonly where: string,
  ) {}

  private fail(key: string, want: string): never {
    const v = this.obj[key];
    throw new Error(`${this.file}: field '${this.where}${key}' ${v === undefined ? 'is missing' : `is ${JSON.stringify(v)}`}: expected ${want}`);
  }
  private present(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }
  optNumber(key: string, want = 'a number'): number | null {
    if (!this.present(key)) return null;
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, want);
    return v;
  }
  optPosNumber(key: string): number | null {
    const v = this.optNumber(key, 'a positive number');
    if (v !== null && !(v > 0)) this.fail(key, 'a positive number');
    return v;
  }
  posNumber(key: string): number {
    return this.optPosNumber(key) ?? this.fail(key, 'a positive number');
  }
  optPosInt(key: string): number | null {
    const v = this.optNumber(key, 'a positive integer');
    if (v !== null && !(Number.isInteger(v) && v > 0)) this.fail(key, 'a positive integer');
    return v;
  }
  posInt(key: string): number {
    return this.optPosInt(key) ?? this.fail(key, 'a positive integer');
  }
  optBool(key: string): boolean | null {
    if (!this.present(key)) return null;
    const v = this.obj[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }
  optString(key: string): string | null {
    if (!this.present(key)) return null;
    const v = this.obj[key];
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }
  optTokenId(key: string): number | null {
    if (!this.present(key)) return null;
    const v = this.obj[key];
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) this.fail(key, 'a token id (non-negative integer) or null');
    return v;
  }
  /** A token id or a list of them; [] when absent. */
  tokenIds(key: string): number[] {
    if (!this.present(key)) return [];
    const v = this.obj[key];
    const ok = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
    if (ok(v)) return [v as number];
    if (Array.isArray(v) && v.every(ok)) return v as number[];
    this.fail(key, 'a token id or a list of token ids');
  }
}
