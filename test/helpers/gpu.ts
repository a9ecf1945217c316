/**
 * GPU test gating: GPU tests skip where no CUDA device is usable, except under `npm run test:gpu`
 * (AERIE_REQUIRE_GPU=1), where a missing GPU is a failure rather than a silent skip.
 */
import { cudaDeviceCount, cudaUnavailableReason } from '../../src/runtime/cuda.js';

export const gpuCount = cudaDeviceCount();
export const hasGpu = gpuCount > 0;

if (!hasGpu && process.env.AERIE_REQUIRE_GPU === '1') {
  throw new Error(`AERIE_REQUIRE_GPU=1 but no CUDA device is usable: ${cudaUnavailableReason()}`);
}
