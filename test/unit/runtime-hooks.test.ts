// OCI hooks (agent/runtime/hooks.ts): real /bin/sh processes, the state on stdin, failures named.

import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runHook, runHooksOrFail, runHooksWarning, type HookState } from '../../agent/runtime/hooks.js';

const STATE: HookState = { ociVersion: '1.0.2', id: 'c1', status: 'created', pid: 42, bundle: '/b', annotations: { a: 'b' } };

test('a hook reads the state on stdin, with exactly its own argv and env', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-hooks-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'out');
  await runHook({ path: '/bin/sh', args: ['sh', '-c', `cat > ${out}; echo "$0 $X \${HOME:-none}" >> ${out}`], env: ['X=1'] }, STATE, 'prestart');
  const text = await fs.readFile(out, 'utf8');
  const end = text.lastIndexOf('}') + 1;
  t.deepEqual(JSON.parse(text.slice(0, end)), STATE);
  t.is(text.slice(end), 'sh 1 none\n');
});

test('a failing hook is an error naming the hook, its status and output; the rest do not run', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-hooks-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'second');
  const hooks = [
    { path: '/bin/sh', args: ['sh', '-c', 'echo broken >&2; exit 3'] },
    { path: '/bin/sh', args: ['sh', '-c', `touch ${marker}`] },
  ];
  await t.throwsAsync(runHooksOrFail(hooks, STATE, 'prestart'), { message: 'prestart hook /bin/sh exited with status 3: broken' });
  await t.throwsAsync(fs.access(marker));
  await t.throwsAsync(runHook({ path: '/nonexistent/hook' }, STATE, 'poststop'), { message: /poststop hook \/nonexistent\/hook could not run/ });
});

test('a hook past its timeout is killed; warning hooks report and go on', async (t) => {
  await t.throwsAsync(runHook({ path: '/bin/sh', args: ['sh', '-c', 'sleep 10'], timeout: 1 }, STATE, 'poststart'), { message: /timed out after 1 s/ });
  const warnings: string[] = [];
  await runHooksWarning(
    [
      { path: '/bin/sh', args: ['sh', '-c', 'exit 1'] },
      { path: '/bin/sh', args: ['sh', '-c', 'exit 2'] },
    ],
    { ...STATE, status: 'stopped' },
    'poststop',
    (m) => warnings.push(m),
  );
  t.deepEqual(warnings, ['poststop hook /bin/sh exited with status 1', 'poststop hook /bin/sh exited with status 2']);
});
