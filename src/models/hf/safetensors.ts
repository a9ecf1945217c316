/**
 * safetensors checkpoints: one `model.safetensors`, or shards listed by `model.safetensors.index.json`.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON (`name -> {dtype, shape,
 * data_offsets: [begin, end]}` with offsets relative to the data section, plus an optional
 * `__metadata__` of strings), then the data section. Headers are validated strictly (bounds,
 * dtypes, sizes, overlaps) and every error names the file and the problem. Tensors are read with
 * bounded host memory: the bytes of one tensor, at most CHUNK_BYTES at a time, go straight into the
 * tensor's storage (CPU or CUDA), converted to another dtype on the way when asked.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import {
  DTYPE_BYTES,
  type DType,
  bf16BitsToFloat,
  f16BitsToFloat,
  floatToBf16Bits,
  floatToF16Bits,
  isFloating,
} from '../../runtime/dtype.js';
import type { Device } from '../../runtime/device.js';
import { Tensor, numelOf, shapeString, type Shape } from '../../runtime/tensor.js';

/** safetensors dtype names Aerie reads, and the runtime dtype each becomes. */
export const SAFETENSORS_DTYPES = {
  F32: 'float32',
  BF16: 'bfloat16',
  F16: 'float16',
  I32: 'int32',
  I64: 'int64',
  U8: 'uint8',
  BOOL: 'bool',
} as const satisfies Record<string, DType>;
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPES;

