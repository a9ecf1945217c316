import { defineConfig } from 'vitest/config';

// Two projects: `cpu` (everything that needs no GPU; GPU-only files skip themselves there too) and
// `gpu` (*.gpu.test.ts, run on the GPU machine by `npm run test:gpu`).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'cpu',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.gpu.test.ts'],
          pool: 'forks',
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'gpu',
          include: ['test/**/*.gpu.test.ts'],
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 600_000,
        },
      },
    ],
  },
});
