// The CLI tells "absent" from "failed" where it reads files: a missing file is an answer, any other
// error (a directory where a file goes, a symlink loop) is reported as what it is.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { readContext } from '../../cli/context.js';
import { copyLogs } from '../helpers/cluster-logs.js';

const run = promisify(execFile);
const TSCTL = new URL('../../cli/main.ts', import.meta.url).pathname;

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cli-absent-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs readContext with TESSERA_CONTEXT pointing at `path`, restoring the variable after. */
async function readContextAt(path: string): Promise<unknown> {
  const before = process.env['TESSERA_CONTEXT'];
  process.env['TESSERA_CONTEXT'] = path;
  try {
    return await readContext();
  } finally {
    if (before === undefined) delete process.env['TESSERA_CONTEXT'];
    else process.env['TESSERA_CONTEXT'] = before;
  }
}

test.serial('a missing context file means no context; an unreadable one is an error naming it', async (t) => {
  const dir = await scratch(t);
  t.is(await readContextAt(join(dir, 'none.json')), undefined);
  const unreadable = join(dir, 'context.json');
  await mkdir(unreadable); // a directory: EISDIR, not "no context"
  const err = await t.throwsAsync(readContextAt(unreadable));
  t.true(err.message.startsWith(`${unreadable}: cannot read the tsctl context`), err.message);
});

test('tsctl image load: a missing file, a directory and a symlink loop each get their own error', async (t) => {
  const dir = await scratch(t);
  const loop = join(dir, 'loop.tar');
  await symlink(loop, loop);
  const failure = async (file: string): Promise<string> => {
    const err = await t.throwsAsync(run(process.execPath, ['--import', 'tsx', TSCTL, '--server', 'unix:/nonexistent', 'image', 'load', file]));
    return (err as Error & { stderr: string }).stderr;
  };
  t.regex(await failure(join(dir, 'missing.tar')), /missing\.tar: no such file/);
  t.regex(await failure(dir), /: not a file/);
  const looped = await failure(loop);
  t.regex(looped, /ELOOP/, 'a symlink loop is not "no such file"');
  t.notRegex(looped, /no such file/);
});

test.serial('copyLogs skips a missing log and reports one it could not copy, copying the rest', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, 'good.log'), 'hello\n');
  await mkdir(join(dir, 'dir.log')); // copyFile of a directory fails
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    await copyLogs(join(dir, 'kept'), [
      { path: join(dir, 'missing.log'), name: 'missing.log' },
      { path: join(dir, 'dir.log'), name: 'dir.log' },
      { path: join(dir, 'good.log'), name: 'good.log' },
    ]);
  } finally {
    process.stderr.write = write;
  }
  t.is(await readFile(join(dir, 'kept', 'good.log'), 'utf8'), 'hello\n');
  t.is(written.length, 1, written.join(''));
  t.regex(written[0] ?? '', /could not keep .*dir\.log/);
});
