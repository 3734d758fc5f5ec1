// BuildImage (issue 18) through the real API server over real mutual TLS on 127.0.0.1, with
// certificates the test CA issues, driven by the real `tsctl build` and by raw gRPC clients that
// send what tsctl never would. mock: the image builder (agent/build/) is on another branch, so the
// server is given a FAKE ImageBuilder that records the context directory it is handed (every
// file's path, type, mode, content digest and link target) and plays back progress, a result or a
// failure. What is real: the header checks, the context streamed as a tar, the cap, the unpacking
// into a fresh directory and its removal, the progress on the wire, tsctl's output and exit code,
// the roles, the audit entry, and cancelling the build when the client goes away.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Header } from 'tar';

import { BuildError, type BuildProgress, type BuildRequest, type BuildResult, type ImageBuilder } from '../../common/build/builder.js';
import type { AuditRecord } from '../../control-plane/api/server.js';
import { connect } from '../../cli/client.js';
import { buildImage, ContextTooLargeError } from '../../cli/build/run-build.js';
import { serveMtlsApi } from '../helpers/mtls-api.js';
import { tsctlWithContext as tsctl, writeUserContext } from '../helpers/tsctl-context.js';
import { apiClient } from '../security/grpc-calls.js';
import type { BuildOutput__Output } from '../../proto/gen/tessera/api/v1/BuildOutput.js';
import type { BuildInput } from '../../proto/gen/tessera/api/v1/BuildInput.js';
import type { TestPki } from '../helpers/test-pki.js';
import type { UserRole } from '../../common/identity/certificate.js';

const MAX_CONTEXT = 2 * 1024 * 1024;
const DIGEST = `sha256:${'1'.repeat(64)}`;

/** Every entry under dir: path, type, mode, content digest or link target; sorted. What "the same context" means here. */
async function treeDigest(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const full = join(e.parentPath, e.name);
    const path = relative(dir, full);
    const mode = ((await lstat(full)).mode & 0o7777).toString(8);
    if (e.isSymbolicLink()) out.push(`l ${path} -> ${await readlink(full)}`);
    else if (e.isDirectory()) out.push(`d ${path} ${mode}`);
    else
      out.push(
        `f ${path} ${mode} ${createHash('sha256')
          .update(await readFile(full))
          .digest('hex')}`,
      );
  }
  return out.sort();
}

type Behaviour = 'succeed' | 'fail-dockerfile' | 'fail-run' | 'wait-for-abort';

/** mock: the real builder is on another branch (h/build-exec). Records what it is handed; plays back a build. */
class FakeBuilder implements ImageBuilder {
  behaviour: Behaviour = 'succeed';
  calls: Array<{ request: BuildRequest; contextDir: string; tree: string[]; dockerfile?: string }> = [];
  aborted: Promise<string> | undefined;

  async build(request: BuildRequest, contextDir: string, onProgress: (event: BuildProgress) => void, signal: AbortSignal): Promise<BuildResult> {
    const dockerfile = request.dockerfileInline ?? (await readFile(join(contextDir, request.dockerfilePath), 'utf8'));
    this.calls.push({ request, contextDir, tree: await treeDigest(contextDir), dockerfile });
    onProgress({ kind: 'step', stage: 'build', step: 1, totalSteps: 2, instruction: 'FROM scratch' });
    onProgress({ kind: 'done', step: 1, durationMs: 5 });
    onProgress({ kind: 'step', stage: 'build', step: 2, totalSteps: 2, instruction: 'COPY . /' });
    onProgress({ kind: 'output', step: 2, line: 'copying the context' });
    if (this.behaviour === 'fail-dockerfile') throw new BuildError('unknown instruction FORM', { file: request.dockerfilePath, line: 3, column: 1 });
    if (this.behaviour === 'fail-run')
      throw new BuildError(
        'RUN make: exit code 2',
        { file: 'Dockerfile', line: 2, column: 1 },
        { exitCode: 2, lastLines: ['cc: error: main.c', 'make: *** Error 1'] },
      );
    if (this.behaviour === 'wait-for-abort') {
      this.aborted = new Promise((resolve) => signal.addEventListener('abort', () => resolve(contextDir), { once: true }));
      await this.aborted;
      throw new Error('aborted');
    }
    onProgress({ kind: 'done', step: 2, durationMs: 7 });
    return { manifestDigest: DIGEST, configDigest: `sha256:${'2'.repeat(64)}`, tags: request.tags, layers: 1, cachedSteps: 0, ranSteps: 2 };
  }
}

