import { describe, expect, it } from 'vitest';
import { copyFileSync, createReadStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, type ChatMessage } from '../src/models/hf/tokenizer.js';

// Expected ids come from test/fixtures/tokenizer_ids.json, recorded by Hugging Face's own tokenizers
// (gen_tokenizer_fixture.py with transformers on the GPU machine; gen_tokenizer_fixture_rust.mjs with
// the Rust library's Node binding otherwise). The file names its source.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const shared = [join(root, '../shared'), join(root, 'shared')].find((p) => existsSync(join(p, 'models')));
const withShared = shared ? it : it.skip;
if (!shared) console.warn('hf_tokenizer: ../shared is absent; the stand-in tokenizer tests are skipped');
const MODELS = ['aerie-tiny', 'aerie-small'];
const ROLE: Record<string, string> = { system: 'system', human: 'user', gpt: 'assistant' };

interface Fixture {
  source: string;
  tokenizers: {
    models: string[];
    tokenizer_sha256: string;
    cases: { text: string; ids: number[] }[];
    chats: { id: string; turns: number; add_generation_prompt: boolean; rendered: string; ids: number[]; decoded_skip_special: string }[];
  }[];
}
const fixturePath = join(root, 'test/fixtures/tokenizer_ids.json');
const fixture: Fixture | null = existsSync(fixturePath) ? JSON.parse(readFileSync(fixturePath, 'utf8')) : null;

