/** The runtime: tensors, devices, scopes, CUDA management and ops. */
export * from './dtype.js';
export * from './device.js';
export * from './tensor.js';
export * from './scope.js';
export * from './cuda.js';
export { native } from './binding.js';
