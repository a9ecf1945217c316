/**
 * Small random-weight Hugging Face checkpoints written from TypeScript (config.json +
 * model.safetensors), for tests and demos that must not depend on downloaded models. The tensors are
 * exactly those the family expects for the config (hf/families.ts), with values scaled so that
 * activations stay O(1) and next-token distributions are peaked: embeddings N(0, 1), projections
 * N(0, 1/fan_in), norms 1 + N(0, 0.2^2), biases N(0, 0.1^2).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from './hf/config.js';
import { familyOf } from './hf/config.js';
import { writeSafetensors, type TensorToWrite } from './hf/safetensors.js';
import { floatToBf16Bits, floatToF16Bits } from '../runtime/dtype.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
}

/**
 * Writes `config` (a config.json object) and matching random weights in `dtype` into `dir`; returns
 * dir. The config must name a registered family.
 */
export function writeRandomCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  options: { seed?: number; dtype?: 'float32' | 'bfloat16' | 'float16' } = {},
): string {
  mkdirSync(dir, { recursive: true });
  const dtype = options.dtype ?? 'float32';
  const cfgJson = { ...config, dtype };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfgJson, null, 2));
  const cfg = parseModelConfig(cfgJson, join(dir, 'config.json'));
  const expected = familyOf(cfg).expectedTensors(cfg);
  const normal = rng(options.seed ?? 0);
  const tensors: TensorToWrite[] = [];
  for (const [name, shape] of expected) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    let mean = 0;
    let std: number;
    if (name.endsWith('norm.weight')) {
      mean = 1;
      std = 0.2;
    } else if (name.endsWith('.bias')) {
      std = 0.1;
    } else if (name === 'model.embed_tokens.weight') {
      std = 1;
    } else {
      std = 1 / Math.sqrt(shape[shape.length - 1]);
    }
    for (let i = 0; i < n; i++) v[i] = mean + std * normal();
    const data = dtype === 'float32' ? v : dtype === 'bfloat16' ? floatToBf16Bits(v) : floatToF16Bits(v);
    tensors.push({ name, dtype, shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}
