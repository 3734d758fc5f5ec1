// Compose `build:` (issue 18), on real files in a temp dir: every form of build: (the short string,
// the mapping; args and labels as lists and mappings, interpolated, "KEY" taking this machine's
// value) becomes a build job with the request the builder gets; everything a Tessera build cannot
// do is refused by name at its file:line:col; services with the same build share one job; the
// dry-run table; and what `stack deploy` does with the jobs (check inputs, build one at a time, pin
// the digest, stop at a failed build) through a stand-in builder — the real one streams the context
// to a manager over the Build RPC (cli/build/ on another branch), which a unit test cannot run.

import test from 'ava';
import { Command } from 'commander';
import { parse } from 'yaml';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCompose, type ComposeProject, type LoadComposeOptions } from '../../cli/compose/load.js';
import { ManifestError } from '../../cli/manifest/errors.js';
import { pinnedReference, type ComposeBuildJob } from '../../cli/compose/build-plan.js';
import { buildStackImages, prepareBuilds, type RunBuild } from '../../cli/compose/build-run.js';
import { renderBuildPlan } from '../../cli/compose/build-table.js';
import { registerStackCommands } from '../../cli/commands/stack.js';
import { BuildError, type BuildRequest, type BuildResult } from '../../common/build/builder.js';
import type { Service, StackObject } from '../../common/resources/types.js';

interface Project {
  root: string;
  dir: string;
  path: (name: string) => string;
  cleanup: () => void;
}

