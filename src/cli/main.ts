#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { runDemo } from '../demo/demo.js';
import { registerOperate } from './commands/operate.js';
import { registerSend } from './commands/send.js';
import { registerStart } from './commands/start.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const program = new Command()
  .name('steadfast')
  .description(
    'Reliable event processing: durable ingest, retries, per-key ordering and a dead-letter queue.',
  )
  .version(version());

registerStart(program);
registerSend(program);
registerOperate(program);

program
  .command('demo')
  .description(
    'add a few events through the library and show how each was delivered, retried or dead-lettered',
  )
  .option('--data-dir <dir>', 'folder of the SQLite store', process.env.STEADFAST_DATA_DIR ?? './data')
  .action(async (opts: { dataDir: string }) => {
    await runDemo({ dataDir: opts.dataDir });
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
