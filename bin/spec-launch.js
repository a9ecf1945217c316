#!/usr/bin/env node
// Entry point of the `spec-launch` command: runs the compiled CLI (npm ci and npm run build:ts
// compile launch/ into dist/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist/launch/cli.js');
if (!existsSync(cli)) {
  console.error(`spec-launch: ${cli} is missing; run \`npm ci\` or \`npm run build:ts\` in ${root}`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(cli).href);
process.exitCode = await main(process.argv);
