// End to end on one real node (tsd in a network namespace of the test's own, real containers from a
// busybox image the test builds): a service with a secret, a config, a named volume, a tmpfs mount
// and a bind mount. The container reports what it sees into the named volume (a digest of the
// secret, never the secret itself), and the test checks the node from outside: the secret's
// backing file system is a tmpfs, its content is nowhere on the node's disk, the volume's data
// outlives a killed container, and nothing is left mounted once the service is deleted.
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { Task } from '../../common/resources/types.js';
import { ApiCallError, ApiClient } from '../../cli/client.js';
import { BUSYBOX_INDEX_HTML } from '../helpers/busybox-image.js';
import { eventually } from '../helpers/eventually.js';
import type { TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';

const run = promisify(execFile);
const STACK = 'sf';

let node: TestNode;
let client: ApiClient;
let workDir: string;
let imageRef: string;
const marker = `tessera-secret-${randomBytes(12).toString('hex')}`;
const secretText = `${marker}\n`;
const configText = `listen=8080\nid=${randomBytes(4).toString('hex')}\n`;

const b64 = (text: string) => Buffer.from(text).toString('base64');

function objects(bindSource: string): string[] {
  const meta = (name: string) => ({ name, stack: STACK });
  // Every start appends its hostname to /data/starts, so a replacement sees its predecessor's line.
  const script = [
    'h=$(hostname)',
    'echo $h >> /data/starts',
    'sha256sum /run/secrets/db_password | cut -d" " -f1 > /data/secret-sha-$h',
    'stat -c "%a %u %g" /run/secrets/db_password > /data/secret-stat-$h',
    'stat -c "%a %u %g" /etc/app.conf > /data/config-stat-$h',
    'cat /etc/app.conf > /data/config-$h',
    'echo $h > /anon/owner',
    'echo from-container > /hostdir/hello',
    'cat /proc/mounts > /data/mounts-$h',
    'exec sleep 3600',
  ].join('; ');
  return [
    { apiVersion: 'tessera/v1', kind: 'Secret', metadata: meta('db_password'), spec: { data: b64(secretText) } },
    { apiVersion: 'tessera/v1', kind: 'Config', metadata: meta('app_conf'), spec: { data: b64(configText) } },
    { apiVersion: 'tessera/v1', kind: 'Volume', metadata: meta('data'), spec: { driver: 'local' } },
    { apiVersion: 'tessera/v1', kind: 'Volume', metadata: meta('www'), spec: {} },
    {
      apiVersion: 'tessera/v1',
      kind: 'Volume',
      metadata: meta('cache'),
      spec: { driver: 'local', driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=2m' } },
    },
    {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: meta('files'),
      spec: {
        image: imageRef,
        command: ['sh', '-c', script],
        stopGracePeriodMs: 1000,
        secrets: [{ source: 'db_password', target: 'db_password', uid: '1000', gid: '1001', mode: 0o400 }],
        configs: [{ source: 'app_conf', target: '/etc/app.conf', mode: 0o440 }],
        mounts: [
          { type: 'volume', source: 'data', target: '/data' },
          { type: 'volume', source: 'www', target: '/www' },
          { type: 'volume', source: 'cache', target: '/cache' },
          { type: 'volume', target: '/anon' },
          { type: 'tmpfs', target: '/scratch', sizeBytes: 1024 * 1024, mode: 0o1777 },
          { type: 'bind', source: bindSource, target: '/hostdir', createHostPath: true },
        ],
      },
    },
  ].map((o) => JSON.stringify(o));
}

async function runningTask(): Promise<Task | undefined> {
  const { objectsJson } = await client.list({ kind: 'Task', stack: STACK });
  const tasks = objectsJson.map((j) => JSON.parse(j) as Task);
  const failed = tasks.find((t) => t.status.state === 'failed' || t.status.state === 'rejected');
  if (failed && !tasks.some((t) => t.status.state === 'running')) throw new Error(`task failed: ${failed.status.message}`);
  return tasks.find((t) => t.desiredState === 'running' && t.status.state === 'running');
}

/** Mount points under `dir`, from this (the host's, which tsd shares) mount namespace. */
async function mountsUnder(dir: string): Promise<Array<{ point: string; fstype: string }>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const fields = l.split(' ');
      const dash = fields.indexOf('-');
      return { point: fields[4] ?? '', fstype: fields[dash + 1] ?? '' };
    })
    .filter((m) => m.point.startsWith(`${dir}/`));
}

