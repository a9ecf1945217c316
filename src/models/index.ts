/**
 * Target models: Hugging Face loading (hf/), the causal LM interface and its family registry, the
 * dense Llama/Qwen3 implementation, the paged KV cache, batching helpers, fixed-shape decode steps
 * (CUDA graphs), greedy decoding with the host a step behind, and generation.
 */
export * from './causal_lm.js';
export * from './kv_cache.js';
export * from './weights.js';
export * from './dense.js';
export * from './load.js';
export * from './batch.js';
export * from './decode_runner.js';
export * from './decode_pipeline.js';
export * from './generate.js';
export * from './presets.js';
export * from './synthetic.js';
