// `tsd`: the node daemon. `tsd run` serves until SIGTERM/SIGINT; `tsd cleanup` removes what a
// dead tsd left behind.
import { Command } from 'commander';

import { configFromOptions, withNodeOptions } from './node-options.js';
import { Daemon } from './daemon.js';
import { cleanupNode } from './cleanup.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

const program = new Command('tsd').description('Tessera node daemon (manager and agent)');

withNodeOptions(program.command('run').description('run the daemon in the foreground')).action(async (options: Record<string, unknown>) => {
  const config = configFromOptions(options);
  const daemon = new Daemon(config, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping containers and removing the node's set-up`);
    daemon
      .stop()
      .then(() => process.exit(0))
      .catch((err: Error) => {
        log(`shutdown failed: ${err.message}`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await daemon.start();
  } catch (err) {
    log(`tsd failed to start: ${(err as Error).message}`);
    await daemon.stop();
    process.exit(1);
  }
});

withNodeOptions(program.command('cleanup').description('remove containers, mounts, cgroups, links and rules a stopped tsd left'))
  .action(async (options: Record<string, unknown>) => {
    const removed = await cleanupNode(configFromOptions(options), log);
    log(`cleanup done (${removed} container(s) removed)`);
  });

program.parseAsync(process.argv).catch((err: Error) => {
  log(err.message);
  process.exit(1);
});
