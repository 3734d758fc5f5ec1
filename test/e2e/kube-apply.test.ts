// End to end: Kubernetes manifests (test/fixtures/kube/web) applied with tsctl to one real tsd in a
// network namespace of the test's own: a ConfigMap-fed Deployment behind a NodePort Service answers
// on the node port; `diff` shows a change (exit 1) or none (exit 0); `apply --prune` removes an
// object dropped from the files.
import test from 'ava';
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { Service, Task } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import type { TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = join(repoRoot, 'test', 'fixtures', 'kube', 'web');
const STACK = 'kube-e2e';
const NODE_PORT = 30080;

let node: TestNode;
let workDir: string;
let manifests: string;

/** tsctl with its exit code (node.tsctl rejects on non-zero, and diff's 1 is an answer, not a failure). */
async function tsctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), '--server', node.server, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

async function runningTasks(service: string): Promise<Task[]> {
  const tasks = JSON.parse(await node.tsctl('get', 'tasks', '-o', 'json', '--stack', STACK)) as Task[] | { items: Task[] };
  return (Array.isArray(tasks) ? tasks : tasks.items).filter(
    (t) => t.spec.serviceName === service && t.desiredState === 'running' && t.status.state === 'running',
  );
}

async function services(): Promise<string[]> {
  const list = JSON.parse(await node.tsctl('get', 'services', '-o', 'json', '--stack', STACK)) as Service[] | { items: Service[] };
  return (Array.isArray(list) ? list : list.items).map((s) => s.metadata.name).sort();
}

test.before(async () => {
  let imageRef: string;
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-kube-e2e-'));
  // The fixture names its image IMAGE; the copy names the one just loaded.
  manifests = join(workDir, 'manifests');
  await cp(FIXTURE, manifests, { recursive: true });
  for (const file of await readdir(manifests)) {
    const path = join(manifests, file);
    await writeFile(path, (await readFile(path, 'utf8')).replaceAll('IMAGE', imageRef));
  }
});

test.after.always(async () => {
  await stopBusyboxNode(node, workDir);
});

test.serial('a Deployment and its NodePort Service from Kubernetes manifests answer on the node port', async (t) => {
  const applied = await tsctl('apply', '-f', manifests);
  t.is(applied.code, 0, applied.stderr);
  t.regex(applied.stdout, /service\/kube-e2e\/web created/);
  t.regex(applied.stdout, /service\/kube-e2e\/extra created/);
  t.regex(applied.stdout, /config\/kube-e2e\/site\.index\.html created/);
  await eventually('2 running web tasks', async () => ((await runningTasks('web')).length === 2 ? true : undefined), 60_000);
  const page = await eventually(
    'the node port answers',
    async () => {
      try {
        const { stdout } = await run('ip', ['netns', 'exec', node.netns, 'busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${NODE_PORT}/`], {
          timeout: 5000,
        });
        return stdout;
      } catch {
        return undefined;
      }
    },
    30_000,
  );
  t.is(page, 'hello from a kubernetes manifest\n', "the page is the ConfigMap's, mounted as a Config");
});

test.serial('diff: no change exits 0; a changed replica count is shown and exits 1', async (t) => {
  const same = await tsctl('diff', '-f', manifests);
  t.is(same.code, 0, same.stderr);
  t.regex(same.stdout, /service\/kube-e2e\/web unchanged/);

  const deployment = join(manifests, 'deployment.yaml');
  await writeFile(deployment, (await readFile(deployment, 'utf8')).replace('replicas: 2', 'replicas: 3'));
  const changed = await tsctl('diff', '-f', manifests);
  t.is(changed.code, 1, changed.stderr);
  t.regex(changed.stdout, /service\/kube-e2e\/web configured\n--- service\/kube-e2e\/web \(cluster\)\n\+\+\+ service\/kube-e2e\/web \(files\)\n/);
  t.regex(changed.stdout, /^-  replicas: 2$/m);
  t.regex(changed.stdout, /^\+  replicas: 3$/m);
  t.deepEqual((await runningTasks('web')).length, 2, 'diff changed nothing');
});

test.serial('apply --prune removes the object dropped from the files, in the same apply', async (t) => {
  await rm(join(manifests, 'extra-pod.yaml'));
  const preview = await tsctl('diff', '--prune', '-f', manifests);
  t.is(preview.code, 1);
  t.regex(preview.stdout, /service\/kube-e2e\/extra pruned/);
  const applied = await tsctl('apply', '--prune', '-f', manifests);
  t.is(applied.code, 0, applied.stderr);
  t.regex(applied.stdout, /service\/kube-e2e\/web configured/);
  t.regex(applied.stdout, /service\/kube-e2e\/extra pruned/);
  t.deepEqual(await services(), ['web']);
  await eventually('3 running web tasks', async () => ((await runningTasks('web')).length === 3 ? true : undefined), 60_000);
  await eventually("extra's task gone", async () => ((await runningTasks('extra')).length === 0 ? true : undefined), 30_000);
  const after = await tsctl('diff', '-f', manifests);
  t.is(after.code, 0, after.stdout);
});
