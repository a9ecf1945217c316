/**
 * Rotary-embedding parameters (inverse frequencies and the attention scaling applied to cos/sin),
 * computed as Hugging Face transformers' modeling_rope_utils does for rope_type default, linear,
 * llama3 and yarn. transformers computes in float32; here each formula runs in float64 on the
 * float32 base frequencies and is rounded to float32 at the end, so results agree with transformers
 * to float32 rounding (a few ulp). Types that depend on the running sequence length (dynamic,
 * longrope) are refused.
 */

export interface RopeScaling {
  /** 'default' when absent. */
  ropeType?: 'default' | 'linear' | 'llama3' | 'yarn' | string;
  factor?: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  /** llama3 and yarn: the pretraining context (yarn defaults to maxPositionEmbeddings). */
  originalMaxPositionEmbeddings?: number;
  /** yarn */
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  attentionFactor?: number;
  truncate?: boolean;
}

export interface RopeConfig {
  theta: number;
  headDim: number;
  partialRotaryFactor?: number;
  /** The model's max_position_embeddings (yarn fallbacks only). */
  maxPositionEmbeddings?: number;
  scaling?: RopeScaling;
}

export interface RopeParams {
  /** [rotaryDim / 2] */
  invFreq: Float32Array;
  /** Multiplies cos and sin (1 except yarn). */
  attentionScaling: number;
}

const f32 = Math.fround;

function fail(message: string): never {
  throw new TypeError(`ropeInvFreq: ${message}`);
}

function need(value: number | undefined, name: string, ropeType: string): number {
  if (value === undefined || !Number.isFinite(value)) fail(`rope_type '${ropeType}' needs a finite ${name}`);
  return value;
}

/** The rotary dimension: int(headDim * partialRotaryFactor), as transformers truncates it. */
export function rotaryDim(config: RopeConfig): number {
  const dim = Math.trunc(config.headDim * (config.partialRotaryFactor ?? 1));
  if (dim < 2 || dim % 2 !== 0 || dim > config.headDim) {
    fail(`rotary dim ${dim} (headDim ${config.headDim} x partialRotaryFactor ${config.partialRotaryFactor ?? 1}) must be even, >= 2 and <= headDim`);
  }
  return dim;
}

/** base ** (2i / dim) in float32, i < dim / 2: transformers' pos_freqs. */
function baseFreqs(theta: number, dim: number): Float64Array {
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f32(Math.pow(f32(theta), f32((2 * i) / dim)));
  return out;
}

export function ropeInvFreq(config: RopeConfig): RopeParams {
  if (!(config.theta > 0)) fail(`theta must be positive, got ${config.theta}`);
  if (!Number.isInteger(config.headDim) || config.headDim <= 0) fail(`headDim must be a positive integer, got ${config.headDim}`);
  const dim = rotaryDim(config);
  const pos = baseFreqs(config.theta, dim);
  const s = config.scaling ?? {};
  const ropeType = s.ropeType ?? 'default';
  const inv = new Float32Array(dim / 2);
  switch (ropeType) {
    case 'default':
      for (let i = 0; i < inv.length; i++) inv[i] = f32(1 / pos[i]);
      return { invFreq: inv, attentionScaling: 1 };
    case 'linear': {
      const factor = need(s.factor, 'factor', ropeType);
      for (let i = 0; i < inv.length; i++) inv[i] = f32(f32(1 / pos[i]) / factor);
      return { invFreq: inv, attentionScaling: 1 };
    }
    case 'llama3':
      return { invFreq: llama3(pos, s), attentionScaling: 1 };
    case 'yarn':
      return yarn(config, dim, pos, s);
    default:
      return fail(`unsupported rope_type '${ropeType}' (supported: default, linear, llama3, yarn)`);
  }
}

