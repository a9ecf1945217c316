/**
 * `spec-launch forward`: one prefill over a JSON list of token ids, printing the logits at the
 * positions asked (default: the last) and the hidden states at the taps asked, Speculators convention
 * (tap k = the residual stream entering layer k; tap N = the last layer's output before the final
 * norm), as {"logits": {"POS": [V floats]}, "hidden": {"TAP": {"POS": [H floats]}}}. A tool for
 * checking a new checkpoint against another implementation. Floats are printed with the fewest digits
 * that read back as the same float32.
 *
 *   spec-launch forward --model DIR --ids ids.json --positions 0,5,17 --taps 2,16,29,32 --device cuda:0
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadCausalLM } from '../../src/models/load.js';
import { prefill } from '../../src/models/batch.js';
import { tidy } from '../../src/runtime/scope.js';
import { type ModelArgs, resolveModelArgs } from './generate.js';

interface ForwardArgs extends ModelArgs {
  ids: string;
  positions?: string;
  taps?: string;
}

/** "0,5,17" -> [0, 5, 17] (non-negative integers). */
export function parseIntList(flag: string, v: string): number[] {
  const parts = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0 || !parts.every((s) => /^\d+$/.test(s))) throw new Error(`${flag} ${v}: expected comma-separated non-negative integers`);
  return [...new Set(parts.map(Number))];
}

/** The shortest decimal that parses back to the same float32. */
export function f32String(x: number): string {
  // JSON has no NaN: null keeps the output parseable (infinities parse as 1e999 -> Infinity).
  if (!Number.isFinite(x)) return x > 0 ? '1e999' : x < 0 ? '-1e999' : 'null';
  for (let p = 1; p <= 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

function floats(a: ArrayLike<number>): string {
  return `[${Array.from(a, f32String).join(',')}]`;
}

function readIds(file: string): number[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    throw new Error(`--ids ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new Error(`--ids ${file}: expected a non-empty JSON array of token ids`);
  }
  return v as number[];
}

export function runForward(o: ForwardArgs): void {
  const { dir, device, dtype } = resolveModelArgs(o);
  const ids = readIds(o.ids);
  const positions = o.positions === undefined ? [ids.length - 1] : parseIntList('--positions', o.positions);
  const bad = positions.find((p) => p >= ids.length);
  if (bad !== undefined) throw new Error(`--positions: ${bad} is outside the ${ids.length} tokens of ${o.ids}`);
  const taps = o.taps === undefined ? [] : parseIntList('--taps', o.taps);
  const model = loadCausalLM(dir, { device, dtype });
  try {
    const badTap = taps.find((t) => t > model.numLayers);
    if (badTap !== undefined) throw new Error(`--taps: ${badTap} is outside 0 .. ${model.numLayers} (the model has ${model.numLayers} layers)`);
    const text = tidy(() => {
      const out = prefill(model, [{ ids, logits: positions }], { taps });
      const V = model.vocabSize;
      const H = model.hiddenSize;
      const logits = out.logits!.toArray() as Float32Array;
      const parts = positions.map((p, r) => `"${p}":${floats(logits.subarray(r * V, (r + 1) * V))}`);
      const hidden = taps.map((k) => {
        const h = out.taps.get(k)!.toArray() as Float32Array;
        return `"${k}":{${positions.map((p) => `"${p}":${floats(h.subarray(p * H, (p + 1) * H))}`).join(',')}}`;
      });
      return `{"logits":{${parts.join(',')}},"hidden":{${hidden.join(',')}}}`;
    });
    process.stdout.write(`${text}\n`);
  } finally {
    model.dispose();
  }
}

export function registerForward(program: Command): void {
  program
    .command('forward')
    .description('one forward pass over token ids: logits at positions and hidden states at taps, as JSON on stdout')
    .option('--model <dir>', 'Hugging Face model folder (default: the embedded models/aerie-tiny)')
    .requiredOption('--ids <file>', "a JSON array of token ids ('-': stdin)")
    .option('--positions <list>', 'comma-separated positions whose logits to print (default: the last)')
    .option('--taps <list>', 'comma-separated layer ids whose hidden states to print (Speculators convention)')
    .option('--device <device>', 'cpu or cuda:N', 'cpu')
    .option('--dtype <dtype>', 'bfloat16 or float32 (default: float32 on the CPU, bfloat16 on CUDA)')
    .action((opts: ForwardArgs) => runForward(opts));
}
