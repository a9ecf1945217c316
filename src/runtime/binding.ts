/**
 * The native surface, declared once. The addon (native/) exports exactly these functions; each
 * kernel family declares its part in ./native/<family>.ts and NativeBinding gathers them. Ops above
 * this file never touch the addon except through `native()`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelFamilies } from './native/index.js';

export type { NativeStorage, StreamHandle, EventHandle, GraphHandle } from './native/storage.js';
import type { NativeStorage, StreamHandle, EventHandle, GraphHandle } from './native/storage.js';

export interface AllocatorStats {
  bytesInUse: number;
  peakBytesInUse: number;
  bytesReserved: number;
  numAllocs: number;
  numCudaMallocs: number;
}

export interface CoreBinding {
  readonly builtWithCuda: boolean;
  readonly kernelFamilies: string[];
  allocate(bytes: number, device: number): NativeStorage;
  cudaDeviceCount(): number;
  cudaUnavailableReason(): string;
  cpuThreadCount(): number;
  /** Opens the library now (normally opened on first use); throws naming the library, dlerror and paths. */
  loadCudaLibrary(name: 'cublasLt' | 'nccl'): boolean;
  deviceName(device: number): string;
  memoryInfo(device: number): { free: number; total: number };
  allocatorStats(device: number): AllocatorStats;
  resetPeakStats(device: number): void;
  emptyCache(device: number): void;
  synchronize(device: number, stream?: StreamHandle): void;
  /** cudaProfilerStart (true) / cudaProfilerStop (false). */
  setProfilerActive(device: number, on: boolean): void;
  createStream(device: number): StreamHandle;
  destroyStream(stream: StreamHandle): void;
  /** `undefined` restores the device's default stream. */
  setCurrentStream(device: number, stream?: StreamHandle): void;
  createEvent(device: number, timing?: boolean): EventHandle;
  destroyEvent(event: EventHandle): void;
  recordEvent(event: EventHandle, stream?: StreamHandle): void;
  waitEvent(event: EventHandle, stream?: StreamHandle): void;
  synchronizeEvent(event: EventHandle): void;
  elapsedMs(start: EventHandle, end: EventHandle): number;
  beginCapture(device: number): void;
  endCapture(device: number): GraphHandle;
  replayGraph(graph: GraphHandle): void;
  destroyGraph(graph: GraphHandle): void;
}

export interface NativeBinding extends CoreBinding, KernelFamilies {}

const here = dirname(fileURLToPath(import.meta.url));

/** Where the addon may be: AERIE_ADDON, else build/native/Release under the package root. */
function addonCandidates(): string[] {
  const out: string[] = [];
  if (process.env.AERIE_ADDON) out.push(resolve(process.env.AERIE_ADDON));
  // here is src/runtime (vitest) or dist/src/runtime (compiled)
  for (const up of ['../..', '../../..']) out.push(join(here, up, 'build/native/Release/aerie.node'));
  return out;
}

let cached: NativeBinding | undefined;

/** The loaded addon; throws an actionable error naming the rebuild command when it is missing. */
export function native(): NativeBinding {
  if (cached) return cached;
  const candidates = addonCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `the Aerie native addon is not built (looked for ${candidates.join(', ')}). ` +
        'Run `npm ci` (which builds it) or `npm run build:native`.',
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeBinding;
  return cached;
}
