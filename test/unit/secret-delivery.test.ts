// The dispatcher's per-node selection of secrets, configs and volume specs (pure), and the agent's
// in-memory set of what it received.
import test from 'ava';

import { DeliveredFiles, fileKey, parseStackFile, SentFiles, toStackFile, type FileObject } from '../../common/dispatcher/stack-files.js';
import { filesNeededBy, resolveNeeded } from '../../control-plane/dispatcher/secret-delivery.js';
import type { ServiceSpec, Task, TaskState } from '../../common/resources/types.js';

function task(name: string, spec: Partial<ServiceSpec>, state: TaskState = 'assigned', desired: Task['desiredState'] = 'running', stack = 'app'): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name, stack },
    spec: { serviceName: 'web', serviceStack: stack, serviceGeneration: 1, slot: 1, spec: { image: 'busybox', ...spec } },
    nodeName: 'n1',
    desiredState: desired,
    status: { state, timestamp: '2026-01-01T00:00:00Z' },
  };
}

const secret = (name: string, stack: string, data: string, rv = '1'): FileObject => ({
  apiVersion: 'tessera/v1',
  kind: 'Secret',
  metadata: { name, stack, resourceVersion: rv },
  spec: { data: Buffer.from(data).toString('base64') },
});

test('a node needs only what its live tasks use', (t) => {
  const tasks = [
    task('a', { secrets: [{ source: 'pw', target: 'pw' }], configs: [{ source: 'conf', target: '/c' }] }, 'running'),
    task('b', {
      secrets: [{ source: 'pw', target: 'other' }],
      mounts: [
        { type: 'volume', source: 'data', target: '/d' },
        { type: 'volume', target: '/anon' },
      ],
    }),
    task('c', { secrets: [{ source: 'old', target: 'old' }] }, 'failed'),
    task('d', { secrets: [{ source: 'stopping', target: 's' }] }, 'running', 'shutdown'),
  ];
  const needed = filesNeededBy(tasks);
  t.deepEqual(
    needed.map((n) => `${n.kind}/${n.name}@${n.stacks.join('|')}`),
    ['Config/conf@app|', 'Secret/pw@app|', 'Volume/data@app|'],
  );
  t.deepEqual(
    filesNeededBy([task('e', { secrets: [{ source: 'x', target: 'x' }] }, 'assigned', 'running', '')]).map((n) => n.stacks),
    [['']],
  );
});

test("references resolve in the task's stack first, then the default stack; missing ones are left out", async (t) => {
  const store = new Map<string, FileObject>([
    [fileKey('Secret', 'app', 'pw'), secret('pw', 'app', 'own')],
    [fileKey('Secret', '', 'pw'), secret('pw', '', 'default')],
    [fileKey('Secret', '', 'ext'), secret('ext', '', 'external')],
  ]);
  const needed = filesNeededBy([
    task('a', {
      secrets: [
        { source: 'pw', target: 'pw' },
        { source: 'ext', target: 'ext' },
        { source: 'gone', target: 'g' },
      ],
    }),
  ]);
  const found = await resolveNeeded(needed, async (kind, stack, name) => store.get(fileKey(kind, stack, name)));
  t.deepEqual(
    found.map((o) => `${o.metadata.stack}/${o.metadata.name}`),
    ['/ext', 'app/pw'],
  );
});

test('SentFiles sends each object once, again when it changes, and withdraws what is no longer needed', (t) => {
  const sent = new SentFiles();
  const a = secret('a', 'app', 'x');
  const b = secret('b', 'app', 'y');
  t.deepEqual(
    sent.next([a, b]).send.map((o) => o.metadata.name),
    ['a', 'b'],
  );
  const same = sent.next([a, b]);
  t.deepEqual([same.send.length, same.withdraw.length], [0, 0]);
  const changed = sent.next([secret('a', 'app', 'x', '7'), b]);
  t.deepEqual(
    changed.send.map((o) => o.metadata.name),
    ['a'],
  );
  t.is(sent.held('Secret', 'app', 'a')?.metadata.resourceVersion, '7', 'what the node holds is known without a store read');
  const dropped = sent.next([b]);
  t.deepEqual(dropped.withdraw, ['Secret/app/a']);
  t.deepEqual(sent.next([]).withdraw, ['Secret/app/b']);
  t.is(sent.held('Secret', 'app', 'a'), undefined);
});

test("wire form round trip, validation, and the agent's in-memory set", (t) => {
  const wire = toStackFile(secret('pw', 'app', 's3cret'));
  const parsed = parseStackFile({ kind: wire.kind!, stack: wire.stack!, name: wire.name!, data: Buffer.from(wire.data as Buffer), volumeSpecJson: '' });
  t.is(parsed.data.toString(), 's3cret');
  const vol = toStackFile({
    apiVersion: 'tessera/v1',
    kind: 'Volume',
    metadata: { name: 'v', stack: 'app' },
    spec: { driver: 'local', driverOpts: { type: 'tmpfs', device: 'tmpfs' } },
  });
  t.deepEqual(parseStackFile({ kind: 'Volume', stack: 'app', name: 'v', data: Buffer.alloc(0), volumeSpecJson: vol.volumeSpecJson! }).volume, {
    driver: 'local',
    driverOpts: { type: 'tmpfs', device: 'tmpfs' },
  });
  t.throws(() => parseStackFile({ kind: 'Task', stack: 'app', name: 'x', data: Buffer.alloc(0), volumeSpecJson: '' }), { message: /unknown kind/ });
  t.throws(() => parseStackFile({ kind: 'Secret', stack: 'app', name: '../etc', data: Buffer.alloc(0), volumeSpecJson: '' }), { message: /invalid name/ });
  t.throws(() => parseStackFile({ kind: 'Volume', stack: 'app', name: 'v', data: Buffer.alloc(0), volumeSpecJson: '{"driver":"nfs"}' }), {
    message: /invalid volume spec/,
  });

  const files = new DeliveredFiles();
  files.apply(true, [parsed, { kind: 'Secret', stack: '', name: 'ext', data: Buffer.from('e') }], []);
  t.is(files.resolve('Secret', 'app', 'pw')?.data.toString(), 's3cret');
  t.is(files.resolve('Secret', 'app', 'ext')?.stack, '', 'external: the default stack');
  t.is(files.resolve('Secret', 'other', 'pw'), undefined, "another stack's secret is not visible");
  const held = files.resolve('Secret', 'app', 'pw')!;
  files.apply(false, [], ['Secret/app/pw']);
  t.is(files.resolve('Secret', 'app', 'pw'), undefined);
  t.true(
    held.data.every((b) => b === 0),
    'withdrawn secret bytes are overwritten',
  );
  files.apply(true, [], []);
  t.deepEqual(files.keys(), [], 'a full set replaces everything');
});
