// `tsd`: the node daemon. `tsd run` serves until SIGTERM/SIGINT; `tsd cleanup` removes what a
// dead tsd left behind.
import { Command, InvalidArgumentError } from 'commander';

import { defaultConfig, validateConfig, type DaemonConfig } from './config.js';
import { Daemon } from './daemon.js';
import { cleanupNode } from './cleanup.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function withNodeOptions(command: Command): Command {
  const d = defaultConfig();
  return command
    .option('--data-root <dir>', 'where tsd keeps images, containers and logs', d.dataRoot)
    .option('--listen <address>', 'gRPC API address (host:port or unix:/path)', d.listen)
    .option('--metrics-listen <address>', 'Prometheus /metrics address', d.metricsListen)
    .option('--node-name <name>', 'this node\'s name', d.nodeName)
    .option('--bridge <name>', 'container bridge link name', d.bridge)
    .option('--subnet <cidr>', 'node-local container subnet', d.subnet)
    .option('--nft-table <name>', 'nftables table for port publishing', d.nftTable)
    .option('--cgroup-parent <path>', 'parent cgroup of every container', d.cgroupParent)
    .option('--insecure-registry <host:port>', 'registry to reach over plain HTTP (repeatable)', collect, d.insecureRegistries)
    .option('--heartbeat-ms <ms>', 'agent heartbeat period', integer, d.heartbeatMs)
    .option('--node-down-after-ms <ms>', 'a node silent this long is down', integer, d.nodeDownAfterMs);
}

function configFrom(options: Record<string, unknown>): DaemonConfig {
  const config: DaemonConfig = { ...defaultConfig(), ...(options as Partial<DaemonConfig>) };
  validateConfig(config);
  return config;
}

const program = new Command('tsd').description('Tessera node daemon (manager and agent)');

withNodeOptions(program.command('run').description('run the daemon in the foreground')).action(async (options: Record<string, unknown>) => {
  const config = configFrom(options);
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
    const removed = await cleanupNode(configFrom(options), log);
    log(`cleanup done (${removed} container(s) removed)`);
  });

program.parseAsync(process.argv).catch((err: Error) => {
  log(err.message);
  process.exit(1);
});
