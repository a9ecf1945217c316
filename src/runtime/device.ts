/** Where a tensor lives: the CPU (the reference and the embedded default) or one CUDA device. */
export type Device = 'cpu' | `cuda:${number}`;

/** The native ordinal: -1 for the CPU, N for cuda:N. */
export function deviceIndex(device: Device): number {
  if (device === 'cpu') return -1;
  return Number(device.slice(5));
}

export function deviceFromIndex(index: number): Device {
  return index < 0 ? 'cpu' : (`cuda:${index}` as Device);
}

export function parseDevice(name: string): Device {
  if (name === 'cpu') return 'cpu';
  if (name === 'cuda') return 'cuda:0';
  const m = /^cuda:(\d+)$/.exec(name);
  if (!m) throw new TypeError(`unknown device '${name}': use 'cpu', 'cuda' or 'cuda:N'`);
  return `cuda:${Number(m[1])}` as Device;
}

export function isCuda(device: Device): boolean {
  return device !== 'cpu';
}
