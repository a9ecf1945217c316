/**
 * `spec-launch generate`: runs a target model on a prompt. Greedy unless a temperature is given;
 * `--chat` renders TEXT as one user turn with the model's chat template and the generation prompt.
 * Only the completion goes to stdout (streamed as it is generated, special tokens kept); prompt size
 * and tokens/s go to stderr. `--json` prints {"prompt_ids", "completion_ids", "text"} instead.
 *
 *   spec-launch generate --chat "Continue: def fib(n):"            (the embedded models/aerie-tiny)
 *   spec-launch generate --model DIR --prompt TEXT --max-tokens 64 --temperature 0.7 --seed 1
 */
import type { Command } from 'commander';
import { defaultModelDir, loadCausalLM } from '../../src/models/load.js';
import { generate } from '../../src/models/generate.js';
import { loadTokenizer, type HfTokenizer } from '../../src/models/hf/tokenizer.js';
import { type Device, parseDevice } from '../../src/runtime/device.js';
import { type DType, parseDType } from '../../src/runtime/dtype.js';
import { cudaDeviceCount, cudaUnavailableReason } from '../../src/runtime/cuda.js';

export interface ModelArgs {
  model?: string;
  device?: string;
  dtype?: string;
}

/** --model (default: the embedded model), --device and --dtype, validated. */
export function resolveModelArgs(o: ModelArgs): { dir: string; device: Device; dtype: DType | undefined } {
  const dir = o.model ?? defaultModelDir();
  const device = parseDevice(o.device ?? 'cpu');
  if (device !== 'cpu') {
    const n = cudaDeviceCount();
    const index = Number(device.slice(5));
    if (index >= n) {
      throw new Error(n === 0 ? `--device ${device}: no CUDA device is usable (${cudaUnavailableReason()})` : `--device ${device}: only ${n} CUDA device(s)`);
    }
  }
  let dtype: DType | undefined;
  if (o.dtype !== undefined) {
    dtype = parseDType(o.dtype);
    if (dtype !== 'float32' && dtype !== 'bfloat16') throw new Error(`--dtype ${o.dtype}: use bfloat16 or float32`);
  }
  return { dir, device, dtype };
}

export function parseNumber(flag: string, v: string, check: (n: number) => boolean, want: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new Error(`${flag} ${v}: expected ${want}`);
  return n;
}

interface GenerateArgs extends ModelArgs {
  prompt?: string;
  chat?: string;
  maxTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  ignoreEos?: boolean;
  json?: boolean;
}

/** Writes the completion as it grows, holding back an incomplete UTF-8 sequence. */
class Streamer {
  private shown = '';
  constructor(private readonly tok: HfTokenizer) {}
  update(ids: readonly number[], final = false): void {
    const text = this.tok.decode(ids);
    if (!final && text.endsWith('\uFFFD')) return;
    if (text.startsWith(this.shown)) {
      process.stdout.write(text.slice(this.shown.length));
      this.shown = text;
    } else if (final) {
      // Decoding more tokens rewrote earlier text (rare): finish on a new line with the whole text.
      process.stdout.write(`\n${text}`);
      this.shown = text;
    }
  }
}

export async function runGenerate(o: GenerateArgs): Promise<void> {
  if ((o.prompt === undefined) === (o.chat === undefined)) throw new Error('give exactly one of --prompt TEXT and --chat TEXT');
  const { dir, device, dtype } = resolveModelArgs(o);
  const maxNewTokens = parseNumber('--max-tokens', o.maxTokens, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  const temperature = o.temperature === undefined ? 0 : parseNumber('--temperature', o.temperature, (n) => n >= 0, 'a number >= 0');
  const topK = o.topK === undefined ? 0 : parseNumber('--top-k', o.topK, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  const topP = o.topP === undefined ? 1 : parseNumber('--top-p', o.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  let seed = 0n;
  if (o.seed !== undefined) {
    if (!/^\d+$/.test(o.seed) || BigInt(o.seed) >= 2n ** 64n) throw new Error(`--seed ${o.seed}: expected an integer in [0, 2^64)`);
    seed = BigInt(o.seed);
  }
  const tok = loadTokenizer(dir);
  const promptIds = o.chat !== undefined ? tok.encodeChat([{ role: 'user', content: o.chat }], { addGenerationPrompt: true }) : tok.encode(o.prompt!);
  if (promptIds.length === 0) throw new Error('the prompt encodes to no tokens');
  const model = loadCausalLM(dir, { device, dtype });
  try {
    const streamer = o.json ? null : new Streamer(tok);
    const completion: number[] = [];
    const r = generate(model, [promptIds], {
      maxNewTokens,
      temperature,
      topK,
      topP,
      seed,
      ignoreEos: o.ignoreEos ?? false,
      onToken: (_req, t) => {
        completion.push(t);
        streamer?.update(completion);
      },
    });
    const ids = r.tokens[0];
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ prompt_ids: promptIds, completion_ids: ids, text: tok.decode(ids) })}\n`);
    } else {
      streamer!.update(ids, true);
      process.stdout.write('\n');
    }
    const decodeRate = r.decodeSteps > 0 ? (r.decodeSteps / r.decodeMs) * 1000 : 0;
    const prefillRate = (r.promptTokens / Math.max(r.prefillMs, 1e-3)) * 1000;
    process.stderr.write(
      `${model.config.architecture} on ${device} (${model.dtype}): prompt ${r.promptTokens} tokens, prefill ${r.prefillMs.toFixed(1)} ms ` +
        `(${prefillRate.toFixed(0)} tokens/s); ${r.generatedTokens} tokens generated, decode ${decodeRate.toFixed(1)} tokens/s; ` +
        `finished: ${r.finishReasons[0]}\n`,
    );
  } finally {
    model.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text with a target model (greedy unless --temperature); the completion goes to stdout, tokens/s to stderr')
    .option('--model <dir>', 'Hugging Face model folder (default: the embedded models/aerie-tiny)')
    .option('--prompt <text>', 'raw text prompt')
    .option('--chat <text>', 'a user message, rendered with the chat template and the generation prompt')
    .option('--max-tokens <n>', 'most tokens to generate', '128')
    .option('--temperature <t>', 'sampling temperature (default: greedy)')
    .option('--top-k <k>', 'sample among the k most likely tokens (0: off)')
    .option('--top-p <p>', 'nucleus sampling threshold (1: off)')
    .option('--seed <s>', 'sampling seed (default 0)')
    .option('--ignore-eos', 'do not stop at end-of-sequence tokens')
    .option('--device <device>', 'cpu or cuda:N', 'cpu')
    .option('--dtype <dtype>', 'bfloat16 or float32 (default: float32 on the CPU, bfloat16 on CUDA)')
    .option('--json', 'print {"prompt_ids", "completion_ids", "text"} as JSON')
    .action(async (opts: GenerateArgs) => {
      await runGenerate(opts);
    });
}
