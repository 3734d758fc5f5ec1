// `tsd`: the node daemon. `tsd init` (alias `run`) starts a new cluster with this node as its
// manager; `tsd join --token T ADDR` joins an existing one as a worker; both serve until
// SIGTERM/SIGINT. `tsd cleanup` removes what a dead tsd left behind.
import { Command } from 'commander';

import { configFromOptions, withNodeOptions } from './node-options.js';
import { Daemon } from './daemon.js';
import { cleanupNode } from './cleanup.js';
import type { DaemonConfig } from './config.js';
import { takeJoinTokenFromEnvironment } from './identity/join-token-source.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

async function serve(config: DaemonConfig): Promise<void> {
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
    if (daemon.manager && config.join === undefined) {
      // No token is printed: tokens are minted on request and shown once, to root.
      process.stdout.write(
        `To add a node to this cluster, get a token here (tsctl cluster join-token worker > token; chmod 600 token), copy it to the node, and run there:\n` +
          `  tsd join --token-file token ${daemon.manager.dispatcherAddress()}\n`,
      );
    }
  } catch (err) {
    log(`tsd failed to start: ${(err as Error).message}`);
    await daemon.stop();
    process.exit(1);
  }
}

takeJoinTokenFromEnvironment();

const program = new Command('tsd').description('Tessera node daemon (manager and agent)');

for (const name of ['init', 'run']) {
  withNodeOptions(program.command(name).description(name === 'init' ? 'create a cluster with this node as its manager, and serve' : 'same as init')).action(
    (options: Record<string, unknown>) => serve(configFromOptions(options)),
  );
}

withNodeOptions(program.command('join').description('join a cluster as a worker, and serve'))
  .argument('<manager>', "a manager's address, host:port")
  .action((manager: string, options: Record<string, unknown>) => {
    // The token is needed only on the first start (the node has no certificate yet); it is read then.
    return serve(configFromOptions({ ...options, join: manager }));
  });

withNodeOptions(program.command('cleanup').description('remove containers, mounts, cgroups, links and rules a stopped tsd left')).action(
  async (options: Record<string, unknown>) => {
    const removed = await cleanupNode(configFromOptions(options), log);
    log(`cleanup done (${removed} container(s) removed)`);
  },
);

program.parseAsync(process.argv).catch((err: Error) => {
  log(err.message);
  process.exit(1);
});
