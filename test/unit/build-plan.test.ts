// The build planner (common/build/plan.ts): stage graph and --target, ARG scoping and build args,
// expansion against the base image's config, every instruction's effect on the image config,
// RUN/COPY steps as the executor receives them, and errors with file:line:column.

import test from 'ava';
import { BuildError } from '../../common/build/builder.js';
import { MAX_PLAN_EXPANSION_CHARS } from '../../common/build/plan-expand.js';
import { planStages, planSteps } from '../../common/build/plan.js';
import type { BaseImageConfig, BuildPlan, BuildStep, CopyStep, PlanInput, RunStep } from '../../common/build/plan-types.js';

const AMD64 = { os: 'linux', architecture: 'amd64' };

function input(dockerfile: string, options: { buildArgs?: Record<string, string>; target?: string; labels?: Record<string, string> } = {}): PlanInput {
  return {
    dockerfile,
    fileName: 'Dockerfile',
    request: { buildArgs: options.buildArgs ?? {}, labels: options.labels ?? {}, ...(options.target === undefined ? {} : { target: options.target }) },
    platform: AMD64,
  };
}

const BUSYBOX: BaseImageConfig = {
  env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
  cmd: ['sh'],
  workingDir: '',
  user: '',
  exposedPorts: [],
  volumes: [],
  labels: { base: 'yes' },
  onBuild: [],
};

/** Plans with every base image given busybox's config (or the one named). */
function plan(dockerfile: string, options: Parameters<typeof input>[1] = {}, configs: Record<string, BaseImageConfig> = {}): BuildPlan {
  const request = input(dockerfile, options);
  const graph = planStages(request);
  const baseConfigs: Record<string, BaseImageConfig> = {};
  for (const reference of graph.baseImages) baseConfigs[reference] = configs[reference] ?? BUSYBOX;
  return planSteps(request, baseConfigs);
}

function steps(result: BuildPlan): BuildStep[] {
  return result.stages.flatMap((stage) => stage.steps);
}

function runs(result: BuildPlan): RunStep[] {
  return steps(result).filter((step): step is RunStep => step.kind === 'run');
}

function copies(result: BuildPlan): CopyStep[] {
  return steps(result).filter((step): step is CopyStep => step.kind === 'copy');
}

function planError(dockerfile: string, options: Parameters<typeof input>[1] = {}): string {
  try {
    plan(dockerfile, options);
  } catch (error) {
    if (error instanceof BuildError) return error.message;
    throw error;
  }
  throw new Error('expected a BuildError');
}

