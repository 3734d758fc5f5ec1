// `tsctl image push` end to end on one real node: tsd in a network namespace of the test's own,
// busybox loaded into it, and Debian's docker-registry inside that namespace on its loopback.
// The image is pushed under a new name, a second push finds every blob there, the pushed name is
// pulled back through the same node with the same digest, and a missing image or a closed port is
// a clear failure of tsctl.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { eventually } from '../helpers/eventually.js';
import type { TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';

const run = promisify(execFile);
const tsctlMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

let node: TestNode | undefined;
let workDir: string | undefined;
let imageRef = '';

test.before(async () => {
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-e2e-push-'));
});

test.after.always(async () => {
  await stopBusyboxNode(node, workDir);
});

/** tsctl against the node, with both streams (progress goes to stderr) and its exit code. */
async function tsctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [tsctlMain, '--server', node?.server ?? '', ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as Error & { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test.serial('tsctl image push sends the node image to a registry; pushed again it sends nothing; pulled back it has the same digest', async (t) => {
  if (!node || !workDir) return t.fail('no node');
  const registryDir = join(workDir, 'registry');
  await mkdir(registryDir, { recursive: true });
  const config = join(workDir, 'registry.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${registryDir}\nhttp:\n  addr: 127.0.0.1:5000\n`);
  // Inside the node's namespace, so tsd reaches it on its own loopback (an insecure registry by being loopback).
  const registry = spawn('nsenter', [`--net=/run/netns/${node.netns}`, '/usr/bin/docker-registry', 'serve', config], { stdio: 'ignore' });
  t.teardown(() => {
    if (registry.pid !== undefined && registry.exitCode === null) process.kill(registry.pid, 'SIGTERM');
  });
  const testNode = node;
  await eventually(
    'the registry to answer',
    async () => {
      await testNode.inNetns('busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:5000/v2/');
      return true;
    },
    20_000,
  );

  const listed = await node.tsctl('image', 'ls');
  const digest = new RegExp(`${imageRef.replace(/[.:/]/g, '\\$&')}\\s+(sha256:[a-f0-9]{12})`).exec(listed)?.[1];
  if (digest === undefined) return t.fail(`${imageRef} not in image ls:\n${listed}`);

  const first = await tsctl('image', 'push', imageRef, '127.0.0.1:5000/team/busybox:v1');
  t.is(first.code, 0, first.stderr);
  const pushed = /^pushed 127\.0\.0\.1:5000\/team\/busybox:v1 \((sha256:[a-f0-9]{64})\)$/m.exec(first.stdout)?.[1];
  if (pushed === undefined) return t.fail(`no result line: ${first.stdout}`);
  t.true(pushed.startsWith(digest), `the manifest digest of the node's image (${digest}…) is the one pushed (${pushed})`);
  t.regex(first.stderr, /^[a-f0-9]{12}: pushing .* \/ /m);
  t.regex(first.stderr, /^[a-f0-9]{12}: pushed$/m);

  const second = await tsctl('image', 'push', imageRef, '127.0.0.1:5000/team/busybox:v1');
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, new RegExp(`^pushed 127\\.0\\.0\\.1:5000/team/busybox:v1 \\(${pushed}\\)$`, 'm'));
  t.regex(second.stderr, /already in the registry/);
  t.notRegex(second.stderr, /pushing|: pushed/);

  const pulled = await node.tsctl('image', 'pull', '-q', '127.0.0.1:5000/team/busybox:v1');
  t.is(pulled.trim(), `pulled 127.0.0.1:5000/team/busybox:v1 (${pushed})`);
});

test.serial('tsctl image push of an image the node lacks, or to a closed port, fails with a clear message', async (t) => {
  const missing = await tsctl('image', 'push', 'nothing/here:v9', '127.0.0.1:5000/team/nothing:v9');
  t.not(missing.code, 0);
  t.regex(missing.stderr, /image "nothing\/here:v9" is not in the store of node \S+ \(image push sends from the image store of the manager that answers/);

  // Nothing listens on 5001 inside the node's namespace.
  const closed = await tsctl('image', 'push', '-q', imageRef, '127.0.0.1:5001/team/busybox:v1');
  t.not(closed.code, 0);
  t.regex(
    closed.stderr,
    /push 127\.0\.0\.1:5001\/team\/busybox:v1: checking whether the registry has .*HEAD http:\/\/127\.0\.0\.1:5001\/v2\/team\/busybox\/blobs\/.*ECONNREFUSED.*gave up after 5 attempts/,
  );
  t.notRegex(closed.stderr, /is the cluster up/, 'not mistaken for an unreachable API');
});
