// Differential tests of image builds (issue 18) with Debian's buildah as the oracle. Every case in
// test/fixtures/builds/ is built by buildah FROM our busybox image (served by a loopback registry)
// and its result is checked against what that Dockerfile must produce. When our executor
// (agent/build/executor.ts) is in the tree, the same case is built by it too, FROM the same busybox
// in our image store, and the two images must agree on the file tree (modes, owners, sizes,
// content digests, symlink targets; not timestamps), the config fields and the layer count.
// Each test's title says which of the two comparisons it runs. All real: buildah with runc for its
// RUN steps, our native runtime for ours; no network but loopback.
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { type BuildahOracle, buildahInstalled, startBuildah } from '../helpers/buildah.js';
import { type ComparableImage, compareImages } from '../helpers/image-tree.js';
import { type OurBuilder, loadOurBuilder, startOurBuilder } from '../helpers/our-builder.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/builds/', import.meta.url));

interface OracleCase {
  readonly name: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** The build must fail, with this exit status of its failing RUN. */
  readonly failsWithExitCode?: number;
  /** What the image must hold (run on buildah's image, and on ours when built); `by` for the few places they must differ. */
  readonly expect?: (t: ExecutionContext, image: ComparableImage, by: 'buildah' | 'ours') => Promise<void> | void;
  /** Differences from buildah that are buildah's departures from Docker's documented behaviour, each with why. */
  readonly buildahDepartures?: readonly Departure[];
}

interface Departure {
  /** Matches whole difference lines of compareImages. */
  readonly line: RegExp;
  readonly why: string;
}

/** Departures every case with a RUN may show. */
const RUN_DEPARTURES: readonly Departure[] = [
  {
    line: /^\/run: only in theirs \(dir, mode 0755, uid 0, gid 0\)$/,
    why: 'buildah creates /run in the first RUN of a stage whose image lacks it (the mount point of /run/.containerenv and /run/secrets) and commits it; Docker does not',
  },
];

/** WORKDIR with --layers: see the config case. */
const WORKDIR_DEPARTURE: Departure = {
  line: /^(layers: ours (\d+), theirs \d+|\/srv: only in ours \(dir, .*\)|\/srv\/app: only in ours \(dir, .*\))$/,
  why: 'buildah 1.28 with --layers commits WORKDIR as an empty layer and does not create its directory; Docker and BuildKit create it, in a layer of its own',
};

const sha256Of = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const sha256OfText = (text: string): string => createHash('sha256').update(text).digest('hex');

function file(t: ExecutionContext, image: ComparableImage, path: string): { uid: number; gid: number; mode: number; sha256?: string } {
  const entry = image.tree.get(path);
  t.is(entry?.type, 'file', `${image.source}: /${path} is a file`);
  return entry ?? { uid: -1, gid: -1, mode: -1 };
}

function absent(t: ExecutionContext, image: ComparableImage, ...paths: string[]): void {
  for (const path of paths) t.false(image.tree.has(path), `${image.source}: /${path} is absent`);
}

