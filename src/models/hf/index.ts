/** Hugging Face checkpoints: config.json, safetensors weights, tokenizer and chat template. */
export * from './config.js';
export * from './families.js';
export * from './safetensors.js';
export * from './tokenizer.js';

import { familyOf, loadModelConfig, type ModelConfig } from './config.js';
import { checkAgainstConfig, openCheckpoint, type Checkpoint } from './safetensors.js';
import { HfTokenizer } from './tokenizer.js';

/**
 * Checks a checkpoint against the tensors its config implies (names and shapes from the family; the
 * floating dtype from config.json's dtype when `checkDtype`). Throws one error listing every problem.
 */
export function checkCheckpoint(ckpt: Checkpoint, cfg: ModelConfig, options: { checkDtype?: boolean } = {}): void {
  const fam = familyOf(cfg);
  checkAgainstConfig(ckpt, fam.expectedTensors(cfg), {
    optional: fam.optionalTensors(cfg),
    dtype: options.checkDtype ? cfg.dtype : null,
    source: cfg.file,
  });
}

export interface HfModel {
  config: ModelConfig;
  checkpoint: Checkpoint;
  tokenizer: HfTokenizer;
}

/**
 * Opens a model folder: config.json (with generation_config.json), the safetensors checkpoint checked
 * against the config, and the tokenizer. Close `checkpoint` when done.
 */
export function openHfModel(dir: string): HfModel {
  const config = loadModelConfig(dir);
  const tokenizer = HfTokenizer.fromDir(dir);
  const checkpoint = openCheckpoint(dir);
  try {
    checkCheckpoint(checkpoint, config);
  } catch (e) {
    checkpoint.close();
    throw e;
  }
  return { config, checkpoint, tokenizer };
}