/** dtypes of the format that Aerie does not read (yet): named as unsupported rather than unknown. */
const UNSUPPORTED_DTYPES = new Set(['F64', 'I8', 'I16', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64']);

/** Headers larger than this are refused (a corrupt length, or not a safetensors file). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Largest host buffer used while reading one tensor. */
export const CHUNK_BYTES = 64 * 1024 * 1024;

export function safetensorsDTypeOf(dtype: DType): SafetensorsDType {
  for (const [k, v] of Object.entries(SAFETENSORS_DTYPES)) if (v === dtype) return k as SafetensorsDType;
  throw new TypeError(`no safetensors dtype for ${dtype}`);
}

export interface TensorInfo {
  name: string;
  /** Runtime dtype of the stored values. */
  dtype: DType;
  /** The dtype as the file names it. */
  fileDtype: SafetensorsDType;
  shape: number[];
  /** The .safetensors file holding it. */
  file: string;
  /** Absolute byte offset of its first byte in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileBytes: number;
  /** N, the JSON header's length. */
  headerBytes: number;
  /** 8 + N: where the data section begins. */
  dataStart: number;
  metadata: Record<string, string> | null;
  /** In the order of their data offsets. */
  tensors: Map<string, TensorInfo>;
}

/** Reads and validates the header of one .safetensors file (reads only the header bytes). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  if (!existsSync(file)) throw new Error(`${file}: file not found`);
  const fd = openSync(file, 'r');
  try {
    return readHeaderFd(fd, file);
  } finally {
    closeSync(fd);
  }
}

function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const fileBytes = fstatSync(fd).size;
  if (fileBytes < 8) {
    throw new Error(`${file}: not a safetensors file: ${fileBytes} bytes, shorter than the 8-byte header length`);
  }
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, file);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte bound (corrupt, or not a safetensors file)`);
  }
  const headerBytes = Number(n);
  if (8 + headerBytes > fileBytes) {
    throw new Error(`${file}: header length ${headerBytes} runs past the end of the file (${fileBytes} bytes): the file is truncated or corrupt`);
  }
  const hbuf = Buffer.alloc(headerBytes);
  readFully(fd, hbuf, 8, file);
  return parseHeader(file, hbuf, fileBytes);
}

function parseHeader(file: string, hbuf: Buffer, fileBytes: number): SafetensorsHeader {
  const headerBytes = hbuf.length;
  const dataStart = 8 + headerBytes;
  const dataBytes = fileBytes - dataStart;
  let json: unknown;
  try {
    json = JSON.parse(hbuf.toString('utf8'));
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${file}: header must be a JSON object of tensors`);
  }
  let metadata: Record<string, string> | null = null;
  const entries: TensorInfo[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
        throw new Error(`${file}: '__metadata__' must be an object of strings`);
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const what = `${file}: tensor '${name}'`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: entry must be an object with dtype, shape and data_offsets`);
    const e = v as Record<string, unknown>;
    if (typeof e.dtype !== 'string') throw new Error(`${what}: missing or non-string 'dtype'`);
    if (!(e.dtype in SAFETENSORS_DTYPES)) {
      const supported = Object.keys(SAFETENSORS_DTYPES).join(', ');
      if (UNSUPPORTED_DTYPES.has(e.dtype)) throw new Error(`${what}: dtype ${e.dtype} is not supported (supported: ${supported})`);
      throw new Error(`${what}: unknown dtype '${e.dtype}' (supported: ${supported})`);
    }
    const fileDtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new Error(`${what}: 'shape' must be a list of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new Error(`${what}: 'data_offsets' must be [begin, end] of non-negative integers, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) throw new Error(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) {
      throw new Error(`${what}: data_offsets [${begin}, ${end}] run past the data section (${dataBytes} bytes after the header)`);
    }
    const shape = e.shape as number[];
    const dtype = SAFETENSORS_DTYPES[fileDtype];
    const need = numelOf(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== need) {
      throw new Error(`${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${fileDtype}${shapeString(shape)} needs ${need}`);
    }
    entries.push({ name, dtype, fileDtype, shape, file, offset: dataStart + begin, byteLength: end - begin });
  }
  entries.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  // As the reference implementation validates: tensors tile the data section exactly, each starting
  // where the previous ended and the last ending at the end of the file (no overlaps, gaps or tail;
  // empty tensors, which hold no bytes, may point anywhere inside it).
  const r = (x: TensorInfo) => `[${x.offset - dataStart}, ${x.offset - dataStart + x.byteLength})`;
  let prev: TensorInfo | null = null;
  let expected = 0;
  for (const t of entries) {
    if (t.byteLength === 0) continue; // an empty tensor holds no bytes wherever it points
    const begin = t.offset - dataStart;
    if (prev && begin < expected) {
      throw new Error(`${file}: tensors '${prev.name}' ${r(prev)} and '${t.name}' ${r(t)} overlap`);
    }
    if (begin > expected) {
      throw new Error(`${file}: ${begin - expected} unused bytes before tensor '${t.name}' ${r(t)} (a gap in the data section)`);
    }
    expected = begin + t.byteLength;
    prev = t;
  }
  if (expected !== dataBytes) {
    throw new Error(`${file}: ${dataBytes - expected} bytes after the last tensor: the data section is ${dataBytes} bytes, the tensors cover ${expected}`);
  }
  return { file, fileBytes, headerBytes, dataStart, metadata, tensors: new Map(entries.map((t) => [t.name, t])) };
}

function readFully(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file at byte ${position + done} (the file changed or is truncated)`);
    done += n;
  }
}

export interface LoadOptions {
  /** Convert to this dtype (floats among themselves, int32/int64, uint8/bool); default: as stored. */
  dtype?: DType;
  device?: Device;
  /** Largest host buffer per read (default CHUNK_BYTES); smaller values are for tests. */
  chunkBytes?: number;
}

export interface Checkpoint {
  /** The directory (or single file) opened. */
  readonly path: string;
  /** The .safetensors files, in shard order. */
  readonly files: readonly string[];
  /** Tensor names, sorted. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The stored bytes of one tensor (host memory of that tensor's size). */
  readBytes(name: string): Buffer;
  /** One tensor, streamed into a new tensor on `device` in chunks of at most CHUNK_BYTES. */
  load(name: string, options?: LoadOptions): Tensor;
  close(): void;
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/**
 * Opens a checkpoint: a directory with model.safetensors.index.json (sharded) or model.safetensors,
 * or one .safetensors file. All headers are read and validated now; tensor bytes when loaded.
 */
export function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) throw new Error(`${path}: no such checkpoint file or directory`);
  if (statSync(path).isFile()) return new SafetensorsCheckpoint(path, [readSafetensorsHeader(path)]);
  const index = join(path, INDEX_FILE);
  if (existsSync(index)) return new SafetensorsCheckpoint(path, readSharded(path, index));
  const single = join(path, SINGLE_FILE);
  if (existsSync(single)) return new SafetensorsCheckpoint(path, [readSafetensorsHeader(single)]);
  throw new Error(`${path}: no ${SINGLE_FILE} or ${INDEX_FILE} in this directory`);
}