interface Fixture {
  pki: TestPki;
  dir: string;
  address: string;
  builder: FakeBuilder;
  audit: AuditRecord[];
  contexts: string;
  context(name: string, role: UserRole): Promise<string>;
}

async function start(t: { teardown(fn: () => Promise<void> | void): void }, withBuilder = true): Promise<Fixture> {
  const builder = new FakeBuilder();
  const audit: AuditRecord[] = [];
  let contexts = '';
  const { pki, dir, address } = await serveMtlsApi(t, {
    prefix: 'tessera-build-api-',
    deps: ({ dir }) => {
      contexts = join(dir, 'build-contexts');
      return {
        ...(withBuilder ? { imageBuilder: builder } : {}),
        buildContextDir: contexts,
        buildContextMaxBytes: MAX_CONTEXT,
        selfNode: 'm1',
        audit: (record) => audit.push(record),
      };
    },
  });
  return { pki, dir, address, builder, audit, contexts, context: (name, role) => writeUserContext({ pki, dir, address }, name, role) };
}

/** A project directory with a .dockerignore, a subdirectory, an executable, a symlink and an ignored file. */
async function project(dir: string): Promise<string> {
  const root = join(dir, 'project');
  await mkdir(join(root, 'src/lib'), { recursive: true });
  await writeFile(join(root, 'Dockerfile'), 'FROM scratch\nCOPY . /\n');
  await writeFile(join(root, '.dockerignore'), 'secret.env\n*.log\n');
  await writeFile(join(root, 'secret.env'), 'TOKEN=do-not-send');
  await writeFile(join(root, 'debug.log'), 'noise');
  await writeFile(join(root, 'src/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await writeFile(join(root, 'src/lib/data.bin'), Buffer.alloc(200_000, 3));
  await symlink('lib/data.bin', join(root, 'src/data'));
  return root;
}

async function contextsLeft(f: Fixture): Promise<string[]> {
  return readdir(f.contexts).catch(() => []);
}

test('tsctl build as an operator: the context arrives intact without what .dockerignore leaves out, progress and the digest come back', async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  const operator = await f.context('olga', 'operator');
  const out = await tsctl(operator, ['build', '-t', 'app:1', '-t', 'app:latest', '--build-arg', 'V=2', '--label', 'team=a', '--progress', 'plain', root]);
  t.is(out.code, 0, out.stderr);
  t.is(out.stdout, `${DIGEST}\ntagged app:1\ntagged app:latest\n1 layers; 2 steps run, 0 from the cache\n`);
  t.regex(out.stderr, /#0 building on node m1\n/);
  t.regex(out.stderr, /#2 \[build 2\/2\] COPY \. \/\n#2 copying the context\n#2 DONE 0\.0s\n/);
  t.is(f.builder.calls.length, 1);
  const call = f.builder.calls[0]!;
  const expected = (await treeDigest(root)).filter((e) => !e.includes('secret.env') && !e.includes('debug.log'));
  t.deepEqual(call.tree, expected);
  t.deepEqual(call.request, {
    tags: ['app:1', 'app:latest'],
    dockerfilePath: 'Dockerfile',
    buildArgs: { V: '2' },
    noCache: false,
    labels: { team: 'a' },
    compression: 'gzip',
    push: false,
  });
  t.deepEqual(await contextsLeft(f), [], 'the context directory is removed');
  const entry = f.audit.find((r) => r.method === 'BuildImage');
  t.is(entry?.error, undefined);
  t.deepEqual((entry?.request as { tags?: string[] } | undefined)?.tags, ['app:1', 'app:latest']);
});

test('a viewer is refused before anything is sent or built', async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  const out = await tsctl(await f.context('vera', 'viewer'), ['build', '-t', 'app:1', root]);
  t.is(out.code, 1);
  t.regex(out.stderr, /permission denied: user:vera \(viewer\) may not call BuildImage: viewers have read-only access/);
  t.is(f.builder.calls.length, 0);
  t.regex(String((f.audit.find((r) => r.method === 'BuildImage')?.error as Error | undefined)?.message), /may not call BuildImage/);
});

test('a Dockerfile error exits 1 with file:line:col; a failing RUN shows its last lines; the context is removed', async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  const operator = await f.context('olga', 'operator');
  f.builder.behaviour = 'fail-dockerfile';
  const bad = await tsctl(operator, ['build', '-t', 'app:1', '--progress', 'plain', root]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /error: Dockerfile:3:1: unknown instruction FORM\n$/);
  f.builder.behaviour = 'fail-run';
  const run = await tsctl(operator, ['build', '-t', 'app:1', '-q', root]);
  t.is(run.code, 1);
  t.is(run.stdout, '');
  t.is(run.stderr, '  | cc: error: main.c\n  | make: *** Error 1\nerror: Dockerfile:2:1: RUN make: exit code 2 (exit code 2)\n');
  t.deepEqual(await contextsLeft(f), []);
});

test('-f outside the context sends the Dockerfile inline; -f inside sends its path', async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  await writeFile(join(f.dir, 'other.Dockerfile'), 'FROM scratch\nLABEL other=1\n');
  await mkdir(join(root, 'docker'));
  await writeFile(join(root, 'docker/app.Dockerfile'), 'FROM scratch\n');
  const operator = await f.context('olga', 'operator');
  t.is((await tsctl(operator, ['build', '-t', 'app:1', '-f', join(f.dir, 'other.Dockerfile'), root])).code, 0);
  t.is(f.builder.calls[0]?.request.dockerfileInline, 'FROM scratch\nLABEL other=1\n');
  t.is((await tsctl(operator, ['build', '-t', 'app:1', '-f', join(root, 'docker/app.Dockerfile'), root])).code, 0);
  t.is(f.builder.calls[1]?.request.dockerfilePath, 'docker/app.Dockerfile');
  t.is(f.builder.calls[1]?.dockerfile, 'FROM scratch\n');
});

