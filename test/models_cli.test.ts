import { describe, expect, it, vi, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerGenerate } from '../launch/commands/generate.js';
import { f32String, registerForward } from '../launch/commands/forward.js';
import { defaultModelDir, loadCausalLM } from '../src/models/load.js';
import { prefill } from '../src/models/batch.js';
import { generate } from '../src/models/generate.js';
import { loadTokenizer } from '../src/models/hf/tokenizer.js';
import { tidy } from '../src/runtime/scope.js';

// `spec-launch generate` and `spec-launch forward`, run in-process on the embedded model (the
// commands are registered on a fresh program as launch/cli.ts does).
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TINY = join(root, 'models/aerie-tiny');

async function run(args: string[]): Promise<{ out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  try {
    const program = new Command('spec-launch').exitOverride();
    registerGenerate(program);
    registerForward(program);
    await program.parseAsync(['node', 'spec-launch', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  return { out: out.join(''), err: err.join('') };
}

afterEach(() => vi.restoreAllMocks());

describe('spec-launch generate', () => {
  it('defaults to the embedded model', () => {
    expect(defaultModelDir()).toBe(TINY);
  });

  it('--chat --json: prompt ids rendered with the chat template, greedy completion equal to the library', async () => {
    const { out, err } = await run(['generate', '--chat', 'Continue this python code:\n```python\nimport sys\n```', '--max-tokens', '12', '--json']);
    const r = JSON.parse(out) as { prompt_ids: number[]; completion_ids: number[]; text: string };
    const tok = loadTokenizer(TINY);
    expect(r.prompt_ids).toEqual(tok.encodeChat([{ role: 'user', content: 'Continue this python code:\n```python\nimport sys\n```' }], { addGenerationPrompt: true }));
    const m = loadCausalLM(TINY);
    try {
      expect(r.completion_ids).toEqual(generate(m, [r.prompt_ids], { maxNewTokens: 12 }).tokens[0]);
    } finally {
      m.dispose();
    }
    expect(r.text).toBe(tok.decode(r.completion_ids));
    expect(err).toMatch(/tokens\/s/);
  });

  it('streams only the completion to stdout; sampling is seeded; --ignore-eos runs to --max-tokens', async () => {
    const a = await run(['generate', '--prompt', 'def main():\n', '--max-tokens', '10', '--temperature', '0.9', '--seed', '7', '--ignore-eos']);
    const b = await run(['generate', '--prompt', 'def main():\n', '--max-tokens', '10', '--temperature', '0.9', '--seed', '7', '--ignore-eos', '--json']);
    const r = JSON.parse(b.out) as { completion_ids: number[]; text: string };
    expect(r.completion_ids).toHaveLength(10);
    expect(a.out).toBe(`${r.text}\n`);
    expect(a.err).toMatch(/10 tokens generated/);
  });

  it('rejects bad arguments with one clear message', async () => {
    await expect(run(['generate', '--max-tokens', '3'])).rejects.toThrow(/exactly one of --prompt TEXT and --chat TEXT/);
    await expect(run(['generate', '--prompt', 'x', '--chat', 'y'])).rejects.toThrow(/exactly one/);
    await expect(run(['generate', '--prompt', 'x', '--max-tokens', 'ten'])).rejects.toThrow(/--max-tokens ten: expected an integer >= 0/);
    await expect(run(['generate', '--prompt', 'x', '--temperature', '-1'])).rejects.toThrow(/--temperature -1/);
    await expect(run(['generate', '--prompt', 'x', '--dtype', 'int32'])).rejects.toThrow(/--dtype int32: use bfloat16 or float32/);
    await expect(run(['generate', '--prompt', 'x', '--device', 'tpu'])).rejects.toThrow(/unknown device 'tpu'/);
    await expect(run(['generate', '--prompt', 'x', '--model', '/nonexistent/model'])).rejects.toThrow(/\/nonexistent\/model/);
  });
});

describe('spec-launch forward', () => {
  it('prints logits at the positions and taps at the layer ids, equal to the library', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aerie-fwd-'));
    const ids = [1, 882, 198, 300, 301, 302, 2];
    writeFileSync(join(dir, 'ids.json'), JSON.stringify(ids));
    const { out } = await run(['forward', '--model', TINY, '--ids', join(dir, 'ids.json'), '--positions', '0,6', '--taps', '0,2,4']);
    const r = JSON.parse(out) as { logits: Record<string, number[]>; hidden: Record<string, Record<string, number[]>> };
    expect(Object.keys(r.logits)).toEqual(['0', '6']);
    expect(Object.keys(r.hidden)).toEqual(['0', '2', '4']);
    const m = loadCausalLM(TINY);
    try {
      tidy(() => {
        const ref = prefill(m, [{ ids, logits: [0, 6] }], { taps: [0, 2, 4] });
        const lg = ref.logits!.toArray() as Float32Array;
        expect(Float32Array.from(r.logits['6'])).toEqual(lg.subarray(m.vocabSize, 2 * m.vocabSize));
        const h = ref.taps.get(4)!.toArray() as Float32Array;
        expect(Float32Array.from(r.hidden['4']['0'])).toEqual(h.subarray(0, m.hiddenSize));
      });
    } finally {
      m.dispose();
    }
    const last = JSON.parse((await run(['forward', '--ids', join(dir, 'ids.json')])).out) as { logits: Record<string, number[]>; hidden: object };
    expect(Object.keys(last.logits)).toEqual(['6']);
    expect(last.hidden).toEqual({});
    await expect(run(['forward', '--ids', join(dir, 'ids.json'), '--positions', '7'])).rejects.toThrow(/--positions: 7 is outside the 7 tokens/);
    await expect(run(['forward', '--ids', join(dir, 'ids.json'), '--taps', '5'])).rejects.toThrow(/--taps: 5 is outside 0 \.\. 4/);
    writeFileSync(join(dir, 'bad.json'), '{"ids": [1]}');
    await expect(run(['forward', '--ids', join(dir, 'bad.json')])).rejects.toThrow(/expected a non-empty JSON array of token ids/);
  });

  it('prints float32 values with the fewest digits that read back exactly', () => {
    for (const x of [0.1, -1.5, 3.4028234663852886e38, 1e-30, 123456.789, 0]) {
      const f = Math.fround(x);
      expect(Math.fround(Number(f32String(f)))).toBe(f);
    }
    expect(f32String(Math.fround(0.1))).toBe('0.1');
  });
});
