// The planner against hostile and realistic input: random Dockerfiles assembled from the grammar's
// pieces must plan or fail with a BuildError (never another exception); large inputs at the
// limits end in a plan or an error that names the limit; and Dockerfiles written the way
// real projects write them (the shared corpus ships none, so these are our own) plan as expected.

import test from 'ava';
import { BuildError } from '../../common/build/builder.js';
import { MAX_DOCKERFILE_BYTES } from '../../common/build/dockerfile-limits.js';
import { planStages, planSteps } from '../../common/build/plan.js';
import type { BaseImageConfig, BuildPlan, PlanInput } from '../../common/build/plan-types.js';

const BASE: BaseImageConfig = { env: ['PATH=/usr/local/bin:/usr/bin:/bin'], workingDir: '', user: '', exposedPorts: [], volumes: [], labels: {}, onBuild: [] };

function planAll(dockerfile: string, buildArgs: Record<string, string> = {}, target?: string): BuildPlan {
  const input: PlanInput = {
    dockerfile,
    fileName: 'Dockerfile',
    request: { buildArgs, labels: {}, ...(target === undefined ? {} : { target }) },
    platform: { os: 'linux', architecture: 'amd64' },
  };
  const graph = planStages(input);
  return planSteps(input, Object.fromEntries(graph.baseImages.map((reference) => [reference, BASE])));
}

