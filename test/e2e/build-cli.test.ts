// `tsctl build` against a real tsd (issue 18), one node in a network namespace of the test's own:
// a FROM scratch image is built from a real context (nothing to pull) by the daemon's own builder,
// and listed by `image ls` under its tag with the digest tsctl printed; a context over the daemon's
// --build-context-max-bytes is refused by tsctl before it is sent, naming the cap. No context
// directory is left under the data root either way.
import test from 'ava';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startTestNode, type TestNode } from '../helpers/tsd-node.js';

const run = promisify(execFile);
const tsctlMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

let node: TestNode | undefined;
let work: string | undefined;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-e2e-build-'));
  node = await startTestNode();
});

test.after.always(async () => {
  await node?.destroy();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function tsctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [tsctlMain, '--server', node?.server ?? '', ...args], { timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as Error & { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function contextsLeft(): Promise<string[]> {
  return readdir(join(node?.dataRoot ?? '', 'build-contexts')).catch(() => []);
}

test.serial('tsctl build through the real daemon: built and listed', async (t) => {
  if (!node || !work) return t.fail('no node');
  const context = join(work, 'app');
  await mkdir(join(context, 'etc'), { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY etc/ /etc/\nLABEL built.by=tessera\n');
  await writeFile(join(context, 'etc/app.conf'), 'answer = 42\n');
  await writeFile(join(context, '.dockerignore'), '*.tmp\n');
  await writeFile(join(context, 'scratch.tmp'), 'left out');
  const out = await tsctl('build', '-t', 'e2e-built:1', '--progress', 'plain', context);
  t.is(out.code, 0, out.stderr);
  const digest = out.stdout.split('\n')[0] ?? '';
  t.regex(digest, /^sha256:[0-9a-f]{64}$/);
  t.regex(out.stdout, /tagged docker\.io\/library\/e2e-built:1\n/);
  t.regex(out.stderr, /#0 building on node node1\n/);
  const images = await tsctl('image', 'ls');
  t.true(images.stdout.includes(digest.slice('sha256:'.length, 'sha256:'.length + 12)), images.stdout);
  t.regex(images.stdout, /e2e-built/);
  t.deepEqual(await contextsLeft(), []);
});

test.serial('tsd --build-context-max-bytes caps the context: refused before it is sent', async (t) => {
  if (!node || !work) return t.fail('no node');
  await node.stopDaemon();
  await node.restartDaemon(['--build-context-max-bytes', String(1024 * 1024)]);
  const context = join(work, 'big');
  await mkdir(join(context, 'data'), { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY data/ /data/\n');
  await writeFile(join(context, 'data/blob.bin'), Buffer.alloc(2 * 1024 * 1024, 7));
  const out = await tsctl('build', '-t', 'e2e-big:1', '--progress', 'plain', context);
  t.is(out.code, 1);
  t.regex(
    out.stderr,
    new RegExp(`error: build context ${context} is 2\\.0 MiB as a tar, more than the 1\\.0 MiB node node1 accepts; the largest parts: data/ 2\\.0 MiB`),
  );
  t.deepEqual(await contextsLeft(), []);
});