function envOf(step: { env: readonly string[] } | undefined, name: string): string | undefined {
  const entry = step?.env.find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

// ---- stages and targets ----

test('planStages lists the needed stages and the images to resolve; unused stages are skipped', (t) => {
  const dockerfile = [
    'FROM golang:1.22 AS build',
    'RUN make',
    'FROM alpine AS unused',
    'RUN x',
    'FROM build AS test',
    'FROM scratch',
    'COPY --from=build /app /app',
    'COPY --from=nginx:1 /etc/nginx /etc/nginx',
  ].join('\n');
  const graph = planStages(input(dockerfile));
  t.deepEqual(
    graph.stages.map((s) => [s.index, s.name, s.base]),
    [
      [0, 'build', { kind: 'image', reference: 'golang:1.22' }],
      [3, undefined, { kind: 'scratch' }],
    ],
  );
  t.is(graph.outputStage, 3);
  t.deepEqual(graph.baseImages, ['golang:1.22']);
  t.deepEqual(graph.copyFromImages, ['nginx:1']);

  const test2 = planStages(input(dockerfile, { target: 'TEST' }));
  t.deepEqual(
    test2.stages.map((s) => [s.index, s.base]),
    [
      [0, { kind: 'image', reference: 'golang:1.22' }],
      [2, { kind: 'stage', index: 0 }],
    ],
  );
  t.deepEqual(test2.copyFromImages, []);
});

test('an unknown --target names the stages there are', (t) => {
  t.is(
    planError('FROM a AS one\nFROM b\nFROM c AS three\n', { target: 'two' }),
    'target stage "two" could not be found in Dockerfile; its stages are: one, (unnamed 1), three',
  );
});

test('a stage built FROM an earlier stage starts from its final config', (t) => {
  const result = plan('FROM busybox AS base\nENV A=1\nWORKDIR /w\nFROM base\nRUN echo');
  const second = result.stages[1];
  t.deepEqual(second?.base, { kind: 'stage', index: 0 });
  t.is(second?.baseConfig.workingDir, '/w');
  t.is(envOf(runs(result)[0], 'A'), '1');
});

test('COPY --from by index and by name; a later or the current stage is refused', (t) => {
  const result = plan('FROM busybox AS a\nFROM busybox\nCOPY --from=0 /x /x\nCOPY --from=A /y /y\n');
  t.deepEqual(
    copies(result).map((c) => c.from),
    [
      { kind: 'stage', index: 0 },
      { kind: 'stage', index: 0 },
    ],
  );
  t.regex(planError('FROM busybox\nCOPY --from=0 /x /x\n'), /^Dockerfile:2:6: COPY --from=0 refers to the current or a later stage/);
  t.regex(
    planError('FROM busybox\nCOPY --from=later /x /x\nFROM busybox AS later\n'),
    /^Dockerfile:2:6: COPY --from=later refers to the current or a later stage/,
  );
});

test('FROM --platform: the node platform is accepted, another is refused at its line', (t) => {
  t.is(planStages(input('FROM --platform=linux/amd64 busybox\n')).stages[0]?.platform, 'linux/amd64');
  t.is(planStages(input('FROM --platform=$BUILDPLATFORM busybox\n')).stages[0]?.platform, 'linux/amd64');
  t.is(
    planError('FROM busybox\nFROM --platform=linux/arm64 busybox\n'),
    'Dockerfile:2:6: FROM --platform=linux/arm64: this node builds for linux/amd64 only (no emulation of other platforms)',
  );
});

test('FROM with an empty or invalid image is an error at its line', (t) => {
  t.is(planError('ARG X\nFROM ${X}\n'), 'Dockerfile:2:6: FROM: the base name (${X}) should not be blank');
  t.regex(planError('FROM Bad_Name\n'), /^Dockerfile:1:6: invalid image reference/);
});

test('planSteps needs the config of every base image', (t) => {
  const request = input('FROM busybox\nRUN x\n');
  t.throws(() => planSteps(request, {}), { message: /no config was given for the base image busybox/ });
});

// ---- ARG scoping ----

test('a global ARG is usable in FROM and invisible in a stage unless declared again', (t) => {
  const dockerfile = ['ARG TAG=1.36', 'ARG OTHER=o', 'FROM busybox:${TAG}', 'ARG TAG', 'RUN echo', 'ENV SEEN="$TAG/$OTHER"'].join('\n');
  const result = plan(dockerfile);
  t.deepEqual(planStages(input(dockerfile)).baseImages, ['busybox:1.36']);
  t.is(envOf(runs(result)[0], 'TAG'), '1.36');
  t.is(envOf(runs(result)[0], 'OTHER'), undefined);
  t.is(envOf(result.outputConfig, 'SEEN'), '1.36/');
});

test('--build-arg overrides the global and the stage default; a stage default wins over the global one', (t) => {
  const dockerfile = ['ARG V=global', 'FROM busybox:${V}', 'ARG V', 'ARG W=stage', 'RUN echo'].join('\n');
  const overridden = plan(dockerfile, { buildArgs: { V: 'cli', W: 'cli-w' } });
  t.deepEqual(planStages(input(dockerfile, { buildArgs: { V: 'cli' } })).baseImages, ['busybox:cli']);
  t.is(envOf(runs(overridden)[0], 'V'), 'cli');
  t.is(envOf(runs(overridden)[0], 'W'), 'cli-w');
  const defaults = plan(dockerfile);
  t.is(envOf(runs(defaults)[0], 'V'), 'global');
  t.is(envOf(runs(defaults)[0], 'W'), 'stage');
  const redeclared = plan('ARG V=global\nFROM busybox\nARG V=local\nRUN x\n');
  t.is(envOf(runs(redeclared)[0], 'V'), 'local');
});

test('an ARG without value or default is declared but not set', (t) => {
  const result = plan('FROM busybox\nARG NOTHING\nRUN echo\nENV X=${NOTHING:-unset}\n');
  t.is(envOf(runs(result)[0], 'NOTHING'), undefined);
  t.is(envOf(result.outputConfig, 'X'), 'unset');
});

test('ARG defaults expand earlier ARGs and ENV; ENV wins over an ARG of the same name', (t) => {
  const result = plan('FROM busybox\nARG A=1\nARG B=${A}2\nENV A=env\nRUN echo\nENV C=$A$B\n');
  const run = runs(result)[0];
  t.is(envOf(run, 'B'), '12');
  t.is(envOf(run, 'A'), 'env');
  t.is(run?.env.filter((e) => e.startsWith('A=')).length, 1);
  t.is(envOf(result.outputConfig, 'C'), 'env12');
});

test('automatic platform args: in FROM without declaration, in a stage only when declared', (t) => {
  const result = plan('FROM busybox:$TARGETARCH\nRUN echo\nARG TARGETARCH\nARG TARGETPLATFORM\nRUN echo\n', {}, { 'busybox:amd64': BUSYBOX });
  t.deepEqual(result.stages[0]?.base, { kind: 'image', reference: 'busybox:amd64' });
  t.is(envOf(runs(result)[0], 'TARGETARCH'), undefined);
  t.is(envOf(runs(result)[1], 'TARGETARCH'), 'amd64');
  t.is(envOf(runs(result)[1], 'TARGETPLATFORM'), 'linux/amd64');
});

test('proxy args reach RUN without declaration, stay out of the cache text and are never "unused"', (t) => {
  const result = plan('FROM busybox\nRUN apk add x\n', { buildArgs: { HTTP_PROXY: 'http://proxy:3128', https_proxy: 'http://p' } });
  const run = runs(result)[0];
  t.is(envOf(run, 'HTTP_PROXY'), 'http://proxy:3128');
  t.is(envOf(run, 'https_proxy'), 'http://p');
  t.false(run?.cacheText.includes('proxy'));
  t.deepEqual(result.buildArgsUnused, []);
  t.deepEqual(result.buildArgsUsed, ['HTTP_PROXY', 'https_proxy']);
});

test('unused build args are reported as Docker warns of them; args of skipped stages count as unused', (t) => {
  const result = plan('ARG G\nFROM busybox AS skipped\nARG S\nFROM busybox\nARG USED\n', { buildArgs: { G: '1', USED: '2', S: '3', NOPE: '4' } });
  t.deepEqual(result.buildArgsUsed, ['G', 'USED']);
  t.deepEqual(result.buildArgsUnused, ['NOPE', 'S']);
  t.true(result.warnings.includes('one or more build args [NOPE S] were not consumed'));
});

test('a RUN reruns when a build arg it sees changes: the arg is in its cache text', (t) => {
  const dockerfile = 'FROM busybox\nARG V=1\nRUN make\n';
  const one = runs(plan(dockerfile))[0]?.cacheText;
  const two = runs(plan(dockerfile, { buildArgs: { V: '2' } }))[0]?.cacheText;
  t.not(one, two);
  t.is(runs(plan(dockerfile))[0]?.cacheText, one);
});

// ---- expansion and config ----

test('ENV PATH=/x:$PATH extends the base image PATH; all pairs of one ENV see the values before it', (t) => {
  const result = plan('FROM busybox\nENV PATH=/opt/bin:$PATH\nENV A=hello\nENV A=bye B=$A\n');
  t.deepEqual(result.outputConfig.env, ['PATH=/opt/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=bye', 'B=hello']);
});

test('ENV quoting and the legacy form', (t) => {
  const result = plan('FROM scratch\nENV A="x y" B=\'$HOME\' C=z\\ w D=""\nENV E  some value  \n');
  t.deepEqual(result.outputConfig.env, ['A=x y', 'B=$HOME', 'C=z w', 'D=', 'E=some value']);
});

test('WORKDIR is relative to the previous one and expanded; COPY destinations resolve against it', (t) => {
  const result = plan('FROM busybox\nENV BASE=/srv\nWORKDIR $BASE\nWORKDIR app/../www\nCOPY a .\nCOPY a b ./sub/\nCOPY a rel\nCOPY a /abs\n');
  t.deepEqual(
    steps(result).flatMap((s) => (s.kind === 'workdir' ? [s.path] : [])),
    ['/srv', '/srv/www'],
  );
  t.deepEqual(
    copies(result).map((c) => c.dest),
    ['/srv/www/', '/srv/www/sub/', '/srv/www/rel', '/abs'],
  );
  t.is(runs(plan('FROM busybox\nRUN x\n'))[0]?.workdir, '/');
});

test('several sources need a directory destination ending in /', (t) => {
  t.is(
    planError('FROM busybox\nCOPY a b /dest\n'),
    'Dockerfile:2:10: COPY with more than one source needs a destination that is a directory ending in "/" (got "/dest")',
  );
});

test('COPY: expanded sources, --chown expanded, --chmod octal, --link accepted, globs kept as patterns', (t) => {
  const result = plan('FROM busybox\nARG U=app\nCOPY --chown=${U}:${U} --chmod=0640 --link src/*.go "with space" /app/\n');
  t.like(copies(result)[0], {
    sources: ['src/*.go', 'with space'],
    chown: 'app:app',
    chmod: 0o640,
    dest: '/app/',
    extractArchives: false,
    from: { kind: 'context' },
  });
  t.regex(planError('FROM busybox\nCOPY --chmod=u+x a /b\n'), /--chmod: "u\+x" is not an octal mode/);
  t.regex(planError('FROM busybox\nCOPY --chown=a:b:c a /b\n'), /--chown: "a:b:c" is not/);
});

test('ADD: local archives are extracted, URLs fetched with an optional checksum, Git refused', (t) => {
  const sum = `sha256:${'a'.repeat(64)}`;
  const result = plan(`FROM busybox\nADD app.tar.gz /opt/\nADD --checksum=${sum} https://example.com/f.txt /f.txt\n`);
  t.like(copies(result)[0], { add: true, extractArchives: true, sources: ['app.tar.gz'] });
  t.like(copies(result)[1], { add: true, extractArchives: false, sources: [], url: { url: 'https://example.com/f.txt', checksum: sum } });
  t.regex(
    planError('FROM busybox\nADD https://github.com/x/y.git /src\n'),
    /^Dockerfile:2:5: ADD https:\/\/github.com\/x\/y.git: only http\(s\) URLs of files/,
  );
  t.regex(planError('FROM busybox\nADD git@github.com:x/y /src\n'), /only http\(s\) URLs/);
  t.is(planError('FROM busybox\nADD --checksum=sha256:abc a /b\n'), 'Dockerfile:2:1: ADD --checksum is only for a source that is an http(s) URL');
  t.regex(planError('FROM busybox\nADD --checksum=md5:abc https://x/y /y\n'), /is not sha256:/);
});

test('COPY <<EOF: heredoc files are expanded unless the delimiter is quoted', (t) => {
  const result = plan("FROM busybox\nARG NAME=world\nCOPY <<greeting <<'raw' /etc/\nhello $NAME\ngreeting\nhello $NAME\nraw\n");
  t.deepEqual(copies(result)[0]?.heredocFiles, [
    { name: 'greeting', content: 'hello world\n' },
    { name: 'raw', content: 'hello $NAME\n' },
  ]);
  t.deepEqual(copies(result)[0]?.sources, []);
  t.is(copies(result)[0]?.dest, '/etc/');
});

test('RUN heredocs: a lone heredoc is the script, a #! script runs from a file, heredocs after a command go to the shell', (t) => {
  const result = plan(
    [
      'FROM busybox',
      'RUN <<EOF',
      'echo $HOME',
      'EOF',
      'RUN <<-EOF',
      '\t#!/usr/bin/env python3',
      '\tprint(1)',
      '\tEOF',
      'RUN cat <<A > /a && cat <<B > /b',
      'one',
      'A',
      'two',
      'B',
    ].join('\n'),
  );
  const [script, shebang, command] = runs(result);
  t.deepEqual(script?.argv, ['/bin/sh', '-c', 'echo $HOME\n']);
  t.deepEqual(shebang?.argv, ['/dev/pipes/EOF']);
  t.deepEqual(shebang?.inlineFiles, [{ path: '/dev/pipes/EOF', content: '#!/usr/bin/env python3\nprint(1)\n', mode: 0o755 }]);
  t.deepEqual(command?.argv, ['/bin/sh', '-c', 'cat <<A > /a && cat <<B > /b\none\nA\ntwo\nB\n']);
  t.is(command?.instruction, 'RUN cat <<A > /a && cat <<B > /b');
});

test('RUN shell form uses SHELL, exec form is as given, RUN words are not expanded by the planner', (t) => {
  const result = plan('FROM busybox\nUSER nobody\nRUN echo $HOME\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN echo $HOME\nRUN ["echo", "$HOME"]\n');
  t.deepEqual(
    runs(result).map((r) => r.argv),
    [
      ['/bin/sh', '-c', 'echo $HOME'],
      ['/bin/bash', '-o', 'pipefail', '-c', 'echo $HOME'],
      ['echo', '$HOME'],
    ],
  );
  t.is(runs(result)[0]?.user, 'nobody');
  t.deepEqual(result.outputConfig.shell, ['/bin/bash', '-o', 'pipefail', '-c']);
});

test('CMD and ENTRYPOINT: shell form through SHELL; ENTRYPOINT clears the base CMD unless CMD was set in the stage', (t) => {
  t.deepEqual(plan('FROM busybox\nCMD echo hi\n').outputConfig.cmd, ['/bin/sh', '-c', 'echo hi']);
  const cleared = plan('FROM busybox\nENTRYPOINT ["/entry"]\n').outputConfig;
  t.deepEqual(cleared.entrypoint, ['/entry']);
  t.is(cleared.cmd, undefined);
  const kept = plan('FROM busybox\nCMD ["arg"]\nENTRYPOINT ["/entry"]\n').outputConfig;
  t.deepEqual(kept.cmd, ['arg']);
  t.deepEqual(plan('FROM busybox\nCMD []\n').outputConfig.cmd, []);
});

test('the image settings reach the config: LABEL, EXPOSE, VOLUME, USER, STOPSIGNAL, HEALTHCHECK, MAINTAINER, --label', (t) => {
  const result = plan(
    [
      'FROM busybox',
      'ARG PORT=8080',
      'LABEL "com.example.name"="my app" version=$PORT',
      'EXPOSE $PORT 53/udp 7000-7002/TCP',
      'VOLUME ["/data", "/var/$PORT"]',
      'VOLUME /logs',
      'USER ${PORT}:0',
      'STOPSIGNAL SIGQUIT',
      'HEALTHCHECK --interval=10s --retries=2 CMD wget -q -O- localhost:$PORT',
      'MAINTAINER Jane',
    ].join('\n'),
    { labels: { version: 'from-cli', extra: '1' } },
  );
  const config = result.outputConfig;
  t.deepEqual(config.labels, { base: 'yes', 'com.example.name': 'my app', extra: '1', version: 'from-cli' });
  t.deepEqual(config.exposedPorts, ['53/udp', '7000/tcp', '7001/tcp', '7002/tcp', '8080/tcp']);
  t.deepEqual(config.volumes, ['/data', '/logs', '/var/8080']);
  t.is(config.user, '8080:0');
  t.is(config.stopSignal, 'SIGQUIT');
  t.deepEqual(config.healthcheck, {
    test: ['CMD-SHELL', 'wget -q -O- localhost:$PORT'],
    intervalNs: 10e9,
    timeoutNs: 0,
    startPeriodNs: 0,
    startIntervalNs: 0,
    retries: 2,
  });
  t.is(config.author, 'Jane');
  t.true(result.warnings.some((w) => w.startsWith('Dockerfile:10:1: MAINTAINER is deprecated')));
  t.deepEqual(plan('FROM busybox\nHEALTHCHECK NONE\n').outputConfig.healthcheck?.test, ['NONE']);
});

test('EXPOSE and STOPSIGNAL errors', (t) => {
  t.regex(planError('FROM busybox\nEXPOSE 0\n'), /^Dockerfile:2:8: EXPOSE: invalid port "0"/);
  t.regex(planError('FROM busybox\nEXPOSE 90-80\n'), /invalid port "90-80"/);
  t.regex(planError('FROM busybox\nEXPOSE 80/icmp\n'), /invalid protocol "icmp"/);
  t.regex(planError('FROM busybox\nEXPOSE 1-65535\n'), /MAX_EXPOSED_PORTS/);
  t.regex(planError('FROM busybox\nSTOPSIGNAL "kill me"\n'), /^Dockerfile:2:12: STOPSIGNAL: invalid signal/);
});

test('every step carries the config after it', (t) => {
  const result = plan('FROM scratch\nENV A=1\nWORKDIR /w\nENV B=2\n');
  t.deepEqual(
    steps(result).map((s) => [s.kind, s.configAfter.env, s.configAfter.workingDir]),
    [
      ['config', ['A=1'], ''],
      ['workdir', ['A=1'], '/w'],
      ['config', ['A=1', 'B=2'], '/w'],
    ],
  );
  t.deepEqual(result.stages[0]?.baseConfig.env, []);
});

test('ONBUILD is recorded in the config; a base image trigger runs first and is not inherited', (t) => {
  const recorded = plan('FROM busybox\nONBUILD RUN make\nONBUILD COPY . /src\n').outputConfig;
  t.deepEqual(recorded.onBuild, ['RUN make', 'COPY . /src']);
  const base: BaseImageConfig = { ...BUSYBOX, onBuild: ['ENV FROM_TRIGGER=1', 'RUN make'] };
  const result = plan('FROM onbuild-base\nRUN after\n', {}, { 'onbuild-base': base });
  t.deepEqual(
    steps(result).map((s) => s.instruction),
    ['ENV FROM_TRIGGER=1', 'RUN make', 'RUN after'],
  );
  t.deepEqual(steps(result)[0]?.location, { file: 'Dockerfile', line: 1, column: 1 });
  t.deepEqual(result.outputConfig.onBuild, []);
  t.is(envOf(result.outputConfig, 'FROM_TRIGGER'), '1');
  const bad: BaseImageConfig = { ...BUSYBOX, onBuild: ['FROM x'] };
  t.throws(() => plan('FROM bad\n', {}, { bad }), { message: /ONBUILD trigger "FROM x" is not allowed/ });
});

test('expansion errors point at the word, also on a continuation line and in JSON form', (t) => {
  t.is(planError('FROM busybox\nENV A=1 \\\n  B=2 \\\n    C=${X:?needed}\n'), 'Dockerfile:4:7: X: needed');
  t.is(planError('FROM busybox\nVOLUME ["/ok", "/${X:?v}"]\n'), 'Dockerfile:2:17: X: v');
  t.is(planError('FROM busybox\n\nWORKDIR ${DIR:?set DIR}\n'), 'Dockerfile:3:9: DIR: set DIR');
  t.is(planError('FROM busybox\nLABEL a=${b\n'), "Dockerfile:2:9: missing '}' in ${b");
});

test('the plan-wide expansion budget stops ARGs that double each other', (t) => {
  const lines = ['FROM busybox', `ARG A=${'x'.repeat(1024)}`];
  for (let i = 0; i < 8; i++) lines.push('ARG A=$A$A');
  for (let i = 0; i < 200; i++) lines.push(`ENV E${i}=$A`);
  t.regex(planError(lines.join('\n')), /MAX_PLAN_EXPANSION_CHARS/);
  t.true(MAX_PLAN_EXPANSION_CHARS > 0);
});

test("COPY --from may use the Dockerfile's ARGs and ENVs but not the base image's environment", (t) => {
  t.deepEqual(copies(plan('FROM busybox AS b\nFROM busybox\nARG SRC=b\nCOPY --from=$SRC /x /x\n'))[0]?.from, { kind: 'stage', index: 0 });
  t.deepEqual(copies(plan('FROM busybox AS b\nFROM busybox\nENV SRC=b\nCOPY --from=$SRC /x /x\n'))[0]?.from, { kind: 'stage', index: 0 });
  const withEnv: BaseImageConfig = { ...BUSYBOX, env: ['SRC=other'] };
  t.throws(() => plan('FROM busybox AS b\nFROM envbase\nARG SRC=b\nCOPY --from=$SRC /x /x\n', {}, { envbase: withEnv }), {
    message: /^Dockerfile:4:6: COPY --from=other: the value depends on the base image's environment \(it was "b" without it\)/,
  });
});

test('a plan is plain data: it survives a JSON round trip unchanged', (t) => {
  const result = plan('FROM busybox AS a\nRUN x\nFROM a\nCOPY --from=a /x /y\nLABEL __proto__=p\nENV A=1\n');
  t.deepEqual(JSON.parse(JSON.stringify(result)), result);
  t.is(Object.getOwnPropertyDescriptor(result.outputConfig.labels, '__proto__')?.value, 'p');
});

test('a syntax directive naming another frontend gets a warning; docker/dockerfile does not', (t) => {
  t.deepEqual(plan('# syntax=docker/dockerfile:1.7\nFROM busybox\n').warnings, []);
  t.regex(plan('# syntax=example.com/frontend\nFROM busybox\n').warnings[0] ?? '', /is ignored/);
});

test('a duplicate stage name is an error at the second FROM', (t) => {
  t.is(planError('FROM busybox AS a\nFROM busybox AS A\n'), 'Dockerfile:2:1: duplicate stage name "a"');
});

test('BUILDKIT_* build args (BuildKit switches) are not reported as unused', (t) => {
  t.deepEqual(plan('FROM busybox\n', { buildArgs: { BUILDKIT_INLINE_CACHE: '1' } }).buildArgsUnused, []);
});

test("RUN gets Docker's default PATH when the config has none, without it entering the config", (t) => {
  const result = plan('FROM scratch\nRUN ["/hello"]\n');
  t.deepEqual(runs(result)[0]?.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  t.deepEqual(result.outputConfig.env, []);
  t.is(envOf(runs(plan('FROM busybox\nRUN x\n'))[0], 'PATH'), '/usr/sbin:/usr/bin:/sbin:/bin');
});

test('with `# escape=`` ` backslashes are literal and the backtick escapes', (t) => {
  const result = plan('# escape=`\nFROM busybox\nENV DIR=C:\\dir LIT=`$HOME NEXT=a`\n` b\nENTRYPOINT run me\n');
  t.deepEqual(result.outputConfig.env.slice(1), ['DIR=C:\\dir', 'LIT=$HOME', 'NEXT=a b']);
  t.deepEqual(result.outputConfig.entrypoint, ['/bin/sh', '-c', 'run me']);
});
