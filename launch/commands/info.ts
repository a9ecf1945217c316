/** `spec-launch info`: what this installation can run on (addon, CPU threads, CUDA devices, libraries). */
import type { Command } from 'commander';
import { native } from '../../src/runtime/binding.js';
import { cudaDeviceCount, cudaUnavailableReason, deviceName, memoryInfo } from '../../src/runtime/cuda.js';

export interface RuntimeInfo {
  builtWithCuda: boolean;
  cpuThreads: number;
  kernelFamilies: string[];
  cuda: { devices: { device: string; name: string; totalBytes: number }[]; unavailableReason: string };
}

export function runtimeInfo(): RuntimeInfo {
  const b = native();
  const n = cudaDeviceCount();
  const devices = Array.from({ length: n }, (_, i) => {
    const device = `cuda:${i}` as const;
    return { device, name: deviceName(device), totalBytes: memoryInfo(device).total };
  });
  return {
    builtWithCuda: b.builtWithCuda,
    cpuThreads: b.cpuThreadCount(),
    kernelFamilies: [...b.kernelFamilies].sort(),
    cuda: { devices, unavailableReason: n > 0 ? '' : cudaUnavailableReason() },
  };
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the runtime: native addon build, CPU threads, CUDA devices and kernel families')
    .option('--json', 'print JSON instead of text')
    .action((opts: { json?: boolean }) => {
      const info = runtimeInfo();
      if (opts.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`addon: built ${info.builtWithCuda ? 'with' : 'without'} CUDA kernels`);
      console.log(`cpu: ${info.cpuThreads} threads`);
      if (info.cuda.devices.length === 0) console.log(`cuda: none (${info.cuda.unavailableReason})`);
      for (const d of info.cuda.devices) console.log(`${d.device}: ${d.name}, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB`);
      console.log(`kernel families: ${info.kernelFamilies.join(', ') || '(none)'}`);
    });
}