/** Regular files on the data root's own file system (no mounts crossed: the disk) that contain `text`. */
async function filesOnDiskContaining(root: string, text: string): Promise<string[]> {
  const { stdout } = await run('sh', ['-c', `find "$1" -xdev -type f -print0 | xargs -0 -r grep -l -F -e "$2" || true`, 'sh', root, text], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.split('\n').filter(Boolean);
}

test.before(async () => {
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-e2e-files-'));
  client = new ApiClient(node.server);
});

test.after.always(async () => {
  // before() may have failed before assigning it: the declared type does not hold here.
  (client as ApiClient | undefined)?.close();
  await stopBusyboxNode(node, workDir);
});

test.serial('secrets, configs and volumes reach the container; secrets only on tmpfs; volume data outlives the container', async (t) => {
  const bindSource = join(workDir, 'bind-src', 'made-by-tsd');
  const applied = await client.apply({ objectsJson: objects(bindSource) });
  t.deepEqual(
    applied.results.map((r) => r.action),
    ['created', 'created', 'created', 'created', 'created', 'created'],
  );
  for (const r of applied.results) t.false(r.objectJson.includes(b64(secretText)), 'apply never echoes secret data');

  const first = await eventually('the task running', runningTask, 60_000);
  const volumeData = join(node.dataRoot, 'volumes', STACK, 'data', '_data');
  const hostname = await eventually(
    "the container's report",
    async () => {
      const starts = await readFile(join(volumeData, 'starts'), 'utf8').catch(() => '');
      const name = starts.trim().split('\n')[0];
      if (!name) return undefined;
      return (await readFile(join(volumeData, `mounts-${name}`), 'utf8').catch(() => '')).length > 0 ? name : undefined;
    },
    30_000,
  );

  // What the container saw.
  t.is(
    (await readFile(join(volumeData, `secret-sha-${hostname}`), 'utf8')).trim(),
    createHash('sha256').update(secretText).digest('hex'),
    "the secret's content",
  );
  t.is((await readFile(join(volumeData, `secret-stat-${hostname}`), 'utf8')).trim(), '400 1000 1001', "the secret's mode and owner");
  t.is(await readFile(join(volumeData, `config-${hostname}`), 'utf8'), configText, 'the config at its target');
  t.is((await readFile(join(volumeData, `config-stat-${hostname}`), 'utf8')).trim(), '440 0 0', "the config's mode and owner");
  const mounts = await readFile(join(volumeData, `mounts-${hostname}`), 'utf8');
  t.regex(mounts, /^\S+ \/run\/secrets tmpfs ro[, ]/m, 'inside the container /run/secrets is a read-only tmpfs');
  t.regex(mounts, /^\S+ \/scratch tmpfs \S*size=1024k/m, 'the tmpfs mount with its size');
  t.is(await readFile(join(bindSource, 'hello'), 'utf8'), 'from-container\n', 'the bind mount (created by tsd) is the host directory');
  t.is(
    await readFile(join(node.dataRoot, 'volumes', STACK, 'www', '_data', 'index.html'), 'utf8'),
    BUSYBOX_INDEX_HTML,
    "a new volume is filled with the image's content at its target",
  );
  t.regex(mounts, /^tmpfs \/cache tmpfs \S*size=2048k/m, 'a volume with driver options is that mount');
  t.deepEqual(
    (await mountsUnder(join(node.dataRoot, 'volumes'))).map((m) => m.fstype),
    ['tmpfs'],
    'the driver-options volume is mounted on the node while used',
  );

  const anonymous = join(node.dataRoot, 'containers', first.status.containerId!, 'volumes', '3', '_data', 'owner');
  t.is((await readFile(anonymous, 'utf8')).trim(), hostname, "the anonymous volume lives in the container's bundle");

  // On the node: the container's files live on a tmpfs of its own, and nowhere on the disk.
  const filesMounts = await mountsUnder(join(node.dataRoot, 'run'));
  t.is(filesMounts.length, 1, `one files tmpfs for the one container: ${JSON.stringify(filesMounts)}`);
  t.is(filesMounts[0]!.fstype, 'tmpfs', "the secret's backing file system on the host is tmpfs");
  t.is(await readFile(join(filesMounts[0]!.point, 'secrets', 'db_password'), 'utf8'), secretText);
  // The manager's store on this node holds the secret base64-encoded (encryption at rest is not
  // done yet); the raw content must not be on the disk anywhere.
  t.deepEqual(await filesOnDiskContaining(node.dataRoot, marker), [], "no file on the node's disk holds the secret");

  // The API never shows secret data.
  const yaml = await node.tsctl('get', 'secrets', '-o', 'yaml');
  t.true(yaml.includes('<redacted>') && !yaml.includes(b64(secretText)) && !yaml.includes(marker));
  t.regex(await node.tsctl('get', 'secrets'), new RegExp(`db_password\\s+${STACK}\\s+${secretText.length}\\s`));

  // A secret in use cannot be deleted, nor can its data change.
  const refused = await t.throwsAsync(client.delete({ refs: [{ kind: 'Secret', stack: STACK, name: 'db_password' }] }));
  t.true(refused instanceof ApiCallError);
  t.regex(refused!.message, /in use by service\(s\) sf\/files/);
  const changed = await t.throwsAsync(
    client.apply({
      objectsJson: [
        JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'db_password', stack: STACK }, spec: { data: b64('other') } }),
      ],
    }),
  );
  t.regex(changed!.message, /secrets are immutable/);

  // Kill the container: its replacement finds the first one's data in the named volume.
  process.kill(first.status.pid!, 'SIGKILL');
  const second = await eventually(
    'a replacement task',
    async () => {
      const task = await runningTask();
      return task && task.metadata.name !== first.metadata.name ? task : undefined;
    },
    60_000,
  );
  const starts = await eventually(
    "the replacement's start line",
    async () => {
      const lines = (await readFile(join(volumeData, 'starts'), 'utf8')).trim().split('\n');
      return lines.length >= 2 ? lines : undefined;
    },
    30_000,
  );
  t.is(starts[0], hostname, "the first container's line is still there");
  t.not(starts[1], hostname);
  t.not(second.metadata.name, first.metadata.name);
  await eventually(
    "the killed container's anonymous volume gone",
    async () => ((await readFile(anonymous).catch(() => undefined)) === undefined ? true : undefined),
    20_000,
  );
  await eventually(
    "the killed container's files tmpfs gone",
    async () => ((await mountsUnder(join(node.dataRoot, 'run'))).length === 1 ? true : undefined),
    20_000,
  );

  // Delete the service: no tmpfs mount is left behind, the volume's data stays (Swarm's rule).
  await client.delete({ refs: [{ kind: 'Service', stack: STACK, name: 'files' }] });
  await eventually('every files tmpfs unmounted', async () => ((await mountsUnder(join(node.dataRoot, 'run'))).length === 0 ? true : undefined), 30_000);
  t.deepEqual(await readdir(join(node.dataRoot, 'run', 'tasks')).catch(() => []), [], 'no task files directory left');
  t.deepEqual(await mountsUnder(join(node.dataRoot, 'volumes')), [], 'the driver-options volume is unmounted when no container uses it');
  t.deepEqual(await filesOnDiskContaining(node.dataRoot, marker), []);
  const deleted = await client.delete({
    refs: [
      { kind: 'Secret', stack: STACK, name: 'db_password' },
      { kind: 'Config', stack: STACK, name: 'app_conf' },
      { kind: 'Volume', stack: STACK, name: 'data' },
    ],
  });
  t.is(deleted.deleted.length, 3, 'unused secrets, configs and volumes can be deleted');
  await client.delete({
    refs: [
      { kind: 'Volume', stack: STACK, name: 'www' },
      { kind: 'Volume', stack: STACK, name: 'cache' },
    ],
  });
  t.true((await readFile(join(volumeData, 'starts'), 'utf8')).length > 0, 'deleting the Volume object keeps the data on the node');
});

