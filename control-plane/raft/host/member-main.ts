// A Raft store member as its own process: for the real-process tests and the benchmark (tsd runs
// the same store inside the manager). Prints "ready <address>" on stdout once serving.
//   member-main --id m0 --data-dir DIR --listen 10.0.0.1:7430 [--client-socket unix:/path]
//               (--bootstrap m0=10.0.0.1:7430,m1=...  |  --join)  [--snapshot-every N] [--tick-ms MS]
import { parseArgs } from 'node:util';

import { LOCAL_INSECURE } from '../../../common/transport/credentials.js';
import { RaftStore } from '../../store/raft-store.js';
import { addRaftService } from '../transport/raft-service.js';
import { bind, lateHandlers, newRaftServer, shutdown } from './serve-member.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      group: { type: 'string', default: 'bench' },
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'client-socket': { type: 'string' },
      bootstrap: { type: 'string' },
      join: { type: 'boolean', default: false },
      'snapshot-every': { type: 'string' },
      'tick-ms': { type: 'string' },
      'election-tick': { type: 'string' },
    },
  });
  const id = values.id;
  const dataDir = values['data-dir'];
  const listen = values.listen;
  if (!id || !dataDir || !listen) throw new Error('member-main: --id, --data-dir and --listen are required');
  if (!values.join && !values.bootstrap) throw new Error('member-main: give --bootstrap id=host:port,... or --join');
  const bootstrap = values.bootstrap?.split(',').map((pair) => {
    const [mid, address] = pair.split('=');
    if (!mid || !address || !/^[A-Za-z0-9.-]+:\d+$/.test(address)) throw new Error(`member-main: --bootstrap entry "${pair}" is not id=host:port`);
    return { id: mid, address };
  });
  const server = newRaftServer();
  let store: RaftStore | undefined;
  addRaftService(
    server,
    lateHandlers(() => store),
  );
  await bind(server, listen, LOCAL_INSECURE);
  if (values['client-socket']) await bind(server, values['client-socket'], LOCAL_INSECURE);
  store = await RaftStore.open({
    id,
    group: values.group,
    address: listen,
    dataDir,
    ...(values.join ? {} : { bootstrap: bootstrap ?? [] }),
    security: LOCAL_INSECURE,
    tickMs: positive('tick-ms', values['tick-ms'], 100),
    electionTick: positive('election-tick', values['election-tick'], 10),
    snapshotEvery: positive('snapshot-every', values['snapshot-every'], 10_000),
    log,
  });
  const opened = store;
  opened.host.onLeaderChange((leader, isLeader) => log(`leader is now ${leader || '(none)'}${isLeader ? ' (this member)' : ''}`));
  process.stdout.write(`ready ${listen}\n`);
  const stop = (): void => {
    void opened
      .close()
      .then(() => shutdown(server))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  log(`member-main: ${err.message}`);
  process.exit(1);
});
