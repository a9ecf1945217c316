import { describe, expect, it } from 'vitest';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MAX_HEADER_BYTES,
  checkAgainstConfig,
  openCheckpoint,
  readSafetensorsHeader,
  writeSafetensors,
  type TensorToWrite,
} from '../src/models/hf/safetensors.js';
import { parseModelConfig } from '../src/models/hf/config.js';
import { checkCheckpoint, openHfModel } from '../src/models/hf/index.js';
import { familyOf } from '../src/models/hf/config.js';
import { floatToBf16Bits, floatToF16Bits } from '../src/runtime/dtype.js';
import { tidy } from '../src/runtime/scope.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const models = [join(root, '../shared/models'), join(root, 'shared/models')].find((p) => existsSync(p));
const withModels = models ? it : it.skip;
if (!models) console.warn('hf_safetensors: ../shared/models is absent; the stand-in checkpoint tests are skipped');

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'aerie-hf-st-'));
}

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A file with a hand-written header (any JSON text) and `data` bytes after it. */
function rawFile(dir: string, header: unknown, data: Uint8Array = new Uint8Array(0), name = 'model.safetensors'): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

describe('safetensors headers: strict validation', () => {
  it('round-trips every supported dtype through writeSafetensors, with metadata', () => {
    const dir = tempDir();
    const p = join(dir, 'x.safetensors');
    const f32 = new Float32Array([1, -2, 3.5, 4]);
    const tensors: TensorToWrite[] = [
      { name: 'a', dtype: 'float32', shape: [2, 2], data: bytes(f32) },
      { name: 'b', dtype: 'BF16', shape: [4], data: bytes(floatToBf16Bits(f32)) },
      { name: 'c', dtype: 'float16', shape: [1, 4], data: bytes(floatToF16Bits(f32)) },
      { name: 'd', dtype: 'int32', shape: [3], data: bytes(new Int32Array([1, 2, 3])) },
      { name: 'e', dtype: 'I64', shape: [1], data: bytes(new BigInt64Array([5n])) },
      { name: 'f', dtype: 'uint8', shape: [2], data: new Uint8Array([7, 8]) },
      { name: 'g', dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'empty', dtype: 'float32', shape: [0, 3], data: new Uint8Array(0) },
    ];
    writeSafetensors(p, tensors, { format: 'pt' });
    expect(readdirSync(dir)).toEqual(['x.safetensors']); // the temp file was renamed away
    const h = readSafetensorsHeader(p);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect((8 + h.headerBytes) % 8).toBe(0);
    expect([...h.tensors.values()].map((t) => [t.name, t.fileDtype, t.dtype, t.shape])).toEqual([
      ['a', 'F32', 'float32', [2, 2]],
      ['b', 'BF16', 'bfloat16', [4]],
      ['c', 'F16', 'float16', [1, 4]],
      ['d', 'I32', 'int32', [3]],
      ['e', 'I64', 'int64', [1]],
      ['f', 'U8', 'uint8', [2]],
      ['g', 'BOOL', 'bool', [2]],
      ['empty', 'F32', 'float32', [0, 3]],
    ]);
    const ck = openCheckpoint(p);
    expect(new Float32Array(new Uint8Array(ck.readBytes('a')).buffer)).toEqual(f32);
    expect(Array.from(ck.readBytes('g'))).toEqual([1, 0]);
    ck.close();
    expect(() => ck.readBytes('a')).toThrow(/checkpoint is closed/);
  });

  it('writeSafetensors refuses inconsistent input', () => {
    const p = join(tempDir(), 'w.safetensors');
    expect(() => writeSafetensors(p, [{ name: 'a', dtype: 'float32', shape: [3], data: new Uint8Array(8) }])).toThrow(
      /tensor 'a' has 8 bytes but F32\[3\] needs 12/,
    );
    const t = { name: 'a', dtype: 'uint8' as const, shape: [1], data: new Uint8Array(1) };
    expect(() => writeSafetensors(p, [t, t])).toThrow(/tensor 'a' given twice/);
    expect(existsSync(p)).toBe(false);
  });

  it('a file shorter than 8 bytes', () => {
    const dir = tempDir();
    const p = join(dir, 'short.safetensors');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expect(() => readSafetensorsHeader(p)).toThrow(`${p}: not a safetensors file: 3 bytes, shorter than the 8-byte header length`);
  });

  it('a header length beyond the file or the bound', () => {
    const dir = tempDir();
    const p = rawFile(dir, { a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2));
    const whole = readFileSync(p);
    const truncated = join(dir, 'truncated.safetensors');
    writeFileSync(truncated, whole.subarray(0, 30));
    expect(() => readSafetensorsHeader(truncated)).toThrow(/truncated\.safetensors: header length \d+ runs past the end of the file \(30 bytes\)/);
    const huge = join(dir, 'huge.safetensors');
    const len = Buffer.alloc(16);
    len.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES) + 1n);
    writeFileSync(huge, len);
    expect(() => readSafetensorsHeader(huge)).toThrow(/huge\.safetensors: header length 104857601 exceeds the 104857600-byte bound/);
    const absurd = join(dir, 'absurd.safetensors');
    writeFileSync(absurd, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7b]));
    expect(() => readSafetensorsHeader(absurd)).toThrow(/exceeds the 104857600-byte bound/);
  });

  it('a header that is not JSON, or not an object of entries', () => {
    const dir = tempDir();
    expect(() => readSafetensorsHeader(rawFile(dir, '{"a": {"dtype": "F32",'))).toThrow(/model\.safetensors: header is not valid JSON/);
    expect(() => readSafetensorsHeader(rawFile(dir, '[1, 2]'))).toThrow(/header must be a JSON object of tensors/);
    expect(() => readSafetensorsHeader(rawFile(dir, { a: 3 }))).toThrow(/tensor 'a': entry must be an object/);
    expect(() => readSafetensorsHeader(rawFile(dir, { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }))).toThrow(
      /tensor 'a': 'shape' must be a list of non-negative integers/,
    );
    expect(() => readSafetensorsHeader(rawFile(dir, { a: { dtype: 'F32', shape: [1], data_offsets: [0] } }))).toThrow(/'data_offsets' must be \[begin, end\]/);
    expect(() => readSafetensorsHeader(rawFile(dir, { __metadata__: { step: 3 } }))).toThrow(/'__metadata__' must be an object of strings/);
    // __metadata__ alone is a valid (empty) file
    expect(readSafetensorsHeader(rawFile(dir, { __metadata__: { format: 'pt' } })).tensors.size).toBe(0);
  });

  it('unknown and unsupported dtypes', () => {
    const dir = tempDir();
    expect(() => readSafetensorsHeader(rawFile(dir, { w: { dtype: 'Q4_K', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)))).toThrow(
      /tensor 'w': unknown dtype 'Q4_K' \(supported: F32, BF16, F16, I32, I64, U8, BOOL\)/,
    );
    expect(() => readSafetensorsHeader(rawFile(dir, { w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)))).toThrow(
      /tensor 'w': dtype F64 is not supported/,
    );
    expect(() => readSafetensorsHeader(rawFile(dir, { w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)))).toThrow(
      /dtype F8_E4M3 is not supported/,
    );
  });

  it('offsets out of range, reversed, of the wrong size, or overlapping', () => {
    const dir = tempDir();
    const data = new Uint8Array(16);
    expect(() => readSafetensorsHeader(rawFile(dir, { a: { dtype: 'F32', shape: [5], data_offsets: [0, 20] } }, data))).toThrow(
      /tensor 'a': data_offsets \[0, 20\] run past the data section \(16 bytes after the header\)/,
    );
    expect(() => readSafetensorsHeader(rawFile(dir, { a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, data))).toThrow(
      /tensor 'a': data_offsets \[8, 4\] end before they begin/,
    );
    expect(() => readSafetensorsHeader(rawFile(dir, { a: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 4] } }, data))).toThrow(
      /tensor 'a': data_offsets \[0, 4\] hold 4 bytes but BF16\[2, 2\] needs 8/,
    );
    expect(() =>
      readSafetensorsHeader(
        rawFile(dir, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, data),
      ),
    ).toThrow(/tensors 'a' \[0, 8\) and 'b' \[4, 12\) overlap/);
    // a gap between tensors, and bytes after the last one, are rejected as the reference implementation does
    expect(() =>
      readSafetensorsHeader(
        rawFile(dir, { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data),
      ),
    ).toThrow(/4 unused bytes before tensor 'b' \[8, 16\) \(a gap in the data section\)/);
    expect(() =>
      readSafetensorsHeader(rawFile(dir, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data)),
    ).toThrow(/8 bytes after the last tensor: the data section is 16 bytes, the tensors cover 8/);
    // adjacent and empty tensors do not overlap
    const ok = readSafetensorsHeader(
      rawFile(dir, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data),
    );
    expect(ok.tensors.size).toBe(3);
  });

  it('a missing file or checkpoint', () => {
    const dir = tempDir();
    expect(() => openCheckpoint(join(dir, 'nope'))).toThrow(/nope: no such checkpoint file or directory/);
    expect(() => openCheckpoint(dir)).toThrow(`${dir}: no model.safetensors or model.safetensors.index.json in this directory`);
  });
});

