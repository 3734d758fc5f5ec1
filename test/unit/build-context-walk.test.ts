// What tsctl sends of a build context (issue 18): .dockerignore as Docker's CLI applies it (root-
// anchored patterns, `**`, `!` exceptions and Docker's rule that an ignored directory is entered
// only when an exception names a way into it), the Dockerfile and .dockerignore sent even when
// ignored, special files and escaping links refused by name; and the tar it streams, unpacked by
// the manager's own unpacker, gives back exactly the files chosen. Real directories and real tar.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';

import { contextTar, messagesOf } from '../../cli/build/context-tar.js';
import { exceptionPatterns, largestEntries, tarBytesOf, walkContext, ContextWalkError } from '../../cli/build/context-walk.js';
import { unpackContext } from '../../control-plane/build/context-unpack.js';

const run = promisify(execFile);

async function contextWith(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-walk-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** Every entry under dir: its relative path, its type, a symlink's target. */
async function treeOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = relative(dir, join(e.parentPath, e.name));
    out.push(e.isSymbolicLink() ? `${path} -> ${await readlink(join(dir, path))}` : `${path} ${e.isDirectory() ? 'dir' : 'file'}`);
  }
  return out.sort();
}

async function sentPaths(dir: string, alwaysSend: string[] = []): Promise<string[]> {
  return (await walkContext(dir, alwaysSend)).entries.map((e) => (e.kind === 'directory' ? `${e.path}/` : e.path));
}

test('patterns are anchored at the context root; ** reaches every level', async (t) => {
  const dir = await contextWith(t, {
    '.dockerignore': '# comment\n*.log\n**/*.tmp\n',
    Dockerfile: 'FROM scratch',
    'a.log': '',
    'a.tmp': '',
    'sub/b.log': '',
    'sub/b.tmp': '',
    'sub/deep/c.tmp': '',
  });
  t.deepEqual(await sentPaths(dir), ['.dockerignore', 'Dockerfile', 'sub/', 'sub/b.log', 'sub/deep/']);
});

test('an exception brings back a file under an ignored directory, which is itself not sent', async (t) => {
  const dir = await contextWith(t, {
    '.dockerignore': 'node_modules\n!node_modules/keep/index.js\n',
    Dockerfile: '',
    'node_modules/keep/index.js': 'kept',
    'node_modules/keep/other.js': '',
    'node_modules/left/index.js': '',
  });
  t.deepEqual(await sentPaths(dir), ['.dockerignore', 'Dockerfile', 'node_modules/keep/index.js']);
});

test("Docker's rule: an ignored directory is not entered for an exception that does not start with its path", async (t) => {
  const dir = await contextWith(t, {
    '.dockerignore': 'docs\n!**/README.md\n',
    Dockerfile: '',
    'README.md': '',
    'docs/README.md': '',
    'src/README.md': '',
  });
  // docs/README.md would match the exception, but Docker never looks inside docs/.
  t.deepEqual(await sentPaths(dir), ['.dockerignore', 'Dockerfile', 'README.md', 'src/', 'src/README.md']);
  t.deepEqual(exceptionPatterns(['!**/README.md', '!/a/./b/', 'c']), ['**/README.md', 'a/b']);
});

test('the Dockerfile and .dockerignore are sent even when ignored, also from an ignored directory', async (t) => {
  const dir = await contextWith(t, {
    '.dockerignore': '*\n',
    Dockerfile: 'FROM scratch',
    'build/app.Dockerfile': 'FROM scratch',
    'src/main.c': '',
  });
  t.deepEqual(await sentPaths(dir, ['Dockerfile']), ['.dockerignore', 'Dockerfile']);
  t.deepEqual(await sentPaths(dir, ['build/app.Dockerfile']), ['.dockerignore', 'build/app.Dockerfile']);
});

test('special files and links out of the context are refused, naming the file and .dockerignore', async (t) => {
  const dir = await contextWith(t, { Dockerfile: '' });
  await symlink('/etc/passwd', join(dir, 'passwd'));
  const err = await t.throwsAsync(walkContext(dir), { instanceOf: ContextWalkError });
  t.regex(err.message, /passwd is a symlink to the absolute path \/etc\/passwd.*\.dockerignore/);
  await writeFile(join(dir, '.dockerignore'), 'passwd\n');
  t.deepEqual(await sentPaths(dir), ['.dockerignore', 'Dockerfile']);
  await run('mkfifo', [join(dir, 'pipe')]);
  await t.throwsAsync(walkContext(dir), { instanceOf: ContextWalkError, message: /pipe is a FIFO/ });
});

test('the tar sent unpacks on the manager to exactly the files chosen; its size is known before it is made', async (t) => {
  const dir = await contextWith(t, {
    '.dockerignore': 'secret.txt\n',
    Dockerfile: 'FROM scratch\nCOPY . /\n',
    'secret.txt': 'not sent',
    'src/app.js': 'console.log(1)\n'.repeat(5000),
    [`src/${'long-name-'.repeat(12)}.js`]: 'x',
    '@scoped/pkg.json': '{}',
  });
  await symlink('app.js', join(dir, 'src/current.js'));
  const walked = await walkContext(dir, ['Dockerfile']);
  const chunks: Buffer[] = [];
  for await (const chunk of contextTar(dir, walked.entries)) chunks.push(chunk);
  const tar = Buffer.concat(chunks);
  t.true(chunks.every((c) => c.length <= 1024 * 1024));
  t.is(tarBytesOf(walked.entries), tar.length);
  const target = await mkdtemp(join(tmpdir(), 'tessera-walk-unpacked-'));
  t.teardown(() => rm(target, { recursive: true, force: true }));
  async function* replay() {
    yield* chunks;
  }
  await unpackContext(replay(), target, { maxBytes: 64 * 1024 * 1024, maxEntries: 100 });
  t.deepEqual(
    await treeOf(target),
    (await treeOf(dir)).filter((p) => !p.startsWith('secret.txt')),
  );
  t.is(await readFile(join(target, 'src/app.js'), 'utf8'), await readFile(join(dir, 'src/app.js'), 'utf8'));
});

test('the largest parts of a context are totalled per top-level entry', (t) => {
  t.deepEqual(
    largestEntries(
      [
        { path: 'node_modules', kind: 'directory', size: 0 },
        { path: 'node_modules/a', kind: 'file', size: 700 },
        { path: 'node_modules/b/c', kind: 'file', size: 500 },
        { path: 'big.iso', kind: 'file', size: 1000 },
        { path: 'small', kind: 'file', size: 1 },
      ],
      2,
    ),
    [
      { path: 'node_modules/', bytes: 1200 },
      { path: 'big.iso', bytes: 1000 },
    ],
  );
});

test('messages are cut at the chunk limit and small pieces gathered', async (t) => {
  async function* pieces() {
    yield Buffer.alloc(10);
    yield Buffer.alloc(2500);
    yield Buffer.alloc(10);
  }
  const sizes: number[] = [];
  for await (const m of messagesOf(pieces(), 1000)) sizes.push(m.length);
  t.true(sizes.every((s) => s <= 1000));
  t.is(
    sizes.reduce((a, b) => a + b, 0),
    2520,
  );
});
