/**
 * Opening a model: a Hugging Face folder (config.json + safetensors, checked against each other
 * before any weight is read) or a config plus any weight source, built by the implementation its
 * family registered (importing this module registers the dense Llama/Qwen3 one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CausalLM, type CausalLMOptions, causalLMFactory, resolveOptions } from './causal_lm.js';
import './dense.js';
import { loadModelConfig, type ModelConfig } from './hf/config.js';
import { checkCheckpoint } from './hf/index.js';
import { openCheckpoint } from './hf/safetensors.js';
import { checkpointSource, type WeightSource } from './weights.js';

/** Builds the family's model from a config and a weight source. */
export function createCausalLM(config: ModelConfig, source: WeightSource, options: CausalLMOptions = {}): CausalLM {
  return causalLMFactory(config)(config, source, resolveOptions(options));
}

/**
 * Loads a model folder onto options.device in options.dtype (float32 on the CPU, bfloat16 on CUDA by
 * default). The checkpoint's tensor names and shapes are checked against config.json first.
 */
export function loadCausalLM(dir: string, options: CausalLMOptions = {}): CausalLM {
  const config = loadModelConfig(dir);
  const factory = causalLMFactory(config);
  const ckpt = openCheckpoint(dir);
  try {
    checkCheckpoint(ckpt, config);
    return factory(config, checkpointSource(ckpt), resolveOptions(options));
  } finally {
    ckpt.close();
  }
}

/** The package root: the nearest folder above this module with Aerie's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'aerie') return dir;
      } catch {
        /* not ours: keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find Aerie's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The model shipped in the repository (models/aerie-tiny): the default of `generate` and `forward`. */
export function defaultModelDir(): string {
  return join(packageRoot(), 'models', 'aerie-tiny');
}