/** Writes a two-shard checkpoint with its index; returns the directory. */
function shardedDir(index?: Record<string, string>): string {
  const dir = tempDir();
  const t = (name: string, v: number): TensorToWrite => ({ name, dtype: 'float32', shape: [2], data: bytes(new Float32Array([v, v + 1])) });
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [t('a', 1), t('b', 3)]);
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [t('c', 5)]);
  const weight_map = index ?? { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 24 }, weight_map }));
  return dir;
}

describe('sharded checkpoints', () => {
  it('opens the shards the index lists', () => {
    const ck = openCheckpoint(shardedDir());
    expect(ck.names()).toEqual(['a', 'b', 'c']);
    expect(ck.files.map((f) => f.split('/').pop())).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ck.info('c').file).toMatch(/model-00002-of-00002\.safetensors$/);
    expect(new Float32Array(new Uint8Array(ck.readBytes('c')).buffer)).toEqual(new Float32Array([5, 6]));
    expect(() => ck.info('d')).toThrow(/no tensor 'd' in this checkpoint/);
    ck.close();
  });

  it('a missing shard, a tensor not where the index says, a tensor the index does not list', () => {
    const s1 = 'model-00001-of-00002.safetensors';
    const s2 = 'model-00002-of-00002.safetensors';
    expect(() => openCheckpoint(shardedDir({ a: s1, b: s1, c: s2, d: 'model-00003-of-00003.safetensors' }))).toThrow(
      /model\.safetensors\.index\.json: shard file missing from .*: model-00003-of-00003\.safetensors \(1 tensors\)/,
    );
    expect(() => openCheckpoint(shardedDir({ a: s1, b: s2, c: s2 }))).toThrow(
      /index and shards disagree: .*model-00001-of-00002\.safetensors holds 'b', which the index does not map to it; the index puts 'b' in model-00002-of-00002\.safetensors, which does not hold it/,
    );
    expect(() => openCheckpoint(shardedDir({ a: s1, c: s2 }))).toThrow(/holds 'b', which the index does not map to it/);
    expect(() => openCheckpoint(shardedDir({ a: '../model.safetensors' }))).toThrow(/weight_map entry 'a' must name a file in the same directory/);
    const dir = shardedDir();
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": 3}');
    expect(() => openCheckpoint(dir)).toThrow(/index\.json: missing 'weight_map' object/);
  });
});

