// A build request's checks (issue 18): the header the manager receives (parseBuildHeader, which
// tsctl's local check shares), each limit named in its refusal; and tsctl's flags turned into a
// request (build args from the environment, labels, where the Dockerfile comes from). Pure, but
// for dockerfileOf's reading of a real file outside a real context.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseBuildHeader } from '../../control-plane/api/build-stream.js';
import { ApiError } from '../../control-plane/api/errors.js';
import { BUILD_LIMITS, buildRequestProblems, contextPathParts } from '../../common/build/request-limits.js';
import type { BuildHeader__Output } from '../../proto/gen/tessera/api/v1/BuildHeader.js';
import { dockerfileOf, failureText, parseBuildArgs, parseLabels } from '../../cli/commands/build.js';
import { BuildError } from '../../common/build/builder.js';

function header(overrides: Partial<BuildHeader__Output> = {}): BuildHeader__Output {
  return {
    tags: ['app:1'],
    dockerfilePath: '',
    dockerfileInline: '',
    buildArgs: {},
    target: '',
    noCache: false,
    labels: {},
    compression: '',
    push: false,
    contextBytes: 0,
    ...overrides,
  };
}

/** The INVALID_ARGUMENT message parseBuildHeader refuses `h` with. */
function refusal(t: { throws: (fn: () => unknown, e?: object) => unknown }, h: BuildHeader__Output): string {
  const err = t.throws(() => parseBuildHeader(h), { instanceOf: ApiError }) as ApiError;
  if (err.code !== grpc.status.INVALID_ARGUMENT) throw new Error(`code ${err.code}`);
  return err.message;
}

test('a plain header becomes the request with docker build’s defaults', (t) => {
  t.deepEqual(parseBuildHeader(header({ tags: ['127.0.0.1:5000/app:1', 'app:1'], buildArgs: { V: '1' }, target: 'build', push: true })), {
    tags: ['127.0.0.1:5000/app:1', 'app:1'],
    dockerfilePath: 'Dockerfile',
    buildArgs: { V: '1' },
    target: 'build',
    noCache: false,
    labels: {},
    compression: 'gzip',
    push: true,
  });
  const inline = parseBuildHeader(header({ dockerfilePath: '../elsewhere/Dockerfile', dockerfileInline: 'FROM scratch\n', compression: 'zstd' }));
  t.is(inline.dockerfileInline, 'FROM scratch\n');
  t.is(inline.compression, 'zstd');
});

test('tags: at least one, each a valid reference without digest, at most 16; --push needs a registry', (t) => {
  t.regex(refusal(t, header({ tags: [] })), /no tag: give the image a name with -t/);
  t.regex(refusal(t, header({ tags: ['Bad Name'] })), /tag: invalid image reference "Bad Name"/);
  t.regex(refusal(t, header({ tags: [`app@sha256:${'a'.repeat(64)}`] })), /named by a tag, not a digest/);
  t.regex(refusal(t, header({ tags: Array.from({ length: 17 }, (_, i) => `a:${i}`) })), /17 tags; at most 16/);
  t.regex(refusal(t, header({ tags: ['app:1'], push: true })), /--push: the first tag "app:1" names no registry/);
});

test('the Dockerfile path is relative and stays inside the context', (t) => {
  t.regex(refusal(t, header({ dockerfilePath: '/etc/Dockerfile' })), /absolute path "\/etc\/Dockerfile"/);
  t.regex(refusal(t, header({ dockerfilePath: '../Dockerfile' })), /has "\.\." in it/);
  t.regex(refusal(t, header({ dockerfilePath: 'a/../../Dockerfile' })), /has "\.\." in it/);
  t.regex(refusal(t, header({ dockerfilePath: './' })), /names the context itself/);
  t.regex(refusal(t, header({ dockerfilePath: 'x'.repeat(5000) })), /longer than 4096 bytes/);
  t.deepEqual(contextPathParts('./docker//app.Dockerfile'), { parts: ['docker', 'app.Dockerfile'] });
  t.regex(
    refusal(t, header({ dockerfileInline: 'x'.repeat(BUILD_LIMITS.maxInlineDockerfileBytes + 1) })),
    /inline Dockerfile is 1048577 bytes; at most 1048576/,
  );
});