test("a context over the manager's cap is refused before any of it is sent, naming the context, the cap and where the bytes are", async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  await mkdir(join(root, 'assets'));
  await writeFile(join(root, 'assets/video.bin'), Buffer.alloc(MAX_CONTEXT, 1));
  const client = connect(f.address, await f.pki.user('olga', 'operator'));
  t.teardown(() => client.close());
  const request: BuildRequest = { tags: ['app:1'], dockerfilePath: 'Dockerfile', buildArgs: {}, noCache: false, labels: {}, compression: 'gzip', push: false };
  const err = await t.throwsAsync(
    buildImage(client, request, root, () => {}),
    { instanceOf: ContextTooLargeError },
  );
  t.regex(
    err.message,
    new RegExp(
      `build context ${root} is 2\\.2 MiB as a tar, more than the 2\\.0 MiB node m1 accepts; the largest parts: assets/ 2\\.0 MiB, src/ 195\\.3 KiB, Dockerfile 22 B; leave files out with \\.dockerignore$`,
    ),
  );
  t.is(f.builder.calls.length, 0);
});

/** A raw BuildImage call: sends `messages`, resolves with what came back and the status it ended with. */
function rawBuild(
  f: Fixture,
  messages: BuildInput[],
  role: UserRole = 'operator',
): Promise<{ received: BuildOutput__Output[]; status: grpc.status; details: string }> {
  return f.pki.user('rex', role).then(
    (identity) =>
      new Promise((resolve) => {
        const client = apiClient(f.address, identity);
        const call = client.buildImage();
        const received: BuildOutput__Output[] = [];
        call.on('data', (m: BuildOutput__Output) => received.push(m));
        call.on('error', (err: grpc.ServiceError) => {
          client.close();
          resolve({ received, status: err.code, details: err.details });
        });
        call.on('end', () => {
          client.close();
          resolve({ received, status: grpc.status.OK, details: '' });
        });
        for (const m of messages) call.write(m);
        call.end();
      }),
  );
}

const HEADER = { tags: ['app:1'], dockerfilePath: 'Dockerfile' };