function evalConversations(n: number): { id: string; messages: ChatMessage[] }[] {
  const lines = readFileSync(join(shared!, 'datasets/code-chat/eval.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).slice(0, n);
  return lines.map((l) => {
    const c = JSON.parse(l) as { id: string; conversations: { from: string; value: string }[] };
    return { id: c.id, messages: c.conversations.map((t) => ({ role: ROLE[t.from], content: t.value })) };
  });
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('tokenizer.json of the stand-ins', () => {
  withShared('ids match the recorded Hugging Face ids', async () => {
    if (!fixture) {
      console.warn(`hf_tokenizer: ${fixturePath} is absent; run test/fixtures/gen_tokenizer_fixture.py to record expected ids`);
      return;
    }
    const convs = new Map(evalConversations(100).map((c) => [c.id, c.messages]));
    let checked = 0;
    for (const m of MODELS) {
      const dir = join(shared!, 'models', m);
      const entry = fixture.tokenizers.find((t) => t.models.includes(m));
      expect(entry, `${fixturePath} has no entry for ${m}`).toBeDefined();
      expect(await sha256(join(dir, 'tokenizer.json')), `${m}/tokenizer.json changed since ${fixturePath} was recorded`).toBe(entry!.tokenizer_sha256);
      const tok = loadTokenizer(dir);
      for (const c of entry!.cases) {
        expect(tok.encode(c.text), `${m}: ${JSON.stringify(c.text.slice(0, 40))} (vs ${fixture.source})`).toEqual(c.ids);
      }
      expect(entry!.chats.length).toBeGreaterThanOrEqual(20);
      for (const c of entry!.chats) {
        const messages = convs.get(c.id)!.slice(0, c.turns);
        const what = `${m}: ${c.id} (${c.turns} turns; vs ${fixture.source})`;
        expect(tok.renderChat(messages, { addGenerationPrompt: c.add_generation_prompt }), what).toBe(c.rendered);
        expect(tok.encode(c.rendered, { addSpecialTokens: false }), what).toEqual(c.ids);
        expect(tok.encodeChat(messages, { addGenerationPrompt: c.add_generation_prompt }), what).toEqual(c.ids);
        expect(tok.decode(c.ids), what).toBe(c.rendered);
        expect(tok.decode(c.ids, { skipSpecialTokens: true }), what).toBe(c.decoded_skip_special);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(40);
  });

  withShared('decode(encode(x)) == x for eval prompts and awkward strings', () => {
    const tok = loadTokenizer(join(shared!, 'models/aerie-tiny'));
    const texts = evalConversations(20).flatMap((c) => c.messages.map((m) => m.content as string));
    texts.push('héllo wörld 你好 🤗 \u00a0\t\t x \n\n\n y', '', ' ', '\r\n', 'a<|im_end|>b', '\u200b\ufeff e\u0301', '\u{10FFFF}');
    for (const t of texts) expect(tok.decode(tok.encode(t))).toBe(t);
    // byte-level BPE: code shares tokens; a long prompt compresses well below one token per byte
    const long = texts[0];
    expect(tok.encode(long).length).toBeLessThan(long.length / 2);
  });

  withShared('special tokens', () => {
    const tok = loadTokenizer(join(shared!, 'models/aerie-small'));
    expect(tok.vocabSize).toBe(8192);
    expect([tok.eosToken, tok.eosTokenId, tok.padToken, tok.padTokenId, tok.bosToken, tok.bosTokenId]).toEqual(['<|im_end|>', 2, '<|endoftext|>', 0, null, null]);
    expect([...tok.specialTokenIds].sort()).toEqual([0, 1, 2]);
    expect(tok.tokenToId('<|im_start|>')).toBe(1);
    expect(tok.idToToken(2)).toBe('<|im_end|>');
    const ids = tok.encode('<|im_start|>user\nhi<|im_end|>\n');
    expect(ids[0]).toBe(1);
    expect(ids).toContain(2);
    // the post-processor adds nothing for these tokenizers
    expect(tok.encode('x', { addSpecialTokens: true })).toEqual(tok.encode('x', { addSpecialTokens: false }));
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi\n');
    expect(tok.decode(ids)).toBe('<|im_start|>user\nhi<|im_end|>\n');
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([8192])).toThrow(/decode: token id 8192 is outside the vocabulary of 8192/);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });

  withShared('renders ChatML from chat_template.jinja', () => {
    const tok = loadTokenizer(join(shared!, 'models/aerie-tiny'));
    expect(tok.chatTemplateSource).toMatch(/aerie-tiny\/chat_template\.jinja$/);
    const msgs: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Continue:\n```py\nx = 1\n```' },
      { role: 'assistant', content: 'y = 2' },
    ];
    expect(tok.renderChat(msgs)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nContinue:\n```py\nx = 1\n```<|im_end|>\n<|im_start|>assistant\ny = 2<|im_end|>\n',
    );
    expect(tok.renderChat(msgs.slice(0, 2), { addGenerationPrompt: true })).toMatch(/```<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  });
});

describe('tokenizer folders', () => {
  it('a missing tokenizer.json names the folder and the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aerie-hf-tok-'));
    expect(() => loadTokenizer(dir)).toThrow(`${dir}: no tokenizer.json in this folder (expected ${join(dir, 'tokenizer.json')})`);
  });

  withShared('the template from tokenizer_config.json (string or named list), and none', () => {
    const src = join(shared!, 'models/aerie-tiny');
    const dir = mkdtempSync(join(tmpdir(), 'aerie-hf-tok-'));
    copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const cfg = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8'));
    const tmpl = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: tmpl }));
    const tok = loadTokenizer(dir);
    expect(tok.chatTemplateSource).toMatch(/tokenizer_config\.json \(chat_template\)$/);
    expect(tok.renderChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })).toBe('[user]hi<|im_end|>[assistant]');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: 'D{{ messages | length }}' }] }));
    expect(loadTokenizer(dir).renderChat([{ role: 'user', content: 'a' }])).toBe('D1');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: "{{ raise_exception('no system role') }}" }));
    expect(() => loadTokenizer(dir).renderChat([])).toThrow(/tokenizer_config\.json \(chat_template\): rendering the chat template failed: .*no system role/);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, eos_token: { content: '<|nope|>' } }));
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer_config\.json: eos_token '<\|nope\|>' is not a token of/);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    const none = loadTokenizer(dir);
    expect(none.hasChatTemplate).toBe(false);
    expect(() => none.renderChat([{ role: 'user', content: 'hi' }])).toThrow(
      `${dir}: no chat template (looked for chat_template.jinja and 'chat_template' in tokenizer_config.json)`,
    );
  });
});