/** A temp dir holding the project directory "proj" (the files given) and a directory "other" beside it. */
function project(files: Record<string, string>): Project {
  const root = mkdtempSync(join(tmpdir(), 'tessera-compose-build-'));
  const dir = join(root, 'proj');
  mkdirSync(dir);
  mkdirSync(join(root, 'other'));
  writeFileSync(join(root, 'other', 'Dockerfile'), 'FROM busybox\n');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return { root, dir, path: (name) => join(dir, name), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

function withProject<T>(files: Record<string, string>, fn: (p: Project) => T): T {
  const p = project(files);
  try {
    return fn(p);
  } finally {
    p.cleanup();
  }
}

function loadIn(p: Project, options: Partial<LoadComposeOptions> = {}, files = ['compose.yaml']): ComposeProject {
  return loadCompose(
    files.map((f) => p.path(f)),
    { env: {}, projectName: 'shop', ...options },
  );
}

function load(files: Record<string, string>, options: Partial<LoadComposeOptions> = {}): { project: ComposeProject; dir: string } {
  return withProject(files, (p) => ({ project: loadIn(p, options), dir: p.dir }));
}

/** The error lines, "compose.yaml:L:C: path: message", with the temp dir cut off. */
function refusal(files: Record<string, string>, options: Partial<LoadComposeOptions> = {}): string[] {
  return withProject(files, (p) => {
    try {
      loadIn(p, options);
    } catch (error) {
      if (error instanceof ManifestError) return error.message.split('\n').map((line) => line.replace(`${p.dir}/`, ''));
      throw error;
    }
    throw new Error('expected the project to be refused');
  });
}

const compose = (service: string) => ({ 'compose.yaml': `services:\n  web:\n${service}` });

function serviceOf(objects: readonly StackObject[], name: string): Service {
  const found = objects.find((o): o is Service => o.kind === 'Service' && o.metadata.name === name);
  if (!found) throw new Error(`no service ${name}`);
  return found;
}

function onlyJob(p: ComposeProject): ComposeBuildJob {
  if (p.builds.length !== 1 || !p.builds[0]) throw new Error(`expected one build job, got ${p.builds.length}`);
  return p.builds[0];
}

// ---- the forms of build: ----

test('build: DIR (short form): context relative to the project, Dockerfile in it, image <stack>-<service>', (t) => {
  const { project: p, dir } = load(compose('    build: ./web\n'));
  const job = onlyJob(p);
  t.is(job.context, './web');
  t.is(job.contextDir, join(dir, 'web'));
  t.deepEqual(job.services, ['web']);
  t.deepEqual(job.request, { tags: ['shop-web'], dockerfilePath: 'Dockerfile', buildArgs: {}, noCache: false, labels: {}, compression: 'gzip', push: false });
  t.is(serviceOf(p.objects, 'web').spec.image, 'shop-web');
});

test('build: {...} (long form): dockerfile relative to the context, target, labels, tags, no_cache', (t) => {
  const { project: p, dir } = load(
    compose(`    image: registry.local:5000/web:2
    build:
      context: app
      dockerfile: docker/Dockerfile.prod
      target: prod
      labels: [team=shop, tier]
      tags: [web:latest, registry.local:5000/web:2]
      no_cache: "true"
`),
  );
  const job = onlyJob(p);
  t.is(job.contextDir, join(dir, 'app'));
  t.deepEqual(job.request, {
    tags: ['registry.local:5000/web:2', 'web:latest'],
    dockerfilePath: 'docker/Dockerfile.prod',
    buildArgs: {},
    target: 'prod',
    noCache: true,
    labels: { team: 'shop', tier: '' },
    compression: 'gzip',
    push: false,
  });
  // With image: the build produces that reference, as `docker compose up --build` does.
  t.is(serviceOf(p.objects, 'web').spec.image, 'registry.local:5000/web:2');
});

test('build args: list and mapping forms, interpolated; a key without a value takes this machine’s value, or is left to the Dockerfile', (t) => {
  const files = {
    ...compose(`    build:
      context: .
      args:
        - VERSION=\${TAG:-1.0}
        - FROM_ENV
        - FROM_DOTENV
        - UNSET
`),
    '.env': 'FROM_DOTENV=dot\nTAG=2.0\n',
  };
  t.deepEqual(onlyJob(load(files, { env: { FROM_ENV: 'shell' } }).project).request.buildArgs, { VERSION: '2.0', FROM_ENV: 'shell', FROM_DOTENV: 'dot' });
  const mapping = load(compose('    build:\n      context: .\n      args: {A: 1, B: "x y", C: null, D: ""}\n'), { env: { C: 'c' } }).project;
  t.deepEqual(onlyJob(mapping).request.buildArgs, { A: '1', B: 'x y', C: 'c', D: '' });
});

test('dockerfile_inline is sent as the Dockerfile; with dockerfile too it is an error at the key', (t) => {
  const job = onlyJob(load(compose('    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox\n        RUN echo hi\n')).project);
  t.is(job.request.dockerfileInline, 'FROM busybox\nRUN echo hi\n');
  t.is(job.request.dockerfilePath, 'Dockerfile');
  t.deepEqual(refusal(compose('    build:\n      context: .\n      dockerfile: D\n      dockerfile_inline: "FROM busybox"\n')), [
    'compose.yaml:6:7: services.web.build.dockerfile_inline: dockerfile and dockerfile_inline cannot both be set: keep one',
  ]);
});

test('a Dockerfile outside the context is read when building and sent inline; outside the project only with --allow-outside-files', (t) => {
  const { project: p, dir } = load(compose('    build: {context: app, dockerfile: ../Dockerfile.web}\n'));
  const job = onlyJob(p);
  t.is(job.dockerfileFile, join(dir, 'Dockerfile.web'));
  t.is(job.request.dockerfilePath, '../Dockerfile.web');
  const outside = refusal(compose('    build: {context: ., dockerfile: ../other/Dockerfile}\n'));
  t.is(outside.length, 1);
  t.regex(
    outside[0] ?? '',
    /^compose\.yaml:3:25: services\.web\.build\.dockerfile: dockerfile "\.\.\/other\/Dockerfile" is \/.*\/other\/Dockerfile, outside the project directory .*--allow-outside-files/,
  );
  t.notThrows(() => load(compose('    build: {context: ., dockerfile: ../other/Dockerfile}\n'), { allowOutsideFiles: true }));
});

test('a context outside the project directory is refused unless --allow-outside-files, as secret files are', (t) => {
  const lines = refusal(compose('    build: ../other\n'));
  t.is(lines.length, 1);
  t.regex(
    lines[0] ?? '',
    /^compose\.yaml:3:5: services\.web\.build\.context: context "\.\.\/other" is .*\/other, outside the project directory .*--allow-outside-files/,
  );
  withProject(compose('    build: ../other\n'), (p) => {
    const job = onlyJob(loadIn(p, { allowOutsideFiles: true }));
    t.is(job.contextDir, join(p.root, 'other'));
  });
});

test('a URL or Git context is refused by name at the context key', (t) => {
  for (const context of [
    'https://github.com/docker/awesome-compose.git#master:flask',
    'git@github.com:docker/app.git',
    'github.com/docker/app',
    'git://host/app.git',
  ]) {
    const lines = refusal(compose(`    build:\n      context: "${context}"\n`));
    t.deepEqual(
      lines,
      [
        `compose.yaml:4:7: services.web.build.context: context ${JSON.stringify(context)} is a URL or a Git repository, which is not supported: clone or download it and give the local directory`,
      ],
      context,
    );
  }
});

// ---- refused and warned keys ----

test('ssh, secrets and the other build keys a Tessera build cannot honour are refused by name, at file:line:col', (t) => {
  const lines = refusal(
    compose(`    build:
      context: .
      ssh: [default]
      secrets: [token]
      cache_to: ["type=local,dest=/tmp/c"]
      additional_contexts: {base: ../base}
      privileged: true
      shm_size: 2g
      extra_hosts: ["a:1.2.3.4"]
      entitlements: [network.host]
      ulimits: {nofile: 1024}
      isolation: default
`),
  );
  const keys = ['ssh', 'secrets', 'cache_to', 'additional_contexts', 'privileged', 'shm_size', 'extra_hosts', 'entitlements', 'ulimits', 'isolation'];
  t.is(lines.length, keys.length, lines.join('\n'));
  keys.forEach((key, index) => {
    t.true((lines[index] ?? '').startsWith(`compose.yaml:${5 + index}:7: services.web.build.${key}: ${key}: not supported: `), lines[index]);
  });
  t.regex(lines[0] ?? '', /ssh: not supported: SSH agents and keys are not forwarded into builds: a build step runs as a default container/);
  t.regex(lines[1] ?? '', /secrets: not supported: secrets are not mounted into build steps/);
});

test('network: default and none are accepted (RUN gets loopback only either way); host and named networks are refused', (t) => {
  t.is(onlyJob(load(compose('    build: {context: ., network: default}\n')).project).request.compression, 'gzip');
  t.is(onlyJob(load(compose('    build: {context: ., network: none}\n')).project).request.compression, 'gzip');
  t.deepEqual(refusal(compose('    build:\n      context: .\n      network: host\n')), [
    `compose.yaml:5:7: services.web.build.network: network: "host" is not supported: a build step never shares the host's network (RUN gets loopback only)`,
  ]);
  t.deepEqual(refusal(compose('    build:\n      context: .\n      network: backend\n')), [
    `compose.yaml:5:7: services.web.build.network: network: "backend" is not supported: RUN steps get loopback only (default and none both mean that)`,
  ]);
});

test('platform: and build.platforms: the nodes’ linux/amd64 is accepted, wasi/wasm and arm64 are refused naming the platform', (t) => {
  t.notThrows(() => load(compose('    platform: linux/amd64\n    build: {context: ., platforms: [linux/amd64]}\n')));
  t.notThrows(() => load(compose('    platform: Linux/x86_64\n    image: busybox\n')));
  t.deepEqual(refusal(compose('    image: busybox\n    platform: wasi/wasm\n')), [
    `compose.yaml:4:5: services.web.platform: platform: "wasi/wasm" is not supported: Tessera's nodes run linux/amd64 images, the only platform accepted`,
  ]);
  t.deepEqual(refusal(compose('    build:\n      context: .\n      platforms: [linux/amd64, linux/arm64]\n')), [
    `compose.yaml:5:32: services.web.build.platforms[1]: platforms: "linux/arm64" is not supported: Tessera's nodes run linux/amd64 images, the only platform accepted`,
  ]);
});

test('cache_from: local image references are kept; registry and exported caches are ignored with a warning at the entry', (t) => {
  const { project: p } = load(
    compose(`    build:
      context: .
      cache_from:
        - shop-web:previous
        - registry.example.com/web:cache
        - type=registry,ref=registry.example.com/web:cache
        - type=gha
`),
  );
  t.deepEqual(onlyJob(p).cacheFrom, ['shop-web:previous']);
  const warnings = p.warnings.map((w) => w.replace(/^.*compose\.yaml/, 'compose.yaml'));
  t.deepEqual(warnings, [
    'compose.yaml:7:11: services.web.build.cache_from[1]: "registry.example.com/web:cache" ignored: a registry cache source; Tessera builds use the step cache of the building node only',
    'compose.yaml:8:11: services.web.build.cache_from[2]: "type=registry,ref=registry.example.com/web:cache" ignored: a cache of type registry; Tessera builds use the step cache of the building node only',
    'compose.yaml:9:11: services.web.build.cache_from[3]: "type=gha" ignored: a cache of type gha; Tessera builds use the step cache of the building node only',
  ]);
});

test('pull: is accepted (true says what the building node does); provenance and sbom only as false', (t) => {
  const { project: p } = load(compose('    build: {context: ., pull: true, provenance: false, sbom: "false"}\n'));
  t.is(p.builds.length, 1);
  t.is(p.warnings.length, 1);
  t.regex(p.warnings[0] ?? '', /services\.web\.build\.pull: pull: true: the building node uses a FROM image it already has and pulls only one it lacks/);
  t.deepEqual(load(compose('    build: {context: ., pull: false}\n')).project.warnings, []);
  t.deepEqual(refusal(compose('    build:\n      context: .\n      provenance: mode=max\n')), [
    'compose.yaml:5:7: services.web.build.provenance: provenance: "mode=max" is not supported: Tessera builds make no attestations (false, or leaving the key out, is accepted)',
  ]);
});

test('image: or tags: that a build cannot produce (a digest, an invalid name) are refused at their key', (t) => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const lines = refusal(compose(`    image: web@${digest}\n    build:\n      context: .\n      tags: ["Bad Name"]\n`));
  t.is(lines.length, 2, lines.join('\n'));
  t.regex(lines[0] ?? '', /^compose\.yaml:3:5: services\.web\.image: image: "web@sha256:a+" names a digest, which a build cannot produce/);
  t.regex(lines[1] ?? '', /^compose\.yaml:6:14: services\.web\.build\.tags\[0\]: tags: invalid image reference "Bad Name"/);
});

// ---- shared builds ----

test('services with the same build share one job, stored under every name; different args make another job', (t) => {
  const { project: p } = load({
    'compose.yaml': `services:
  web1:
    build: ./web
  web2:
    build: {context: ./web}
  web3:
    image: registry.local:5000/web3:1
    build: {context: ./web, args: {MODE: fast}}
  web4:
    build: {context: web, args: [MODE=fast]}
`,
  });
  t.is(p.builds.length, 2);
  const [plain, fast] = p.builds;
  t.deepEqual(plain?.services, ['web1', 'web2']);
  t.deepEqual(plain?.request.tags, ['shop-web1', 'shop-web2']);
  t.deepEqual(plain?.imageOf, { web1: 'shop-web1', web2: 'shop-web2' });
  t.deepEqual(fast?.services, ['web3', 'web4']);
  t.deepEqual(fast?.request.tags, ['registry.local:5000/web3:1', 'shop-web4']);
  t.deepEqual(fast?.request.buildArgs, { MODE: 'fast' });
});

test('two different builds may not produce the same image name', (t) => {
  const lines = refusal({
    'compose.yaml': 'services:\n  a:\n    image: app:1\n    build: ./a\n  b:\n    image: app:1\n    build: ./b\n',
  });
  t.deepEqual(lines, [
    'compose.yaml:7:5: services.b.build: image app:1 is also built by service a from a different build (context, Dockerfile, args, target or labels differ): give one of them another image: or tag',
  ]);
});

test('an override file merges into build: (the short form in the base becomes a mapping)', (t) => {
  withProject(
    {
      'compose.yaml': 'services:\n  web:\n    build: ./web\n',
      'prod.yaml': 'services:\n  web:\n    build:\n      target: prod\n      args: [MODE=prod]\n',
    },
    (p) => {
      const job = onlyJob(loadIn(p, {}, ['compose.yaml', 'prod.yaml']));
      t.is(job.contextDir, join(p.dir, 'web'));
      t.is(job.request.target, 'prod');
      t.deepEqual(job.request.buildArgs, { MODE: 'prod' });
    },
  );
});

// ---- the dry run ----

test('the dry run lists each build: services, context, Dockerfile, target, arg names and tags, as YAML comments', (t) => {
  const { project: p } = load({
    'compose.yaml': `services:
  web1:
    build: {context: ./web, target: prod, args: {A: "1", B: secret-value}}
  web2:
    build: {context: ./web, target: prod, args: {A: "1", B: secret-value}}
  api:
    image: registry.local:5000/api:3
    build: {context: ., dockerfile_inline: "FROM busybox"}
`,
  });
  t.is(
    renderBuildPlan(p.builds),
    [
      '# builds, run one at a time before anything is applied; each service then runs its image by digest:',
      '# SERVICES     CONTEXT   DOCKERFILE   TARGET   ARGS   TAGS',
      '# web1, web2   ./web     Dockerfile   prod     A, B   shop-web1, shop-web2',
      '# api          .         (inline)     -        -      registry.local:5000/api:3',
      '',
    ].join('\n'),
  );
  // Arg values can be secrets: only their names are shown.
  t.false(renderBuildPlan(p.builds).includes('secret-value'));
  t.is(renderBuildPlan([]), '');
});

// ---- running the builds (stand-in builder: the real one needs a manager, see the header) ----

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function recordingBuilder(fail?: { at: number; error: Error }): { run: RunBuild; calls: Array<{ request: BuildRequest; contextDir: string }> } {
  const calls: Array<{ request: BuildRequest; contextDir: string }> = [];
  let running = 0;
  const run: RunBuild = async (request, contextDir, onProgress) => {
    calls.push({ request, contextDir });
    running++;
    try {
      if (running > 1) throw new Error('two builds ran at once');
      onProgress({ kind: 'step', stage: '0', step: 1, totalSteps: 2, instruction: 'FROM busybox' });
      onProgress({ kind: 'cached', step: 1 });
      onProgress({ kind: 'output', step: 2, line: 'hello' });
      await new Promise((resolve) => setImmediate(resolve));
      if (fail && calls.length === fail.at) throw fail.error;
      const result: BuildResult = {
        manifestDigest: digestOf(calls.length),
        configDigest: digestOf(100),
        tags: request.tags,
        layers: 1,
        cachedSteps: 1,
        ranSteps: 1,
      };
      return result;
    } finally {
      running--;
    }
  };
  return { run, calls };
}

const THREE_SERVICES = {
  'compose.yaml': `services:
  web1:
    build: ./web
  web2:
    build: ./web
  api:
    image: registry.local:5000/api:3
    build: {context: ./api, dockerfile: ../Dockerfile.api}
  db:
    image: busybox
`,
  'web/Dockerfile': 'FROM busybox\n',
  'api/main.sh': 'echo\n',
  'Dockerfile.api': 'FROM busybox\nCOPY main.sh /\n',
};

test('stack deploy builds each job once, one at a time, and pins every built service to its digest', async (t) => {
  const p = project(THREE_SERVICES);
  t.teardown(p.cleanup);
  const loaded = loadIn(p);
  const builder = recordingBuilder();
  const lines: string[] = [];
  const objects = await buildStackImages(loaded.objects, loaded.builds, builder.run, (line) => lines.push(line));
  t.is(builder.calls.length, 2);
  t.is(builder.calls[0]?.contextDir, join(p.dir, 'web'));
  t.deepEqual(builder.calls[0]?.request.tags, ['shop-web1', 'shop-web2']);
  // The Dockerfile outside the context went inline.
  t.is(builder.calls[1]?.request.dockerfileInline, 'FROM busybox\nCOPY main.sh /\n');
  t.is(serviceOf(objects, 'web1').spec.image, `shop-web1:latest@${digestOf(1)}`);
  t.is(serviceOf(objects, 'web2').spec.image, `shop-web2:latest@${digestOf(1)}`);
  t.is(serviceOf(objects, 'api').spec.image, `registry.local:5000/api:3@${digestOf(2)}`);
  t.is(serviceOf(objects, 'db').spec.image, 'busybox');
  t.deepEqual(lines.slice(0, 5), [
    'build 1/2: services web1, web2 from ./web (Dockerfile) as shop-web1, shop-web2',
    '[web1] step 1/2: FROM busybox',
    '[web1] step 1: cached',
    '[web1]   hello',
    `[web1] built ${digestOf(1)} (1 steps run, 1 cached)`,
  ]);
});

test('a failed build stops the deploy naming the service and the error (a failing RUN with its exit code and last lines)', async (t) => {
  const p = project(THREE_SERVICES);
  t.teardown(p.cleanup);
  const loaded = loadIn(p);
  const error = new BuildError('RUN make failed', { file: 'Dockerfile', line: 3, column: 1 }, { exitCode: 2, lastLines: ['make: *** [all] Error 2'] });
  const builder = recordingBuilder({ at: 2, error });
  const failure = await t.throwsAsync(buildStackImages(loaded.objects, loaded.builds, builder.run, () => undefined));
  t.is(
    failure.message,
    'nothing deployed: the image of service api (context "./api") did not build: Dockerfile:3:1: RUN make failed\n  exit code 2; last lines:\n    make: *** [all] Error 2',
  );
  t.is(builder.calls.length, 2);
});

test('missing contexts and Dockerfiles are all reported before any build starts', async (t) => {
  const p = project({
    'compose.yaml': 'services:\n  a:\n    build: ./nowhere\n  b:\n    build: ./b\n  c:\n    build: {context: ./b, dockerfile: ../missing/Dockerfile}\n',
    'b/readme': 'no Dockerfile here\n',
  });
  t.teardown(p.cleanup);
  const loaded = loadIn(p);
  const builder = recordingBuilder();
  const failure = await t.throwsAsync(buildStackImages(loaded.objects, loaded.builds, builder.run, () => undefined));
  t.is(
    failure.message,
    [
      'nothing deployed: the builds cannot start:',
      `  service a: build context "./nowhere": ${join(p.dir, 'nowhere')} does not exist`,
      `  service b: dockerfile "Dockerfile" in context "./b": ${join(p.dir, 'b', 'Dockerfile')} does not exist`,
      `  service c: dockerfile ${join(p.dir, 'missing', 'Dockerfile')} does not exist`,
    ].join('\n'),
  );
  t.is(builder.calls.length, 0);
});

test('an answer that is not a manifest digest is refused, not put into the specs', async (t) => {
  const p = project(THREE_SERVICES);
  t.teardown(p.cleanup);
  const loaded = loadIn(p);
  const run: RunBuild = () => Promise.resolve({ manifestDigest: 'sha256:../../etc', configDigest: '', tags: [], layers: 0, cachedSteps: 0, ranSteps: 0 });
  const failure = await t.throwsAsync(buildStackImages(loaded.objects, loaded.builds, run, () => undefined));
  t.regex(
    failure.message,
    /^nothing deployed: the image of services web1, web2 .* did not build: the builder answered "sha256:\.\.\/\.\.\/etc", not a manifest digest$/,
  );
});

test('pinned references keep the name and tag, with :latest for a name without one', (t) => {
  const d = digestOf(7);
  t.is(pinnedReference('shop-web', d), `shop-web:latest@${d}`);
  t.is(pinnedReference('localhost:5000/web', d), `localhost:5000/web:latest@${d}`);
  t.is(pinnedReference('localhost:5000/web:2', d), `localhost:5000/web:2@${d}`);
});

// ---- the command: tsctl stack deploy, in process (no cluster: these paths end before connecting) ----

async function stackDeploy(args: string[]): Promise<{ stdout: string; error?: Error }> {
  const program = new Command().exitOverride().option('--server <address>');
  program.configureOutput({ writeErr: () => undefined });
  registerStackCommands(program);
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // The command writes its output with process.stdout.write; the test reads it from there.
  process.stdout.write = ((chunk: string | Uint8Array) => chunks.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'tsctl', 'stack', 'deploy', ...args]);
    return { stdout: chunks.join('') };
  } catch (error) {
    return { stdout: chunks.join(''), error: error as Error };
  } finally {
    process.stdout.write = write;
  }
}