/** Llama 3.1: long wavelengths divided by factor, short kept, a smooth blend between. */
function llama3(pos: Float64Array, s: RopeScaling): Float32Array {
  const factor = need(s.factor, 'factor', 'llama3');
  const lowFreqFactor = need(s.lowFreqFactor, 'lowFreqFactor', 'llama3');
  const highFreqFactor = need(s.highFreqFactor, 'highFreqFactor', 'llama3');
  const oldContext = need(s.originalMaxPositionEmbeddings, 'originalMaxPositionEmbeddings', 'llama3');
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  const out = new Float32Array(pos.length);
  for (let i = 0; i < pos.length; i++) {
    const inv = f32(1 / pos[i]);
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < highFreqWavelen) {
      out[i] = inv;
    } else if (wavelen > lowFreqWavelen) {
      out[i] = f32(inv / factor);
    } else {
      const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      out[i] = f32(((1 - smooth) * inv) / factor + smooth * inv);
    }
  }
  return out;
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** YaRN: interpolate low frequencies by factor, keep high ones, ramp between (by rotation count). */
function yarn(config: RopeConfig, dim: number, pos: Float64Array, s: RopeScaling): RopeParams {
  const original = s.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings;
  if (original === undefined) fail("rope_type 'yarn' needs originalMaxPositionEmbeddings (or maxPositionEmbeddings)");
  let factor = s.factor;
  if (factor === undefined) {
    // transformers: factor defaults to max_position_embeddings / original_max_position_embeddings
    factor = need(config.maxPositionEmbeddings, 'factor (or maxPositionEmbeddings)', 'yarn') / original;
  }
  let attentionScaling = s.attentionFactor;
  if (attentionScaling === undefined) {
    // Python truthiness: a zero mscale counts as absent.
    attentionScaling = s.mscale && s.mscaleAllDim ? yarnMscale(factor, s.mscale) / yarnMscale(factor, s.mscaleAllDim) : yarnMscale(factor);
  }
  const betaFast = s.betaFast || 32;
  const betaSlow = s.betaSlow || 1;
  const truncate = s.truncate ?? true;
  // The dimension at which a frequency completes `rotations` turns over the original context.
  const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(config.theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1); // transformers clamps to dim - 1 (not dim / 2 - 1)
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < inv.length; i++) {
    const extrapolation = f32(1 / pos[i]);
    const interpolation = f32(1 / f32(factor * pos[i]));
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const extrapolationFactor = 1 - ramp;
    inv[i] = f32(interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor);
  }
  return { invFreq: inv, attentionScaling };
}

/**
 * A RopeConfig from a Hugging Face config.json object: transformers 5 `rope_parameters` (with
 * rope_theta and partial_rotary_factor inside) or transformers 4 `rope_theta` + `rope_scaling`.
 */
export function ropeConfigFromHf(cfg: Record<string, unknown>): RopeConfig {
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const params = (cfg.rope_parameters ?? cfg.rope_scaling ?? {}) as Record<string, unknown>;
  const theta = num(params.rope_theta) ?? num(cfg.rope_theta) ?? 10000;
  const hidden = num(cfg.hidden_size);
  const heads = num(cfg.num_attention_heads);
  const headDim = num(cfg.head_dim) ?? (hidden !== undefined && heads ? Math.floor(hidden / heads) : undefined);
  if (headDim === undefined) throw new TypeError('ropeConfigFromHf: config has neither head_dim nor hidden_size/num_attention_heads');
  const ropeType = (params.rope_type ?? params.type ?? 'default') as string;
  return {
    theta,
    headDim,
    partialRotaryFactor: num(params.partial_rotary_factor) ?? num(cfg.partial_rotary_factor),
    maxPositionEmbeddings: num(cfg.max_position_embeddings),
    scaling: {
      ropeType,
      factor: num(params.factor),
      lowFreqFactor: num(params.low_freq_factor),
      highFreqFactor: num(params.high_freq_factor),
      originalMaxPositionEmbeddings: num(params.original_max_position_embeddings) ?? num(cfg.original_max_position_embeddings),
      betaFast: num(params.beta_fast),
      betaSlow: num(params.beta_slow),
      mscale: num(params.mscale),
      mscaleAllDim: num(params.mscale_all_dim),
      attentionFactor: num(params.attention_factor),
      truncate: typeof params.truncate === 'boolean' ? params.truncate : undefined,
    },
  };
}
