/** CUDA device management above the addon: availability, memory statistics, streams, events, graphs. */
import { native, type AllocatorStats, type EventHandle, type GraphHandle, type StreamHandle } from './binding.js';
import { type Device, deviceIndex } from './device.js';

export function cudaDeviceCount(): number {
  return native().cudaDeviceCount();
}

export function cudaAvailable(): boolean {
  return cudaDeviceCount() > 0;
}

/** Why no CUDA device is usable ('' when one is). */
export function cudaUnavailableReason(): string {
  return native().cudaUnavailableReason();
}

function cudaIndex(device: Device, op: string): number {
  const i = deviceIndex(device);
  if (i < 0) throw new TypeError(`${op}: needs a CUDA device, got '${device}'`);
  return i;
}

export function synchronize(device: Device): void {
  if (device !== 'cpu') native().synchronize(cudaIndex(device, 'synchronize'));
}

/**
 * Runs fn with the CUDA profiler recording (cudaProfilerStart/Stop): with `ncu --profile-from-start
 * off` only the kernels fn launches are profiled.
 */
export function profilerRange<T>(device: Device, fn: () => T): T {
  const i = cudaIndex(device, 'profilerRange');
  native().setProfilerActive(i, true);
  try {
    return fn();
  } finally {
    native().setProfilerActive(i, false);
  }
}

/** The caching allocator's statistics: bytes in use, peak, reserved. */
export function memoryStats(device: Device): AllocatorStats {
  return native().allocatorStats(cudaIndex(device, 'memoryStats'));
}

export function resetPeakMemory(device: Device): void {
  native().resetPeakStats(cudaIndex(device, 'resetPeakMemory'));
}

export function emptyCache(device: Device): void {
  native().emptyCache(cudaIndex(device, 'emptyCache'));
}

export function memoryInfo(device: Device): { free: number; total: number } {
  return native().memoryInfo(cudaIndex(device, 'memoryInfo'));
}

export function deviceName(device: Device): string {
  return native().deviceName(cudaIndex(device, 'deviceName'));
}

export class Stream {
  readonly handle: StreamHandle;
  constructor(readonly device: Device) {
    this.handle = native().createStream(cudaIndex(device, 'Stream'));
  }
  synchronize(): void {
    native().synchronize(deviceIndex(this.device), this.handle);
  }
  destroy(): void {
    native().destroyStream(this.handle);
  }
  /** Runs fn with this stream as the device's current stream (kernels launch on it). */
  run<T>(fn: () => T): T {
    const b = native();
    b.setCurrentStream(deviceIndex(this.device), this.handle);
    try {
      return fn();
    } finally {
      b.setCurrentStream(deviceIndex(this.device));
    }
  }
}

export class CudaEvent {
  readonly handle: EventHandle;
  constructor(readonly device: Device, timing = true) {
    this.handle = native().createEvent(cudaIndex(device, 'CudaEvent'), timing);
  }
  /** Records on `stream`, or the device's current stream. */
  record(stream?: Stream): void {
    native().recordEvent(this.handle, stream?.handle);
  }
  /** Makes `stream` (or the current stream) wait for this event. */
  wait(stream?: Stream): void {
    native().waitEvent(this.handle, stream?.handle);
  }
  synchronize(): void {
    native().synchronizeEvent(this.handle);
  }
  elapsedMsSince(start: CudaEvent): number {
    return native().elapsedMs(start.handle, this.handle);
  }
  destroy(): void {
    native().destroyEvent(this.handle);
  }
}

/**
 * A captured, fixed-shape step replayed as one CUDA graph. `capture` runs fn once under stream
 * capture (nothing executes); run fn once before capturing so the allocator's cache is warm. Tensors
 * fn allocates and frees during capture stay reserved for the graph until `destroy()`; inputs and
 * outputs are tensors allocated outside, which replays read and write in place.
 */
export class CudaGraph {
  private constructor(readonly device: Device, private handle: GraphHandle | null) {}

  static capture(device: Device, fn: () => void): CudaGraph {
    const b = native();
    const index = cudaIndex(device, 'CudaGraph.capture');
    b.beginCapture(index);
    try {
      fn();
    } catch (e) {
      try {
        b.destroyGraph(b.endCapture(index));
      } catch {
        /* the capture itself failed: nothing to destroy */
      }
      throw e;
    }
    return new CudaGraph(device, b.endCapture(index));
  }

  replay(): void {
    if (!this.handle) throw new Error('CudaGraph.replay: the graph was destroyed');
    native().replayGraph(this.handle);
  }

  destroy(): void {
    if (this.handle) native().destroyGraph(this.handle);
    this.handle = null;
  }
}