test.serial("tsctl stack deploy takes a Compose file's secrets, configs and volumes; stack rm removes them", async (t) => {
  const dir = join(workDir, 'compose');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'token.txt'), `${marker}-compose\n`);
  await writeFile(
    join(dir, 'compose.yaml'),
    `services:
  app:
    image: ${imageRef}
    command: ["sh", "-c", "test -s /run/secrets/token && cat /cfg > /vol/cfg-copy && exec sleep 3600"]
    stop_grace_period: 1s
    secrets: [token]
    configs:
      - source: cfg
        target: /cfg
    volumes:
      - vol:/vol
secrets:
  token:
    file: ./token.txt
configs:
  cfg:
    content: "compose config"
volumes:
  vol: {}
`,
  );
  const deployed = await node.tsctl('stack', 'deploy', '-c', join(dir, 'compose.yaml'), 'sfc');
  t.regex(deployed, /secret\/sfc\/token created/);
  t.regex(deployed, /config\/sfc\/cfg created/);
  t.regex(deployed, /volume\/sfc\/vol created/);
  const copy = await eventually(
    'the config copied into the volume',
    async () => {
      const text = await readFile(join(node.dataRoot, 'volumes', 'sfc', 'vol', '_data', 'cfg-copy'), 'utf8').catch(() => '');
      return text.length > 0 ? text : undefined;
    },
    60_000,
  );
  t.is(copy, 'compose config');
  t.regex(await node.tsctl('get', 'secrets', '--stack', 'sfc'), /token\s+sfc\s+\d+/);

  await node.tsctl('stack', 'rm', 'sfc');
  const left = await client.list({ kind: 'Secret', stack: 'sfc' });
  t.deepEqual(left.objectsJson, [], "stack rm removes the stack's secrets after its services");
  await eventually('no files tmpfs left', async () => ((await mountsUnder(join(node.dataRoot, 'run'))).length === 0 ? true : undefined), 30_000);
});

