// The start-up sweep of containers an earlier tsd left. A container whose state cannot be read may
// still run: its bundle dir, which is how a sweep finds it, must stay for the next sweep, and the
// failure is logged. A container the runtime definitely does not have is cleared away.
//
// The runtime and network are stand-ins: a real transient EIO on the runtime's state dir cannot be
// produced on demand, so state() throws an injected one; the network only detaches (no-op).
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { NodeNetwork } from '../../agent/network/types.js';
import type { ContainerRuntime, ContainerState } from '../../agent/runtime/types.js';
import { sweepLeftovers } from '../../agent/worker/leftovers.js';

function notUsed(what: string): never {
  throw new Error(`${what} is not used by the sweep`);
}

const network: NodeNetwork = {
  setup: () => notUsed('network.setup'),
  attach: () => notUsed('network.attach'),
  detach: () => Promise.resolve(),
  publish: () => notUsed('network.publish'),
  teardown: () => notUsed('network.teardown'),
};

/** A runtime that has no containers, except that reading the state of `unreadable` fails with EIO. */
function runtimeWithUnreadable(unreadable: string): ContainerRuntime {
  return {
    create: () => notUsed('create'),
    start: () => notUsed('start'),
    kill: () => notUsed('kill'),
    wait: () => notUsed('wait'),
    delete: () => notUsed('delete'),
    state(id: string): Promise<ContainerState | undefined> {
      if (id === unreadable) return Promise.reject(Object.assign(new Error(`EIO: i/o error, read (injected) for ${id}`), { code: 'EIO' }));
      return Promise.resolve(undefined);
    },
  };
}

async function containersDir(t: ExecutionContext, ids: string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-leftovers-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (const id of ids) await mkdir(join(root, id, 'rootfs'), { recursive: true });
  return root;
}

test('a leftover whose state cannot be read keeps its bundle for the next sweep; one the runtime lacks goes', async (t) => {
  const dir = await containersDir(t, ['unreadable-1', 'gone-1']);
  const logs: string[] = [];
  const removed = await sweepLeftovers({
    runtime: runtimeWithUnreadable('unreadable-1'),
    network,
    containersDir: dir,
    teardownNetwork: false,
    log: (message) => logs.push(message),
  });
  t.is(removed, 1);
  t.deepEqual(await readdir(dir), ['unreadable-1']);
  t.true(
    logs.some((l) => l.includes('unreadable-1') && l.includes('EIO') && l.includes('next sweep')),
    JSON.stringify(logs),
  );
});

test('no containers dir: nothing to sweep', async (t) => {
  const dir = await containersDir(t, []);
  const removed = await sweepLeftovers({
    runtime: runtimeWithUnreadable(''),
    network,
    containersDir: join(dir, 'missing'),
    teardownNetwork: false,
    log: (message) => t.fail(message),
  });
  t.is(removed, 0);
});