const CASES: readonly OracleCase[] = [
  {
    name: 'multi-stage',
    async expect(t, image) {
      t.is(file(t, image, 'opt/app/app.txt').sha256, await sha256Of(join(FIXTURES, 'multi-stage', 'app.txt')));
      t.is(file(t, image, 'opt/app/stamp').sha256, sha256OfText('built\n'));
      t.like(image.tree.get('opt/app/link'), { type: 'symlink', linkTarget: 'app.txt' });
      t.like(image.tree.get('opt/app/bin'), { type: 'dir', mode: 0o750 });
      t.is(file(t, image, 'other.txt').sha256, sha256OfText('other\n'));
      absent(t, image, 'unused.txt', 'src', 'out');
      t.deepEqual(image.config.cmd, ['cat', '/opt/app/app.txt']);
      t.is(image.layers, 3, 'busybox and one layer per COPY');
    },
  },
  {
    name: 'whiteouts',
    expect(t, image) {
      t.is(file(t, image, 'keep').sha256, sha256OfText('keep\n'));
      t.is(file(t, image, 'data/new').sha256, sha256OfText('new\n'));
      absent(t, image, 'gone', 'www/index.html', 'tree', 'tree/deep/t', 'data/a', 'data/sub', 'data/sub/b');
      t.is(image.tree.get('www')?.type, 'dir', 'the directory of a deleted file stays');
      t.is(image.layers, 3, 'busybox and one layer per RUN');
    },
  },
  {
    name: 'dockerignore',
    expect(t, image) {
      for (const path of ['ctx/app.txt', 'ctx/important.bak', 'ctx/sub/x.txt', 'ctx/Dockerfile', 'ctx/.dockerignore']) file(t, image, path);
      absent(t, image, 'ctx/debug.bak', 'ctx/secret', 'ctx/secret/key', 'ctx/sub/y.tmp');
      t.is(image.layers, 2);
    },
  },
  {
    name: 'chown-chmod',
    expect(t, image) {
      t.like(file(t, image, 'owned.txt'), { uid: 1000, gid: 1000 });
      t.like(file(t, image, 'owneddir/one.txt'), { uid: 1000, gid: 1000 }, '--chown=UID without a group: the group is the same number');
      t.like(file(t, image, 'named.txt'), { uid: 65534, gid: 65534 }, 'names resolved through the image /etc/passwd and /etc/group');
      t.like(file(t, image, 'secret.txt'), { uid: 0, gid: 0, mode: 0o640 });
      t.like(file(t, image, 'usr/local/bin/run.sh'), { uid: 1000, gid: 1000, mode: 0o755 });
      t.is(image.layers, 6);
    },
  },
  {
    name: 'arg-scoping',
    buildArgs: { OVERRIDDEN: 'from-cli' },
    expect(t, image) {
      const env = image.config.env ?? [];
      for (const line of ['FROM_GLOBAL=global-default', 'FROM_OVERRIDE=from-cli', 'FROM_LOCAL=local-default', 'FROM_UNREDECLARED=[]'])
        t.true(env.includes(line), `Env has ${line}: ${env.join(' ')}`);
      t.false(
        env.some((e) => /^(GLOBAL|OVERRIDDEN|LOCAL|UNSET|BASE_TAG)=/.test(e)),
        'ARG values are not in the image Env',
      );
      t.is(file(t, image, 'args.txt').sha256, sha256OfText('global-default from-cli local-default [] []\n'));
      t.deepEqual(image.config.labels, { 'base.tag': '', local: 'local-default' }, 'a global ARG not declared again in the stage is empty there');
      t.is(image.layers, 2);
    },
  },
  {
    name: 'config',
    buildahDepartures: [WORKDIR_DEPARTURE],
    expect(t, image, by) {
      const c = image.config;
      t.deepEqual(c.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_HOME=/srv/app', 'GREETING=hello world']);
      t.deepEqual(c.labels, { 'org.example.name': 'config case', 'org.example.version': '1' });
      t.deepEqual(c.exposedPorts, ['53/udp', '8080/tcp']);
      t.is(c.workingDir, '/srv/app');
      t.is(c.user, '1000:1000');
      t.deepEqual(c.volumes, ['/data']);
      t.deepEqual(c.healthcheck, {
        Test: ['CMD-SHELL', 'wget -q -O - http://127.0.0.1:8080/ || exit 1'],
        Interval: 5_000_000_000,
        Timeout: 2_000_000_000,
        StartPeriod: 1_000_000_000,
        Retries: 4,
      });
      t.is(c.stopSignal, 'SIGQUIT');
      t.deepEqual(c.entrypoint, ['/bin/sh', '-c']);
      t.deepEqual(c.cmd, ['echo $GREETING']);
      if (by === 'ours') {
        t.like(image.tree.get('srv/app'), { type: 'dir', uid: 0, gid: 0 }, 'WORKDIR created its directory (as root: USER comes after it)');
        t.is(image.layers, 2, 'busybox and the layer of WORKDIR');
      } else {
        t.false(image.tree.has('srv/app'), 'buildah 1.28 --layers: WORKDIR creates no directory (its departure from Docker)');
        t.is(image.layers, 1, 'buildah: only busybox, every step an empty layer');
      }
    },
  },
  { name: 'failing-run', failsWithExitCode: 7 },
];

if (!buildahInstalled()) {
  test('buildah is installed (deploy/install-deps.sh installs it): the oracle of these tests', (t) => {
    t.fail('/usr/bin/buildah is missing; run deploy/install-deps.sh');
  });
} else {
  const loaded = await loadOurBuilder();
  const oursAvailable = 'executor' in loaded;
  let oracle: BuildahOracle | undefined;
  let ours: OurBuilder | undefined;

  test.before(async () => {
    oracle = await startBuildah();
    if ('executor' in loaded) ours = await startOurBuilder(loaded.executor);
  });
  test.after.always(async () => {
    await ours?.stop();
    await oracle?.stop();
  });

  test.serial(`the comparison these tests run: ${oursAvailable ? 'ours vs buildah' : 'buildah vs expectations only'}`, (t) => {
    if ('unavailable' in loaded)
      t.log(`our executor is not in this tree (${loaded.unavailable}): each case checks buildah's image against its expectations, and nothing of ours`);
    t.pass();
  });

  for (const oracleCase of CASES) {
    const title = `${oracleCase.name}: ${oursAvailable ? 'ours vs buildah, and both vs expectations' : 'buildah vs expectations (our executor not in this tree)'}`;
    test.serial(title, async (t) => {
      if (oracle === undefined) throw new Error('buildah oracle did not start');
      const context = join(FIXTURES, oracleCase.name);
      const tag = `oracle-${oracleCase.name}:1`;
      const options = { context, tag, buildArgs: oracleCase.buildArgs ?? {} };
      const theirs = await oracle.build(options);
      const builder = ours;
      const built = builder === undefined ? undefined : await builder.build(options);

      if (oracleCase.failsWithExitCode !== undefined) {
        t.false(theirs.ok, 'buildah fails the build');
        if (!theirs.ok) t.is(theirs.runExitCode, oracleCase.failsWithExitCode, `buildah: ${theirs.output.slice(-400)}`);
        if (built !== undefined) {
          t.false(built.ok, 'ours fails the build');
          if (!built.ok) t.is(built.runExitCode, oracleCase.failsWithExitCode, `ours: ${built.message}`);
        }
        return;
      }
      if (!theirs.ok) throw new Error(`buildah failed to build ${oracleCase.name}: ${theirs.output}`);
      const theirImage = await oracle.read(tag);
      t.log(`buildah: ${theirImage.layers} layers, ${theirImage.tree.size} paths, ${theirImage.emptyLayerHistory} empty-layer history entries`);
      await oracleCase.expect?.(t, theirImage, 'buildah');
      if (built === undefined || builder === undefined) return;
      if (!built.ok) throw new Error(`ours failed to build ${oracleCase.name}: ${built.message}`);
      const ourImage = await builder.read(tag);
      await oracleCase.expect?.(t, ourImage, 'ours');
      const departures = [...RUN_DEPARTURES, ...(oracleCase.buildahDepartures ?? [])];
      const differences: string[] = [];
      for (const line of compareImages(ourImage, theirImage)) {
        const departure = departures.find((d) => d.line.test(line));
        if (departure === undefined) differences.push(line);
        else t.log(`buildah departure, not counted: ${line} (${departure.why})`);
      }
      for (const line of differences) t.log(`difference: ${line}`);
      t.deepEqual(differences, [], `ours and buildah's images of ${oracleCase.name} differ`);
    });
  }
}