test('build args and labels: names, counts and sizes, every limit said', (t) => {
  t.regex(refusal(t, header({ buildArgs: { '1BAD': 'x' } })), /build arg "1BAD": not a name/);
  t.regex(refusal(t, header({ buildArgs: { OK: 'x'.repeat(64 * 1024 + 1) } })), /build arg "OK": the value is longer than 65536 bytes/);
  const manyArgs = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`A${i}`, '']));
  t.regex(refusal(t, header({ buildArgs: manyArgs })), /257 build args; at most 256/);
  const bigArgs = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`A${i}`, 'v'.repeat(60 * 1024)]));
  t.regex(refusal(t, header({ buildArgs: bigArgs })), /the build args are \d+ bytes together; at most 1048576/);
  t.regex(refusal(t, header({ labels: { '': 'x' } })), /label "": an empty name/);
  t.regex(refusal(t, header({ labels: { 'a\nb': 'x' } })), /control characters in the name/);
  const bigLabels = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`l${i}`, 'v'.repeat(60 * 1024)]));
  t.regex(refusal(t, header({ labels: bigLabels })), /the labels are \d+ bytes together; at most 262144/);
});

test('target and compression are checked; every problem of a header is said at once', (t) => {
  t.regex(refusal(t, header({ target: 'not a stage' })), /--target "not a stage" is not a stage name/);
  t.regex(refusal(t, header({ compression: 'xz' })), /compression "xz": gzip or zstd/);
  const all = refusal(t, header({ tags: [], dockerfilePath: '/x', compression: 'lz4' }));
  t.regex(all, /no tag.*absolute path.*compression "lz4"/);
  t.deepEqual(buildRequestProblems(parseBuildHeader(header())), []);
});

test('--build-arg KEY takes $KEY, or nothing when it is unset; --label KEY is an empty label', (t) => {
  t.deepEqual(parseBuildArgs(['A=1', 'B', 'C', 'D=x=y'], { B: 'from-env' }), { A: '1', B: 'from-env', D: 'x=y' });
  t.throws(() => parseBuildArgs(['=1'], {}), { message: /expected KEY=VALUE or KEY/ });
  t.deepEqual(parseLabels(['a=1', 'b', 'c=']), { a: '1', b: '', c: '' });
});

test('-f inside the context is a path in it; outside it, or -, its text is sent inline', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'tessera-dockerfile-of-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await mkdir(join(base, 'ctx/docker'), { recursive: true });
  await writeFile(join(base, 'ctx/docker/app.Dockerfile'), 'FROM a');
  await writeFile(join(base, 'outside.Dockerfile'), 'FROM b');
  const noStdin = () => Promise.reject(new Error('stdin read'));
  t.deepEqual(await dockerfileOf(undefined, 'ctx', base, noStdin), { dockerfilePath: 'Dockerfile' });
  t.deepEqual(await dockerfileOf('ctx/docker/app.Dockerfile', 'ctx', base, noStdin), { dockerfilePath: 'docker/app.Dockerfile' });
  t.deepEqual(await dockerfileOf('outside.Dockerfile', 'ctx', base, noStdin), { dockerfilePath: 'outside.Dockerfile', dockerfileInline: 'FROM b' });
  t.deepEqual(await dockerfileOf('-', 'ctx', base, () => Promise.resolve('FROM c')), { dockerfilePath: '-', dockerfileInline: 'FROM c' });
  await t.throwsAsync(dockerfileOf('missing', 'ctx', base, noStdin), { message: '-f missing: no such file' });
});

test("a failure reads with the RUN's last lines first, then file:line:col", (t) => {
  const err = new BuildError(
    'RUN make: exit code 2',
    { file: 'Dockerfile', line: 3, column: 1 },
    { exitCode: 2, lastLines: ['cc: error', 'make: *** [all] Error 1'] },
  );
  t.is(failureText(err), '  | cc: error\n  | make: *** [all] Error 1\nerror: Dockerfile:3:1: RUN make: exit code 2 (exit code 2)\n');
  t.is(failureText(new Error('plain')), 'error: plain\n');
});
