// `tsd`: the node daemon. `tsd init` (alias `run`) starts a new cluster with this node as its
// manager; `tsd join --token T ADDR` joins an existing one as a worker; both serve until
// SIGTERM/SIGINT. `tsd cleanup` removes what a dead tsd left behind.
import { Command } from 'commander';
import { existsSync } from 'node:fs';

import { configFromCommand, withNodeOptions } from './node-options.js';
import { configFileText, DEFAULT_CONFIG_FILE, readConfigFile } from './config-file.js';
import { Daemon } from './daemon.js';
import { cleanupNode } from './cleanup.js';
import { defaultConfig, type DaemonConfig } from './config.js';
import { log } from './log-sink.js';
import { takeJoinTokenFromEnvironment } from './identity/join-token-source.js';
import { unlockKeyNotice } from './autolock-init.js';

async function serve(config: DaemonConfig): Promise<void> {
  const daemon = new Daemon(config, log);
  // An object, not a let: the signal handler sets it while start() is awaited (TypeScript's narrowing cannot see that).
  const shutdownState = { stopping: false };
  const shutdown = (signal: string) => {
    if (shutdownState.stopping) return;
    shutdownState.stopping = true;
    log(
      config.liveRestore ? `${signal}: stopping tsd; containers keep running (live restore)` : `${signal}: stopping containers and removing the node's set-up`,
    );
    daemon
      .stop()
      .then(() => process.exit(0))
      .catch((err: Error) => {
        log(`shutdown failed: ${err.message}`, 'error');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await daemon.start();
    const unlockKey = daemon.manager?.takeInitialUnlockKey();
    if (unlockKey !== undefined) process.stdout.write(unlockKeyNotice(unlockKey, process.stdout.isTTY === true));
    if (daemon.manager && config.join === undefined) {
      // No token is printed: tokens are minted on request and shown once, to root.
      process.stdout.write(
        `To add a node to this cluster, get a token here (tsctl cluster join-token worker > token; chmod 600 token), copy it to the node, and run there:\n` +
          `  tsd join --token-file token ${daemon.manager.dispatcherAddress()}\n`,
      );
    }
    // Said while the file is there: once the node has its certificate the token has done its job.
    if (config.join !== undefined && config.tokenFile !== undefined && config.tokenFile !== '-' && existsSync(config.tokenFile))
      process.stdout.write(
        `Joined the cluster at ${config.join}. The token in ${config.tokenFile} is no longer needed here: remove it (shred -u ${config.tokenFile}).\n`,
      );
  } catch (err) {
    // Stopped while starting (say, a manager waiting locked for its unlock key): shutdown() exits.
    if (shutdownState.stopping) return;
    log(`tsd failed to start: ${(err as Error).message}`, 'error');
    await daemon.stop();
    process.exit(1);
  }
}

takeJoinTokenFromEnvironment();

const program = new Command('tsd').description('Tessera node daemon (manager and agent)');

/** A node command: every setting as a flag, and --config for the file that gives the rest. */
function nodeCommand(name: string, description: string): Command {
  return withNodeOptions(program.command(name).description(description)).option(
    '--config <file>',
    `settings file (YAML, keys are the long flags without --); default ${DEFAULT_CONFIG_FILE} when it exists`,
  );
}

async function configOf(command: Command, extra: Partial<DaemonConfig> = {}): Promise<DaemonConfig> {
  return configFromCommand(command, await readConfigFile(command.opts<{ config?: string }>().config), extra);
}

for (const name of ['init', 'run']) {
  nodeCommand(
    name,
    name === 'init'
      ? 'create a cluster with this node as its manager, and serve'
      : 'serve as the configuration says: init, or join when it names a manager (what the systemd unit runs)',
  ).action(async (_options: unknown, command: Command) => serve(await configOf(command)));
}

nodeCommand('join', 'join a cluster as a worker, and serve')
  .argument('<manager>', "a manager's address, host:port")
  .action(async (manager: string, _options: unknown, command: Command) => {
    // The token is needed only on the first start (the node has no certificate yet); it is read then.
    return serve(await configOf(command, { join: manager }));
  });

nodeCommand('cleanup', 'remove containers, mounts, cgroups, links and rules a stopped tsd left').action(async (_options: unknown, command: Command) => {
  const removed = await cleanupNode(await configOf(command), log);
  log(`cleanup done (${removed} container(s) removed)`);
});

program
  .command('config-example')
  .description(`print a settings file with every setting and its default (for ${DEFAULT_CONFIG_FILE})`)
  .action(() => {
    process.stdout.write(configFileText(defaultConfig()));
  });

program.parseAsync(process.argv).catch((err: Error) => {
  log(err.message, 'error');
  process.exit(1);
});
