/**
 * spec-launch: the Aerie command line. Each subcommand lives in its own module under launch/commands
 * and registers itself here; `spec-launch --help` lists exactly the commands that exist.
 */
import { Command, CommanderError } from 'commander';
import { registerForward } from './commands/forward.js';
import { registerGenerate } from './commands/generate.js';
import { registerInfo } from './commands/info.js';

export function buildProgram(): Command {
  const program = new Command('spec-launch')
    .description('Aerie: train and serve EAGLE-3 speculative-decoding draft models (datagen, training, export, serving).')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerGenerate(program);
  registerForward(program);
  registerInfo(program);
  return program;
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    console.error(`spec-launch: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