test.serial('stack deploy --dry-run shows the builds above the objects, and builds nothing', async (t) => {
  const p = project(THREE_SERVICES);
  t.teardown(p.cleanup);
  const { stdout, error } = await stackDeploy(['--dry-run', '-c', p.path('compose.yaml'), 'shop']);
  t.is(error, undefined);
  t.true(
    stdout.startsWith(
      [
        '# builds, run one at a time before anything is applied; each service then runs its image by digest:',
        '# SERVICES     CONTEXT   DOCKERFILE          TARGET   ARGS   TAGS',
        '# web1, web2   ./web     Dockerfile          -        -      shop-web1, shop-web2',
        '# api          ./api     ../Dockerfile.api   -        -      registry.local:5000/api:3',
        'apiVersion: tessera/v1',
      ].join('\n'),
    ),
    stdout,
  );
  const objects = stdout
    .split('\n---\n')
    .map((doc) => parse(doc) as StackObject)
    .filter((o) => o.kind === 'Service');
  t.deepEqual(
    objects.map((o) => [o.metadata.name, (o as Service).spec.image]),
    [
      ['api', 'registry.local:5000/api:3'],
      ['db', 'busybox'],
      ['web1', 'shop-web1'],
      ['web2', 'shop-web2'],
    ],
  );
  const skipped = await stackDeploy(['--dry-run', '--no-build', '-c', p.path('compose.yaml'), 'shop']);
  t.true(skipped.stdout.startsWith('# builds skipped (--no-build): the services run these images as they are in the cluster:\n'), skipped.stdout);
});