function readSharded(dir: string, index: string): SafetensorsHeader[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileUtf8(index));
  } catch (e) {
    throw new Error(`${index}: not valid JSON (${(e as Error).message})`);
  }
  const wm = (json as Record<string, unknown> | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new Error(`${index}: missing 'weight_map' object`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || shard !== basename(shard) || shard === '..' || shard.includes('\\')) {
      throw new Error(`${index}: weight_map entry '${name}' must name a file in the same directory, got ${JSON.stringify(shard)}`);
    }
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  if (byShard.size === 0) throw new Error(`${index}: 'weight_map' is empty`);
  const shards = [...byShard.keys()].sort();
  const missing = shards.filter((s) => !existsSync(join(dir, s)));
  if (missing.length) {
    throw new Error(
      `${index}: shard file${missing.length > 1 ? 's' : ''} missing from ${dir}: ` +
        missing.map((s) => `${s} (${byShard.get(s)!.length} tensors)`).join(', '),
    );
  }
  const headers = shards.map((s) => readSafetensorsHeader(join(dir, s)));
  const problems: string[] = [];
  for (const h of headers) {
    const mapped = new Set(byShard.get(basename(h.file))!);
    const absent = [...mapped].filter((n) => !h.tensors.has(n));
    if (absent.length) problems.push(`the index puts ${listNames(absent)} in ${basename(h.file)}, which does not hold ${absent.length > 1 ? 'them' : 'it'}`);
    const extra = [...h.tensors.keys()].filter((n) => !mapped.has(n));
    if (extra.length) problems.push(`${basename(h.file)} holds ${listNames(extra)}, which the index does not map to it`);
  }
  if (problems.length) throw new Error(`${index}: index and shards disagree: ${problems.join('; ')}`);
  return headers;
}