/** A small deterministic PRNG (mulberry32), so a failure is reproducible from its seed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  'FROM busybox',
  'FROM scratch AS s',
  'FROM s',
  'FROM ${B:-busybox}',
  'FROM --platform=linux/amd64 busybox',
  'ARG B',
  'ARG A=1 C=$A',
  'ENV X=$A Y="q r"',
  'ENV Z ${X:+alt}',
  'RUN echo $X',
  'RUN ["a", "b"]',
  'RUN <<EOF',
  'EOF',
  'RUN cat <<-X',
  '\tX',
  'COPY a b /d/',
  'COPY --from=0 /a /b',
  'COPY --from=s /a /b',
  'COPY <<F /f',
  'F',
  'ADD https://x.example/f /f',
  'ADD a.tar /',
  'WORKDIR sub',
  'WORKDIR $X',
  'USER 1:1',
  'EXPOSE 80 90-92/udp',
  'CMD x',
  'CMD ["y"]',
  'ENTRYPOINT ["e"]',
  'LABEL k=v "a b"=c',
  'HEALTHCHECK --interval=1s CMD true',
  'HEALTHCHECK NONE',
  'STOPSIGNAL 9',
  'VOLUME /v ["/w"]',
  'SHELL ["/bin/sh", "-c"]',
  'ONBUILD RUN x',
  'MAINTAINER m',
  '# comment',
  '',
];
const JUNK = ['\\', ' \\', '"', "'", '${', '$', '[', '--x', 'BOGUS', '<<EOF', '# escape=`', '`', 'FROM', 'ENV', 'COPY x'];

test('random Dockerfiles plan or fail with a BuildError, never anything else', (t) => {
  let planned = 0;
  let refused = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const next = random(seed);
    const pick = (): string => (next() < 0.06 ? JUNK[Math.floor(next() * JUNK.length)] : PIECES[Math.floor(next() * PIECES.length)]) ?? '';
    const lines: string[] = next() < 0.9 ? ['FROM busybox'] : [];
    const count = Math.floor(next() * 14);
    for (let i = 0; i < count; i++) lines.push(next() < 0.1 ? `${pick()} ${pick()}` : pick());
    const dockerfile = lines.join('\n');
    try {
      planAll(dockerfile, next() < 0.5 ? { A: 'cli', B: 'busybox' } : {});
      planned++;
    } catch (error) {
      if (!(error instanceof BuildError)) {
        t.fail(`seed ${seed}: ${String(error)}\n${dockerfile}`);
        return;
      }
      t.regex(error.message, /./, `seed ${seed}`);
      refused++;
    }
  }
  // Both outcomes occur, so the generator exercises the planner and not only its first check.
  t.true(planned > 20, `planned ${planned}`);
  t.true(refused > 20, `refused ${refused}`);
});

test('inputs at the limits end in a plan or an error naming the limit', (t) => {
  const justUnder = `FROM busybox\nRUN ${'a '.repeat((MAX_DOCKERFILE_BYTES - 100) / 2)}\n`;
  t.is(planAll(justUnder).stages[0]?.steps.length, 1);
  const continued = `FROM busybox\nRUN a \\\n${'b \\\n'.repeat(200_000)}c\n`;
  t.is(planAll(continued).stages[0]?.steps.length, 1);
  t.throws(() => planAll(`${justUnder}${'#'.repeat(200)}`), { message: /MAX_DOCKERFILE_BYTES/ });
});

// Dockerfiles in the styles real projects use.

const NODE_APP = `# syntax=docker/dockerfile:1.4
ARG NODE_VERSION=18.16
FROM node:\${NODE_VERSION}-alpine AS development
WORKDIR /code
COPY package.json /code/package.json
COPY package-lock.json /code/package-lock.json
RUN npm ci
COPY . /code
ENV CI=true
ENV PORT=3000
CMD [ "npm", "start" ]

FROM development AS dev-envs
RUN <<EOF
apk update
apk add git
EOF
RUN <<EOF
addgroup -S docker
adduser -S --shell /bin/bash --ingroup docker vscode
EOF
CMD [ "npm", "start" ]

FROM development AS build
RUN ["npm", "run", "build"]

FROM nginx:1.13-alpine
COPY --from=build /code/build /usr/share/nginx/html
`;

const GO_APP = `FROM --platform=$BUILDPLATFORM golang:1.21-alpine AS builder
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.* ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/server .

FROM scratch
COPY --from=builder /out/server /server
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/server"]
`;

const PYTHON_APP = `FROM python:3.11-slim
LABEL maintainer="team@example.com" \\
      org.opencontainers.image.source="https://example.com/repo"
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \\
    # drop the caches
    && rm -rf /root/.cache
COPY --chown=1000:1000 . .
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \\
  CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/health')"
VOLUME ["/app/data"]
STOPSIGNAL SIGINT
CMD gunicorn -b 0.0.0.0:8000 app:app
`;

test('a Node project in the awesome-compose style: heredoc RUNs, stage chains, --target', (t) => {
  const plan = planAll(NODE_APP);
  t.deepEqual(
    plan.stages.map((s) => s.index),
    [0, 2, 3],
  );
  t.deepEqual(plan.stages[0]?.base, { kind: 'image', reference: 'node:18.16-alpine' });
  const dev = planAll(NODE_APP, {}, 'dev-envs');
  const heredocRun = dev.stages[1]?.steps[0];
  t.is(heredocRun?.kind === 'run' ? heredocRun.argv.at(-1) : undefined, 'apk update\napk add git\n');
  t.deepEqual(dev.outputConfig.cmd, ['npm', 'start']);
  t.true(dev.outputConfig.env.includes('PORT=3000'));
});

test('a Go project: BUILDPLATFORM in FROM, TARGETOS/TARGETARCH in RUN, a scratch output', (t) => {
  const plan = planAll(GO_APP);
  const build = plan.stages[0]?.steps.find((s) => s.kind === 'run' && s.instruction.includes('go build'));
  t.true(build?.kind === 'run' && build.env.includes('TARGETOS=linux') && build.env.includes('TARGETARCH=amd64'));
  t.deepEqual(plan.outputConfig.entrypoint, ['/server']);
  t.deepEqual(plan.outputConfig.exposedPorts, ['8080/tcp']);
  t.is(plan.outputConfig.user, '65532:65532');
  t.deepEqual(plan.outputConfig.env, []);
});

test('a Python project: continued LABEL and ENV, a comment inside a continued RUN, HEALTHCHECK over two lines', (t) => {
  const plan = planAll(PYTHON_APP);
  const config = plan.outputConfig;
  t.deepEqual(config.labels, { maintainer: 'team@example.com', 'org.opencontainers.image.source': 'https://example.com/repo' });
  t.true(config.env.includes('PYTHONUNBUFFERED=1'));
  const pip = plan.stages[0]?.steps.find((s) => s.kind === 'run');
  t.deepEqual(pip?.kind === 'run' ? pip.argv : [], ['/bin/sh', '-c', 'pip install --no-cache-dir -r requirements.txt     && rm -rf /root/.cache']);
  t.deepEqual(config.healthcheck?.test, ['CMD-SHELL', `python -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/health')"`]);
  t.is(config.healthcheck?.startPeriodNs, 10e9);
  t.deepEqual(config.cmd, ['/bin/sh', '-c', 'gunicorn -b 0.0.0.0:8000 app:app']);
  t.is(config.workingDir, '/app');
});