test('a client that says its context is small and sends more is cut off at the cap, and nothing stays on disk', async (t) => {
  const f = await start(t);
  // A valid tar that promises an 8 GiB file, then keeps sending its bytes.
  const tarHeader = Buffer.alloc(512);
  new Header({ path: 'huge.bin', type: 'File', size: 8 * 1024 ** 3, mode: 0o644 }).encode(tarHeader, 0);
  const chunk = Buffer.alloc(1024 * 1024, 0x41);
  const answer = await rawBuild(f, [
    { header: { ...HEADER, contextBytes: 10 } },
    { context: tarHeader },
    { context: chunk },
    { context: chunk },
    { context: chunk },
    { contextEnd: true },
  ]);
  t.is(answer.status, grpc.status.INVALID_ARGUMENT);
  t.is(answer.details, 'build context: more than the 2097152 bytes (2.0 MiB) this manager accepts');
  t.deepEqual(await contextsLeft(f), []);
  t.is(f.builder.calls.length, 0);
  // Said up front, it is refused before the context.
  const upfront = await rawBuild(f, [{ header: { ...HEADER, contextBytes: MAX_CONTEXT + 1 } }]);
  t.is(upfront.status, grpc.status.INVALID_ARGUMENT);
  t.is(upfront.details, `build: the context is ${MAX_CONTEXT + 1} bytes, more than the ${MAX_CONTEXT} node m1 accepts`);
});

test('the server refuses bad streams by name: no header first, oversized chunks, a context without its Dockerfile, a bad header', async (t) => {
  const f = await start(t);
  const noHeader = await rawBuild(f, [{ context: Buffer.alloc(512) }]);
  t.is(noHeader.details, 'build: the first message must be the header');
  const big = await rawBuild(f, [{ header: HEADER }, { context: Buffer.alloc(1024 * 1024 + 1) }]);
  t.is(big.status, grpc.status.INVALID_ARGUMENT);
  const unfinished = await rawBuild(f, [{ header: HEADER }, { context: Buffer.alloc(1024) }]);
  t.is(unfinished.details, 'build: the stream ended before the context was complete (no context_end)');
  const noDockerfile = await rawBuild(f, [{ header: HEADER }, { context: Buffer.alloc(1024) }, { contextEnd: true }]);
  t.is(noDockerfile.details, 'build: the context has no Dockerfile "Dockerfile"');
  t.true(noDockerfile.received.some((m) => m.accepted?.maxContextBytes === MAX_CONTEXT));
  const badHeader = await rawBuild(f, [{ header: { tags: ['UPPER/Case'], dockerfilePath: '../x' } }]);
  t.regex(badHeader.details, /^build: tag: invalid image reference "UPPER\/Case".*; Dockerfile \(-f\): the path "\.\.\/x" has "\.\." in it/);
  t.is(f.builder.calls.length, 0);
  t.deepEqual(await contextsLeft(f), []);
});

test('a client that goes away cancels the build, and the context is removed', async (t) => {
  const f = await start(t);
  const root = await project(f.dir);
  f.builder.behaviour = 'wait-for-abort';
  const client = connect(f.address, await f.pki.user('olga', 'operator'));
  t.teardown(() => client.close());
  const request: BuildRequest = { tags: ['app:1'], dockerfilePath: 'Dockerfile', buildArgs: {}, noCache: false, labels: {}, compression: 'gzip', push: false };
  const interrupt = new AbortController();
  const running = buildImage(
    client,
    request,
    root,
    (event) => {
      if (event.kind === 'output') interrupt.abort(new Error('interrupted'));
    },
    interrupt.signal,
  );
  await t.throwsAsync(running, { message: 'interrupted' });
  const contextDir = await f.builder.aborted;
  t.truthy(contextDir);
  // The handler removes the directory once the builder has returned.
  for (let i = 0; i < 50 && (await contextsLeft(f)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(await contextsLeft(f), []);
});

test('without a builder the call is UNIMPLEMENTED, said plainly', async (t) => {
  const f = await start(t, false);
  const root = await project(f.dir);
  const out = await tsctl(await f.context('olga', 'operator'), ['build', '-t', 'app:1', root]);
  t.is(out.code, 1);
  t.regex(out.stderr, /error: image builds are not available on this node\n$/);
});