function readFileUtf8(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(fstatSync(fd).size);
    readFully(fd, buf, 0, file);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function listNames(names: readonly string[], max = 10): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

class SafetensorsCheckpoint implements Checkpoint {
  readonly files: readonly string[];
  private readonly tensors = new Map<string, TensorInfo>();
  private readonly fds = new Map<string, number>();
  private closed = false;

  constructor(
    readonly path: string,
    headers: SafetensorsHeader[],
  ) {
    this.files = headers.map((h) => h.file);
    for (const h of headers) {
      for (const [name, t] of h.tensors) {
        const prev = this.tensors.get(name);
        if (prev) throw new Error(`${path}: tensor '${name}' is in both ${prev.file} and ${t.file}`);
        this.tensors.set(name, t);
      }
    }
  }

  names(): string[] {
    return [...this.tensors.keys()].sort();
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor '${name}' in this checkpoint`);
    return t;
  }

  private fd(file: string): number {
    if (this.closed) throw new Error(`${this.path}: checkpoint is closed`);
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r');
      this.fds.set(file, fd);
    }
    return fd;
  }

  readBytes(name: string): Buffer {
    const t = this.info(name);
    const buf = Buffer.alloc(t.byteLength);
    readFully(this.fd(t.file), buf, t.offset, t.file);
    return buf;
  }

  load(name: string, options: LoadOptions = {}): Tensor {
    const t = this.info(name);
    const to = options.dtype ?? t.dtype;
    const convert = converter(t.dtype, to, `${t.file}: tensor '${name}'`);
    const fd = this.fd(t.file);
    const out = Tensor.empty(t.shape, to, options.device ?? 'cpu');
    try {
      const inSize = DTYPE_BYTES[t.dtype];
      const outSize = DTYPE_BYTES[to];
      const numel = numelOf(t.shape);
      const chunkBytes = Math.min(options.chunkBytes ?? CHUNK_BYTES, CHUNK_BYTES);
      const perChunk = Math.max(1, Math.floor(chunkBytes / Math.max(inSize, outSize)));
      const buf = Buffer.allocUnsafeSlow(Math.min(numel, perChunk) * inSize);
      for (let first = 0; first < numel; first += perChunk) {
        const count = Math.min(perChunk, numel - first);
        const chunk = buf.subarray(0, count * inSize);
        readFully(fd, chunk, t.offset + first * inSize, t.file);
        out.storage.write(convert(chunk), first * outSize);
      }
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.closed = true;
  }
}

type Convert = (bytes: Buffer) => ArrayBufferView;

/** Host conversion of one chunk of `from` values to `to` (bytes are 8-aligned: allocUnsafeSlow). */
function converter(from: DType, to: DType, what: string): Convert {
  if (from === to) return (b) => b;
  const u16 = (b: Buffer) => new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  const f32 = (b: Buffer) => new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  if (isFloating(from) && isFloating(to)) {
    const toF32: (b: Buffer) => Float32Array =
      from === 'float32' ? f32 : from === 'bfloat16' ? (b) => bf16BitsToFloat(u16(b)) : (b) => f16BitsToFloat(u16(b));
    if (to === 'float32') return toF32;
    if (to === 'bfloat16') return (b) => floatToBf16Bits(toF32(b));
    return (b) => floatToF16Bits(toF32(b));
  }
  if (from === 'int32' && to === 'int64') {
    return (b) => BigInt64Array.from(new Int32Array(b.buffer, b.byteOffset, b.length / 4), (v) => BigInt(v));
  }
  if (from === 'int64' && to === 'int32') {
    return (b) => {
      const src = new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) throw new RangeError(`${what}: int64 value ${v} does not fit int32`);
        out[i] = Number(v);
      }
      return out;
    };
  }
  if ((from === 'uint8' && to === 'bool') || (from === 'bool' && to === 'uint8')) return (b) => b;
  throw new TypeError(`${what}: cannot convert ${from} to ${to}`);
}

export interface CheckOptions {
  /** Tensors that may be present (with these shapes) but need not be. */
  optional?: ReadonlyMap<string, Shape>;
  /** When set, every floating tensor expected must be stored in this dtype. */
  dtype?: DType | null;
  /** Names the source of the expectations in messages (default 'config.json'). */
  source?: string;
}

/**
 * Compares a checkpoint with the tensors a config implies. Throws one error listing every missing
 * tensor, every unexpected one, and every shape (and, with `dtype`, dtype) that disagrees.
 */
export function checkAgainstConfig(ckpt: Checkpoint, expected: ReadonlyMap<string, Shape>, options: CheckOptions = {}): void {
  const source = options.source ?? 'config.json';
  const optional = options.optional ?? new Map<string, Shape>();
  const present = new Set(ckpt.names());
  const missing = [...expected.keys()].filter((n) => !present.has(n));
  const unexpected = [...present].filter((n) => !expected.has(n) && !optional.has(n));
  const badShape: string[] = [];
  const badDtype: string[] = [];
  for (const n of present) {
    const want = expected.get(n) ?? optional.get(n);
    if (!want) continue;
    const t = ckpt.info(n);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      badShape.push(`'${n}' is ${shapeString(t.shape)} in ${basename(t.file)} but ${source} implies ${shapeString(want)}`);
    }
    if (options.dtype && expected.has(n) && isFloating(t.dtype) && t.dtype !== options.dtype) {
      badDtype.push(`'${n}' is ${t.fileDtype} in ${basename(t.file)} but ${source} says ${options.dtype}`);
    }
  }
  const parts: string[] = [];
  if (missing.length) parts.push(`missing tensors (${missing.length}): ${listNames(missing, 20)}`);
  if (unexpected.length) parts.push(`unexpected tensors (${unexpected.length}): ${listNames(unexpected, 20)}`);
  if (badShape.length) parts.push(`shapes that disagree (${badShape.length}): ${badShape.slice(0, 20).join('; ')}${badShape.length > 20 ? `; and ${badShape.length - 20} more` : ''}`);
  if (badDtype.length) parts.push(`dtypes that disagree (${badDtype.length}): ${badDtype.slice(0, 20).join('; ')}${badDtype.length > 20 ? `; and ${badDtype.length - 20} more` : ''}`);
  if (parts.length) throw new Error(`${ckpt.path}: checkpoint does not match ${source}:\n  ${parts.join('\n  ')}`);
}

export interface TensorToWrite {
  name: string;
  dtype: DType | SafetensorsDType;
  shape: Shape;
  data: Uint8Array;
}

/**
 * Writes a .safetensors file: to a temporary name in the same directory, flushed, then renamed, so
 * readers never see a partial file. Tensors are laid out in the order given; the header is padded
 * with spaces to a multiple of 8 bytes so the data section is aligned.
 */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`writeSafetensors ${path}: metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const t of tensors) {
    if (!t.name || t.name === '__metadata__') throw new TypeError(`writeSafetensors ${path}: invalid tensor name '${t.name}'`);
    if (Object.hasOwn(header, t.name)) throw new TypeError(`writeSafetensors ${path}: tensor '${t.name}' given twice`);
    const fileDtype: SafetensorsDType = t.dtype in SAFETENSORS_DTYPES ? (t.dtype as SafetensorsDType) : safetensorsDTypeOf(t.dtype as DType);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(`writeSafetensors ${path}: tensor '${t.name}' has invalid shape ${shapeString(t.shape)}`);
    }
    const need = numelOf(t.shape) * DTYPE_BYTES[SAFETENSORS_DTYPES[fileDtype]];
    if (t.data.byteLength !== need) {
      throw new TypeError(`writeSafetensors ${path}: tensor '${t.name}' has ${t.data.byteLength} bytes but ${fileDtype}${shapeString(t.shape)} needs ${need}`);
    }
    header[t.name] = { dtype: fileDtype, shape: [...t.shape], data_offsets: [offset, offset + need] };
    offset += need;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const hbuf = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbuf.length));
  writeFileAtomic(path, [len, hbuf, ...tensors.map((t) => t.data)]);
}

/** Writes `parts` to a temporary file beside `path`, fsyncs it, and renames it over `path`. */
export function writeFileAtomic(path: string, parts: readonly Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'w');
  let open = true;
  try {
    for (const p of parts) {
      let done = 0;
      while (done < p.byteLength) done += writeSync(fd, p, done, p.byteLength - done);
    }
    fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    if (open) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already renamed or removed */
    }
    throw e;
  }
}