test.serial('kill -9 of tsd: the container keeps its secrets; the restarted tsd removes them when the service goes', async (t) => {
  await client.apply({
    objectsJson: [
      JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'k9', stack: 'sfk' }, spec: { data: b64(`${marker}-k9\n`) } }),
      JSON.stringify({
        apiVersion: 'tessera/v1',
        kind: 'Service',
        metadata: { name: 'k9', stack: 'sfk' },
        spec: { image: imageRef, command: ['sleep', '3600'], stopGracePeriodMs: 1000, secrets: [{ source: 'k9', target: 'k9' }] },
      }),
    ],
  });
  const listRunning = async () => {
    const tasks = (await client.list({ kind: 'Task', stack: 'sfk' })).objectsJson.map((j) => JSON.parse(j) as Task);
    return tasks.find((x) => x.status.state === 'running');
  };
  const before = await eventually('k9 running', listRunning, 60_000);
  t.is((await mountsUnder(join(node.dataRoot, 'run'))).length, 1);

  await node.killDaemon();
  t.is((await mountsUnder(join(node.dataRoot, 'run'))).length, 1, "the running container's files stay while tsd is down");
  await node.restartDaemon();
  client.close();
  client = new ApiClient(node.server);
  const after = await eventually('k9 adopted', listRunning, 60_000);
  t.is(after.metadata.name, before.metadata.name, 'the same task, taken over');
  t.is((await mountsUnder(join(node.dataRoot, 'run'))).length, 1);

  await client.delete({
    refs: [
      { kind: 'Service', stack: 'sfk', name: 'k9' },
      { kind: 'Secret', stack: 'sfk', name: 'k9' },
    ],
  });
  await eventually('no files tmpfs left', async () => ((await mountsUnder(join(node.dataRoot, 'run'))).length === 0 ? true : undefined), 30_000);
  t.deepEqual(await filesOnDiskContaining(node.dataRoot, `${marker}-k9`), []);
});