test.serial('stack deploy refuses before connecting when an input is missing, or when no builder is connected', async (t) => {
  const p = project({ ...THREE_SERVICES, 'web/Dockerfile': '' });
  t.teardown(p.cleanup);
  rmSync(p.path('web/Dockerfile'));
  const missing = await stackDeploy(['-c', p.path('compose.yaml'), 'shop']);
  t.is(
    missing.error?.message,
    `nothing deployed: the builds cannot start:\n  services web1, web2: dockerfile "Dockerfile" in context "./web": ${p.path('web/Dockerfile')} does not exist`,
  );
  writeFileSync(p.path('web/Dockerfile'), 'FROM busybox\n');
  const unwired = await stackDeploy(['-c', p.path('compose.yaml'), 'shop']);
  t.regex(unwired.error?.message ?? '', /^nothing deployed: this stack builds images \(build:\), and this tsctl has no image builder/);
  t.is(unwired.stdout, '');
});

test('the fixture of the Compose build end-to-end test plans: two builds from contexts that are all there', (t) => {
  const file = fileURLToPath(new URL('../fixtures/compose-build/compose.yaml', import.meta.url));
  const image = '127.0.0.1:5000/busybox:1';
  const project = loadCompose([file], { env: { IMAGE: image }, projectName: 'cb' });
  t.deepEqual(
    project.builds.map((j) => [j.services, j.request.tags, j.request.target, j.request.buildArgs]),
    [
      [['api'], ['cb-api'], 'final', { IMAGE: image }],
      [['web'], ['cb-web'], undefined, { IMAGE: image, GREETING: 'built by tessera' }],
    ],
  );
  const { ready, problems } = prepareBuilds(project.builds);
  t.deepEqual(problems, []);
  t.is(ready.length, 2);
  t.is(serviceOf(project.objects, 'db').spec.image, image);
});
