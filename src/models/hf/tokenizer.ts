/**
 * A checkpoint's tokenizer (tokenizer.json + tokenizer_config.json) and chat template.
 *
 * Encoding and decoding go through @huggingface/tokenizers (pure JavaScript, no network, no native
 * code), which reproduces the Rust `tokenizers` library; test/hf_tokenizer.test.ts checks the ids
 * against ones recorded with Hugging Face's own implementation. Chat templates are rendered by
 * @huggingface/jinja with transformers' settings (trim_blocks, lstrip_blocks, raise_exception,
 * strftime_now). The template comes from chat_template.jinja (the transformers 5 layout) or from
 * tokenizer_config.json's `chat_template` (older checkpoints).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string | readonly unknown[] | null;
  [key: string]: unknown;
}

export interface RenderOptions {
  /** Append the header of an assistant turn, so generation continues as the assistant. */
  addGenerationPrompt?: boolean;
  tools?: readonly unknown[];
  /** Further template variables (e.g. `enable_thinking` for Qwen3). */
  extra?: Record<string, unknown>;
}

export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (BOS/EOS templates). Default true, as transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';

type Json = Record<string, unknown>;

export class HfTokenizer {
  /** The folder it was loaded from. */
  readonly dir: string;
  /** Vocabulary size including added tokens (ids are 0 .. size-1). */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Ids of the added tokens marked special (skipped by decode with skipSpecialTokens). */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Where the chat template came from, or null when there is none. */
  readonly chatTemplateSource: string | null;
  private readonly tok: Tokenizer;
  private readonly template: Template | null;

  private constructor(dir: string, tokenizerJson: Json, config: Json, template: { text: string; source: string } | null) {
    this.dir = dir;
    // transformers 5 does not clean up tokenization spaces unless the config asks; the library would.
    const cfg = { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false };
    try {
      this.tok = new Tokenizer(tokenizerJson, cfg);
    } catch (e) {
      throw new Error(`${join(dir, TOKENIZER_FILE)}: cannot build the tokenizer (${(e as Error).message})`);
    }
    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const special = new Set<number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) special.add(id);
    this.specialTokenIds = special;

    const cfgFile = join(dir, TOKENIZER_CONFIG_FILE);
    const named = (key: string): [string | null, number | null] => {
      const v = config[key];
      if (v === undefined || v === null) return [null, null];
      const text = typeof v === 'string' ? v : typeof v === 'object' && typeof (v as Json).content === 'string' ? ((v as Json).content as string) : null;
      if (text === null) throw new Error(`${cfgFile}: field '${key}' must be a string or {content: string}`);
      const id = this.tok.token_to_id(text);
      if (id === undefined) throw new Error(`${cfgFile}: ${key} '${text}' is not a token of ${join(dir, TOKENIZER_FILE)}`);
      return [text, id];
    };
    [this.bosToken, this.bosTokenId] = named('bos_token');
    [this.eosToken, this.eosTokenId] = named('eos_token');
    [this.padToken, this.padTokenId] = named('pad_token');
    [this.unkToken] = named('unk_token');

    this.chatTemplateSource = template?.source ?? null;
    if (template) {
      try {
        this.template = new Template(template.text);
      } catch (e) {
        throw new Error(`${template.source}: chat template does not parse (${(e as Error).message})`);
      }
    } else {
      this.template = null;
    }
  }

  /**
   * Loads `dir/tokenizer.json`, `dir/tokenizer_config.json` (optional) and the chat template
   * (`dir/chat_template.jinja`, else tokenizer_config.json's `chat_template`; optional).
   */
  static fromDir(dir: string): HfTokenizer {
    const tjFile = join(dir, TOKENIZER_FILE);
    if (!existsSync(tjFile)) throw new Error(`${dir}: no ${TOKENIZER_FILE} in this folder (expected ${tjFile})`);
    const tokenizerJson = readJson(tjFile);
    const cfgFile = join(dir, TOKENIZER_CONFIG_FILE);
    const config = existsSync(cfgFile) ? readJson(cfgFile) : {};
    let template: { text: string; source: string } | null = null;
    const jinja = join(dir, CHAT_TEMPLATE_FILE);
    if (existsSync(jinja)) {
      template = { text: readFileSync(jinja, 'utf8'), source: jinja };
    } else if (config.chat_template !== undefined && config.chat_template !== null) {
      template = { text: pickTemplate(config.chat_template, cfgFile), source: `${cfgFile} (chat_template)` };
    }
    return new HfTokenizer(dir, tokenizerJson, config, template);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`decode: token id ${id} is outside the vocabulary of ${this.vocabSize} (${join(this.dir, TOKENIZER_FILE)})`);
      }
    }
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** The token strings of an encoding (byte-level BPE: 'Ġ' stands for a space). */
  tokenize(text: string): string[] {
    return this.tok.encode(text, { add_special_tokens: false }).tokens;
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Renders a conversation with the checkpoint's chat template, as transformers' apply_chat_template(tokenize=False). */
  renderChat(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    if (!this.template) {
      throw new Error(
        `${this.dir}: no chat template (looked for ${CHAT_TEMPLATE_FILE} and 'chat_template' in ${TOKENIZER_CONFIG_FILE})`,
      );
    }
    const vars: Record<string, unknown> = {
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      pad_token: this.padToken ?? '',
      unk_token: this.unkToken ?? '',
      ...(options.tools ? { tools: options.tools } : {}),
      ...options.extra,
    };
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new Error(`${this.chatTemplateSource}: rendering the chat template failed: ${(e as Error).message}`);
    }
  }

  /**
   * Renders and encodes a conversation. Special tokens are not added again: the template writes them,
   * as transformers' apply_chat_template(tokenize=True) does.
   */
  encodeChat(messages: readonly ChatMessage[], options: RenderOptions = {}): number[] {
    return this.encode(this.renderChat(messages, options), { addSpecialTokens: false });
  }
}

export function loadTokenizer(dir: string): HfTokenizer {
  return HfTokenizer.fromDir(dir);
}

function readJson(file: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: expected a JSON object`);
  return v as Json;
}

/** `chat_template` is a string, or a list of {name, template} of which 'default' is used. */
function pickTemplate(v: unknown, file: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const d = v.find((t) => t && typeof t === 'object' && (t as Json).name === 'default');
    if (d && typeof (d as Json).template === 'string') return (d as Json).template as string;
    throw new Error(`${file}: 'chat_template' is a list without a 'default' entry`);
  }
  throw new Error(`${file}: 'chat_template' must be a string or a list of {name, template}`);
}