/** A tiny Llama: hidden 8, intermediate 16, 1 layer, 2 heads / 1 kv head (head_dim 4), vocab 10. */
const tinyLlama = () =>
  parseModelConfig(
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      vocab_size: 10,
      tie_word_embeddings: false,
      dtype: 'bfloat16',
    },
    'tiny/config.json',
  );

function writeModel(shapes: Map<string, number[]>, dtypeOf: (name: string) => 'BF16' | 'F32' = () => 'BF16'): string {
  const dir = tempDir();
  const tensors: TensorToWrite[] = [...shapes].map(([name, shape]) => {
    const dtype = dtypeOf(name);
    const n = shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
    return { name, dtype, shape, data: new Uint8Array(n) };
  });
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe('checkAgainstConfig', () => {
  const cfg = tinyLlama();
  const expected = familyOf(cfg).expectedTensors(cfg);

  it('the family lists the Llama tensors', () => {
    expect(expected.get('model.layers.0.self_attn.k_proj.weight')).toEqual([4, 8]);
    expect(expected.get('model.layers.0.mlp.down_proj.weight')).toEqual([8, 16]);
    expect(expected.get('lm_head.weight')).toEqual([10, 8]);
    expect(expected.size).toBe(12);
    checkCheckpoint(openCheckpoint(writeModel(expected)), cfg, { checkDtype: true });
  });

  it('names missing and unexpected tensors', () => {
    const shapes = new Map(expected);
    shapes.delete('model.layers.0.mlp.up_proj.weight');
    shapes.set('model.layers.0.self_attn.rotary_emb.inv_freq', [2]);
    const ck = openCheckpoint(writeModel(shapes));
    expect(() => checkCheckpoint(ck, cfg)).toThrow(
      /checkpoint does not match tiny\/config\.json:\n {2}missing tensors \(1\): 'model\.layers\.0\.mlp\.up_proj\.weight'\n {2}unexpected tensors \(1\): 'model\.layers\.0\.self_attn\.rotary_emb\.inv_freq'/,
    );
  });

  it('names a shape or dtype that disagrees with config.json', () => {
    const shapes = new Map(expected);
    shapes.set('model.embed_tokens.weight', [12, 8]);
    const dir = writeModel(shapes, (n) => (n === 'model.norm.weight' ? 'F32' : 'BF16'));
    const ck = openCheckpoint(dir);
    expect(() => checkCheckpoint(ck, cfg)).toThrow(
      "shapes that disagree (1): 'model.embed_tokens.weight' is [12, 8] in model.safetensors but tiny/config.json implies [10, 8]",
    );
    shapes.set('model.embed_tokens.weight', [10, 8]);
    const ck2 = openCheckpoint(writeModel(shapes, (n) => (n === 'model.norm.weight' ? 'F32' : 'BF16')));
    checkCheckpoint(ck2, cfg); // dtype is checked only when asked
    expect(() => checkCheckpoint(ck2, cfg, { checkDtype: true })).toThrow(
      "dtypes that disagree (1): 'model.norm.weight' is F32 in model.safetensors but tiny/config.json says bfloat16",
    );
  });

  it('optional tensors (a tied head stored anyway) pass; raw maps work too', () => {
    const tied = parseModelConfig({ ...cfg.topLevel, tie_word_embeddings: true }, 'tied/config.json');
    const fam = familyOf(tied);
    expect(fam.expectedTensors(tied).has('lm_head.weight')).toBe(false);
    const ck = openCheckpoint(writeModel(expected)); // still holds lm_head.weight
    checkCheckpoint(ck, tied);
    expect(() => checkAgainstConfig(ck, fam.expectedTensors(tied), { source: 'x.json' })).toThrow(/unexpected tensors \(1\): 'lm_head\.weight'/);
  });

  withModels('both stand-in checkpoints match their config.json', () => {
    for (const m of ['aerie-tiny', 'aerie-small']) {
      const dir = join(models!, m);
      const cfgM = parseModelConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
      const ck = openCheckpoint(dir);
      checkCheckpoint(ck, cfgM, { checkDtype: true });
      ck.close();
      const all = openHfModel(dir);
      expect(all.checkpoint.names().length).toBe(m === 'aerie-tiny' ? 2 + 9 * 4 : 2 + 11 * 8);
      expect(all.tokenizer.vocabSize).toBe(all.config.vocabSize);
      all.checkpoint.close();
    }
  });
});

/** The native addon (Tensor storage) is needed from here on. */
describe('loading tensors', () => {
  withModels("aerie-tiny's embed_tokens matches a manual parse of the file", () => {
    const file = join(models!, 'aerie-tiny/model.safetensors');
    // manual parse: header length, header JSON, then the raw bf16 bits of a few elements
    const fd = openSync(file, 'r');
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    const hbuf = Buffer.alloc(n);
    readSync(fd, hbuf, 0, n, 8);
    const entry = JSON.parse(hbuf.toString('utf8'))['model.embed_tokens.weight'];
    expect(entry.dtype).toBe('BF16');
    expect(entry.shape).toEqual([8192, 256]);
    const picks = [0, 1, 255, 256, 300_000, 8192 * 256 - 1];
    const manual = picks.map((i) => {
      const b = Buffer.alloc(2);
      readSync(fd, b, 0, 2, 8 + n + entry.data_offsets[0] + 2 * i);
      return new Float32Array(new Uint32Array([b.readUInt16LE(0) << 16]).buffer)[0];
    });
    closeSync(fd);

    const ck = openCheckpoint(join(models!, 'aerie-tiny'));
    expect(ck.info('model.embed_tokens.weight')).toMatchObject({ dtype: 'bfloat16', shape: [8192, 256], file });
    const f32 = ck.load('model.embed_tokens.weight', { dtype: 'float32' });
    expect(f32.describe()).toBe('float32[8192, 256] on cpu');
    const a = f32.toArray() as Float32Array;
    expect(picks.map((i) => a[i])).toEqual(manual);
    expect(manual.every((v) => Number.isFinite(v))).toBe(true);
    expect(new Set(manual).size).toBeGreaterThan(1);
    const raw = ck.load('model.embed_tokens.weight');
    expect(raw.dtype).toBe('bfloat16');
    const r = raw.toArray() as Float32Array;
    expect(picks.map((i) => r[i])).toEqual(manual);
    // a chunked read (many small chunks) gives the same values
    const chunked = ck.load('model.embed_tokens.weight', { dtype: 'float32', chunkBytes: 4096 * 3 + 6 });
    const c = chunked.toArray() as Float32Array;
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (!Object.is(c[i], a[i])) differ++;
    expect(c.length).toBe(a.length);
    expect(differ).toBe(0); // (a loop: toEqual on 2M elements takes seconds)
    f32.dispose();
    raw.dispose();
    chunked.dispose();
    ck.close();
  });

  it('converts dtypes on the way, chunk by chunk', () => {
    const dir = tempDir();
    const vals = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 100);
    writeSafetensors(join(dir, 'model.safetensors'), [
      { name: 'f32', dtype: 'float32', shape: [7, 143], data: bytes(vals) },
      { name: 'f16', dtype: 'float16', shape: [1001], data: bytes(floatToF16Bits(vals)) },
      { name: 'i64', dtype: 'int64', shape: [3], data: bytes(new BigInt64Array([1n, -2n, 3n])) },
      { name: 'big', dtype: 'int64', shape: [1], data: bytes(new BigInt64Array([1n << 40n])) },
      { name: 'u8', dtype: 'uint8', shape: [2], data: new Uint8Array([1, 0]) },
    ]);
    const ck = openCheckpoint(dir);
    tidy(() => {
      for (const chunkBytes of [undefined, 6, 64]) {
        const bf = ck.load('f32', { dtype: 'bfloat16', chunkBytes });
        expect(bf.shape).toEqual([7, 143]);
        expect(bf.toArray()).toEqual(roundThrough(vals, 'bfloat16'));
        const h = ck.load('f16', { dtype: 'float32', chunkBytes });
        expect(h.toArray()).toEqual(roundThrough(vals, 'float16'));
        const hb = ck.load('f16', { dtype: 'bfloat16', chunkBytes });
        expect(hb.toArray()).toEqual(roundThrough(roundThrough(vals, 'float16'), 'bfloat16'));
      }
      expect(ck.load('i64', { dtype: 'int32' }).toNumbers()).toEqual([1, -2, 3]);
      expect(() => ck.load('big', { dtype: 'int32' })).toThrow(/tensor 'big': int64 value 1099511627776 does not fit int32/);
      expect(() => ck.load('f32', { dtype: 'int32' })).toThrow(/tensor 'f32': cannot convert float32 to int32/);
      expect(ck.load('u8', { dtype: 'bool' }).toNumbers()).toEqual([1, 0]);
    });
    ck.close();
  });
});

/** float32 values rounded through a half type, as the runtime's conversions do. */
function roundThrough(vals: Float32Array, dtype: 'bfloat16' | 'float16'): Float32Array {
  const bits = dtype === 'bfloat16' ? floatToBf16Bits(vals) : floatToF16Bits(vals);
  const out = new Float32Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    if (dtype === 'bfloat16') out[i] = new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0];
    else {
      const h = bits[i];
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >>> 10) & 0x1f;
      const m = h & 0x3ff;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}
