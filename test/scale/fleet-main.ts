// A process of hollow nodes (hollow-fleet.ts), driven by its parent over the IPC channel: the
// parent sends one `start` message (the join token travels here, never in argv or the environment),
// the process answers `ready` once every node is registered, then streams what its nodes see
// (assigned, run, end, failed) in batches every 100 ms. `stop` ends the sessions and exits. The
// benchmark makes a node go silent by SIGSTOP of its whole process (sockets stay open, nothing is
// sent) and cuts it by SIGKILL (the kernel closes its sockets).
import { parseJoinToken } from '../../common/identity/join-token.js';
import { HollowFleet } from './hollow-fleet.js';
import type { HollowEvent } from './hollow-worker.js';
import { encodeEvents, parseStartMessage, seededRandom, type FleetToParent } from './fleet-protocol.js';

const FLUSH_EVERY_MS = 100;

function send(message: FleetToParent): void {
  process.send?.(message);
}

let fleet: HollowFleet | undefined;
let buffer: HollowEvent[] = [];

function flush(): void {
  if (buffer.length === 0) return;
  send({ type: 'events', events: encodeEvents(buffer) });
  buffer = [];
}

async function start(raw: unknown): Promise<void> {
  const options = parseStartMessage(raw);
  const log = (message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`);
  fleet = new HollowFleet({
    managers: options.managers,
    token: parseJoinToken(options.token),
    namePrefix: options.namePrefix,
    count: options.count,
    addressPrefix: options.addressPrefix,
    concurrency: options.concurrency,
    sim: { ...options.sim, random: seededRandom(options.sim.seed) },
    onEvent: (event) => buffer.push(event),
    log,
  });
  setInterval(flush, FLUSH_EVERY_MS).unref();
  await fleet.start();
  send({ type: 'ready', joinMs: fleet.joinMs, connectMs: fleet.connectMs });
}

if (!process.send) {
  process.stderr.write('fleet-main: run me with an IPC channel (test/scale/fleet-process.ts)\n');
  process.exit(2);
}
// Keeps the process alive until `stop`: the sessions' heartbeat timers are unref'd.
const keepAlive = setInterval(() => undefined, 60_000);
process.on('message', (message: unknown) => {
  const type = (message as { type?: unknown } | null)?.type;
  if (type === 'start' && !fleet) {
    start(message).catch((err: Error) => {
      send({ type: 'failed', message: err.message });
      process.exitCode = 1;
      clearInterval(keepAlive);
      fleet?.stop();
      process.disconnect();
    });
  } else if (type === 'stop') {
    fleet?.stop();
    flush();
    clearInterval(keepAlive);
    // Let the last sends and the sessions' closing frames go out.
    setTimeout(() => process.disconnect(), 200);
  }
});
process.on('disconnect', () => {
  // The parent went away: nothing is left to report to.
  fleet?.stop();
  clearInterval(keepAlive);
  setTimeout(() => process.exit(0), 500).unref();
});
