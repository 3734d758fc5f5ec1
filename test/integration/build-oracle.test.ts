// Differential tests of image builds (issue 18) with Debian's buildah as the oracle. Every case in
// test/fixtures/builds/ is built by buildah FROM our busybox image (served by a loopback registry)
// and its result is checked against what that Dockerfile must produce. When our executor
// (agent/build/executor.ts) is in the tree, the same case is built by it too, FROM the same busybox
// in our image store, and the two images must agree on the file tree (modes, owners, sizes,
// content digests, symlink targets; not timestamps), the config fields and the layer count.
// Each test's title says which of the two comparisons it runs. All real: buildah with runc for its
// RUN steps, our native runtime for ours; no network but loopback (ADD of a URL fetches from an
// HTTP server the test starts on 127.0.0.1). What buildah 1.28 cannot build (heredocs, ADD
// --checksum, both newer than it) is built by ours only and checked against its expectations; the
// title says so.
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, chown, cp, link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { create as tarCreate } from 'tar';
import { END_OF_ARCHIVE, encodeEntryHeader, padding } from '../../agent/build/tar-entries.js';
import { type BuildahOracle, buildahInstalled, startBuildah } from '../helpers/buildah.js';
import { type ComparableImage, compareImages } from '../helpers/image-tree.js';
import { type OurBuilder, loadOurBuilder, startOurBuilder } from '../helpers/our-builder.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/builds/', import.meta.url));

/** What a case may use of the test's surroundings. */
interface CaseEnv {
  /** http://127.0.0.1:PORT of the test's HTTP server, which serves add-url/data.txt as /data.txt. */
  readonly httpBase: string;
}

interface OracleCase {
  readonly name: string;
  /** Fixture directory when it is not `name`. */
  readonly fixture?: string;
  /** Dockerfile name in the context (default Dockerfile). */
  readonly dockerfile?: string;
  readonly buildArgs?: (env: CaseEnv) => Readonly<Record<string, string>>;
  /** Adds to a copy of the fixture what git cannot hold (hard links, owners, archives made here). */
  readonly makeContext?: (context: string) => Promise<void>;
  /** Builds (fixture, tag) run first by each builder: a base image the case builds FROM. */
  readonly first?: ReadonlyArray<{ fixture: string; tag: string }>;
  /** Why buildah 1.28 cannot build this case: then only ours builds it, against the expectations. */
  readonly oursOnly?: string;
  /** The build must fail, with this exit status of its failing RUN. */
  readonly failsWithExitCode?: number;
  /** The build must fail (not in a RUN), with a message like this (ours; buildah's where it builds). */
  readonly failsWith?: RegExp;
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
    buildArgs: () => ({ OVERRIDDEN: 'from-cli' }),
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
  {
    name: 'add-local',
    makeContext: makeArchives,
    async expect(t, image) {
      const plain = sha256OfText('plain text, added as it is\n');
      t.like(file(t, image, 'plain.txt'), { sha256: plain, mode: 0o644, uid: 0, gid: 0 });
      t.like(file(t, image, 'into/plain.txt'), { sha256: plain });
      for (const root of ['x', 'y']) {
        t.like(file(t, image, `${root}/tree/a.txt`), { sha256: sha256OfText('archived\n'), mode: 0o640, uid: 1000, gid: 1000 }, 'the archive’s owner and mode');
        t.deepEqual(image.tree.get(`${root}/tree/a.txt`)?.hardLinks, [`${root}/tree/b.txt`], 'the archive’s hard link stays one file');
        t.like(image.tree.get(`${root}/tree/link`), { type: 'symlink', linkTarget: 'a.txt' });
        t.like(image.tree.get(`${root}/tree/sub`), { type: 'dir', mode: 0o750 });
      }
      t.is(file(t, image, 'z/not-a-tar.gz').sha256, createHash('sha256').update(NOT_A_TAR).digest('hex'), 'a gzip of no tar is copied as it is');
      t.deepEqual(
        image.tree.get('w/capable')?.xattrs,
        Object.fromEntries([...ARCHIVE_XATTRS].map(([name, value]) => [name, value.toString('hex')])),
        'the archive’s file capability and user.* xattr are kept, also through a RUN that changed the file',
      );
      t.is(image.tree.get('w/capable')?.mode, 0o700);
      t.is(image.layers, 8);
    },
  },
  {
    name: 'add-url',
    buildArgs: (env) => ({ HTTP_BASE: env.httpBase }),
    async expect(t, image) {
      const sha256 = await sha256Of(join(FIXTURES, 'add-url', 'data.txt'));
      t.like(file(t, image, 'fetched/data.txt'), { sha256, mode: 0o600, uid: 0, gid: 0 });
      t.like(file(t, image, 'renamed.txt'), { sha256, mode: 0o600 });
      t.is(image.layers, 3);
    },
  },
  {
    name: 'add-checksum',
    oursOnly: 'buildah 1.28 refuses ADD --checksum ("ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flag")',
    buildArgs: (env) => ({ HTTP_BASE: env.httpBase }),
    async expect(t, image) {
      t.like(file(t, image, 'checked.txt'), { sha256: await sha256Of(join(FIXTURES, 'add-url', 'data.txt')), mode: 0o600 });
    },
  },
  {
    name: 'add-checksum-wrong',
    fixture: 'add-checksum',
    dockerfile: 'Dockerfile.wrong',
    oursOnly: 'buildah 1.28 refuses ADD --checksum',
    buildArgs: (env) => ({ HTTP_BASE: env.httpBase }),
    failsWith: /checksum mismatch: --checksum=sha256:0{64}, the content is sha256:5682341983eca613/,
  },
  {
    name: 'shell',
    buildahDepartures: [
      {
        line: /^config cmd: ours \["\/bin\/env","VIA=the-shell-instruction","\/bin\/sh","-c","echo \\"\$VIA\\""\], theirs \["\/bin\/sh","-c","echo \\"\$VIA\\""\]$/,
        why: 'buildah 1.28 writes a shell-form CMD with /bin/sh -c whatever SHELL says; Docker and BuildKit use SHELL for RUN, CMD and ENTRYPOINT alike',
      },
    ],
    expect(t, image, by) {
      const shell = ['/bin/env', 'VIA=the-shell-instruction', '/bin/sh', '-c'];
      t.is(file(t, image, 'via.txt').sha256, sha256OfText('run: the-shell-instruction\n'), 'shell-form RUN goes through SHELL');
      t.is(file(t, image, 'exec.txt').sha256, sha256OfText('exec: unset\n'), 'exec-form RUN does not');
      t.deepEqual(image.config.shell, shell);
      if (by === 'ours') t.deepEqual(image.config.cmd, [...shell, 'echo "$VIA"'], 'shell-form CMD too');
      else t.deepEqual(image.config.cmd, ['/bin/sh', '-c', 'echo "$VIA"'], 'buildah 1.28: shell-form CMD ignores SHELL (its departure)');
    },
  },
  {
    name: 'onbuild',
    first: [{ fixture: 'onbuild-base', tag: 'oracle-onbuild-base:1' }],
    expect(t, image) {
      t.is(file(t, image, 'from-trigger.txt').sha256, sha256OfText("from the child's context\n"), 'ONBUILD COPY read the child’s context');
      t.is(file(t, image, 'seen.txt').sha256, sha256OfText("from the child's context\ntriggered\n"), 'the triggers ran before the child’s own steps');
      t.is(image.config.onBuild, undefined, 'triggers are not inherited by the child');
      t.deepEqual(image.config.labels, { stage: 'base' });
    },
  },
  {
    name: 'heredoc',
    oursOnly: 'buildah 1.28 has no heredocs (it reads `COPY <<EOF /greeting.txt` as a source named "<<EOF"); the expectations are BuildKit’s',
    expect(t, image) {
      t.like(file(t, image, 'greeting.txt'), { sha256: sha256OfText('hello from copy\n'), mode: 0o644, uid: 0, gid: 0 });
      t.is(file(t, image, 'literal.txt').sha256, sha256OfText('${GREETING} stays\n'), 'a quoted delimiter expands nothing');
      t.is(file(t, image, 'run.txt').sha256, sha256OfText('hello from run\nsecond\n'), 'the heredoc is the shell’s script');
      t.is(file(t, image, 'tabs.txt').sha256, sha256OfText('tabs stripped\n'), '<<- strips leading tabs');
      t.is(file(t, image, 'shebang.txt').sha256, sha256OfText('shebang /dev/pipes/EOF\n'), 'a #! heredoc runs as a script file');
      t.is(image.layers, 6);
    },
  },
  {
    name: 'hardlinks',
    makeContext: makeLinkedApp,
    expect(t, image) {
      t.deepEqual(image.tree.get('app/a')?.hardLinks, ['app/b'], 'COPY keeps the context’s hard link');
      t.is(image.tree.get('app/other')?.hardLinks, undefined);
      t.deepEqual(image.tree.get('r1')?.hardLinks, ['r/r3', 'r2'], 'RUN ln makes one file of three names');
      t.is(image.layers, 3);
    },
  },
  {
    name: 'hardlinks-lower',
    makeContext: makeLinkedApp,
    buildahDepartures: [
      {
        line: /^\/app\/(a: ours .*, hard-linked with app\/c; theirs .*, hard-linked with app\/b|b: ours file, [^;]*\w; theirs .*, hard-linked with app\/a|c: ours .*, hard-linked with app\/a; theirs file, .*\w)$/,
        why: "`ln` of a lower layer's file: overlayfs copies a up first, which parts it from b (no index=on), so in the RUN a and c are one file and b another, and our layer, the upper dir, says so (Docker's overlay2 driver diffs the upper dir the same way); buildah's vfs diff leaves a out (content and mtime unchanged) and writes c as a separate file",
      },
    ],
    expect(t, image, by) {
      t.is(file(t, image, 'app/c').sha256, sha256OfText('one file, two names\n'));
      if (by === 'ours') t.deepEqual(image.tree.get('app/c')?.hardLinks, ['app/a'], 'the RUN’s link is kept; a was copied up, apart from b');
      else t.is(image.tree.get('app/c')?.hardLinks, undefined, 'buildah: c is a file of its own');
    },
  },
  {
    name: 'network-none',
    buildArgs: (env) => ({ HTTP_BASE: env.httpBase }),
    expect(t, image) {
      t.is(file(t, image, 'interfaces.txt').sha256, sha256OfText('lo\n'), 'RUN sees only loopback');
      t.is(file(t, image, 'reach.txt').sha256, sha256OfText('unreachable\n'), 'the host’s loopback (the test’s HTTP server) is not reachable from RUN');
    },
  },
];

const NOT_A_TAR = gzipSync(Buffer.from('only gzip, no tar\n'));
/** CAP_NET_BIND_SERVICE permitted and effective (revision 2), and a user.* attribute. */
const CAPABILITY = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const ARCHIVE_XATTRS = new Map([
  ['security.capability', CAPABILITY],
  ['user.origin', Buffer.from('oracle')],
]);

/** app/a and app/b as one file, app/other apart. */
async function makeLinkedApp(context: string): Promise<void> {
  await mkdir(join(context, 'app'));
  await writeFile(join(context, 'app', 'a'), 'one file, two names\n');
  await link(join(context, 'app', 'a'), join(context, 'app', 'b'));
  await writeFile(join(context, 'app', 'other'), 'separate\n');
}

/** add-local's archives: a tree with an owner, a mode, a symlink and a hard link, as a tar and a tar.gz. */
async function makeArchives(context: string): Promise<void> {
  const src = await mkdtemp(join(tmpdir(), 'tessera-oracle-archive-'));
  try {
    await mkdir(join(src, 'tree', 'sub'), { recursive: true });
    await chmod(join(src, 'tree', 'sub'), 0o750);
    await writeFile(join(src, 'tree', 'a.txt'), 'archived\n');
    await chown(join(src, 'tree', 'a.txt'), 1000, 1000);
    await chmod(join(src, 'tree', 'a.txt'), 0o640);
    await link(join(src, 'tree', 'a.txt'), join(src, 'tree', 'b.txt'));
    await symlink('a.txt', join(src, 'tree', 'link'));
    await tarCreate({ cwd: src, file: join(context, 'archive.tar'), portable: false }, ['tree']);
    await tarCreate({ cwd: src, file: join(context, 'archive.tar.gz'), gzip: true, portable: false }, ['tree']);
    await writeFile(join(context, 'not-a-tar.gz'), NOT_A_TAR);
    const data = Buffer.from('capable\n');
    const header = { path: 'capable', type: 'File' as const, mode: 0o755, uid: 0, gid: 0, size: data.length, mtime: new Date(0), xattrs: ARCHIVE_XATTRS };
    await writeFile(join(context, 'xattrs.tar'), Buffer.concat([encodeEntryHeader(header), data, padding(data.length), END_OF_ARCHIVE]));
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}

/** The HTTP server ADD of a URL fetches from: add-url/data.txt as /data.txt, with a Last-Modified. */
async function startHttp(): Promise<{ base: string; server: Server }> {
  const data = await readFile(join(FIXTURES, 'add-url', 'data.txt'));
  const server = createServer((request, response) => {
    if (request.url !== '/data.txt') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': data.length, 'last-modified': new Date(0).toUTCString() }).end(data);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** The case's context: the fixture itself, or a temporary copy with what makeContext adds. */
async function contextOf(oracleCase: OracleCase): Promise<{ context: string; cleanup: () => Promise<void> }> {
  const fixture = join(FIXTURES, oracleCase.fixture ?? oracleCase.name);
  if (oracleCase.makeContext === undefined) return { context: fixture, cleanup: async () => undefined };
  const dir = await mkdtemp(join(tmpdir(), `tessera-oracle-${oracleCase.name}-`));
  const context = join(dir, 'context');
  await cp(fixture, context, { recursive: true });
  await oracleCase.makeContext(context);
  return { context, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

if (!buildahInstalled()) {
  test('buildah is installed (deploy/install-deps.sh installs it): the oracle of these tests', (t) => {
    t.fail('/usr/bin/buildah is missing; run deploy/install-deps.sh');
  });
} else {
  const loaded = await loadOurBuilder();
  const oursAvailable = 'executor' in loaded;
  let oracle: BuildahOracle | undefined;
  let ours: OurBuilder | undefined;
  let http: { base: string; server: Server } | undefined;

  test.before(async () => {
    http = await startHttp();
    oracle = await startBuildah();
    if ('executor' in loaded) ours = await startOurBuilder(loaded.executor);
  });
  test.after.always(async () => {
    await ours?.stop();
    await oracle?.stop();
    if (http !== undefined) await new Promise((resolve) => http?.server.close(resolve));
  });

  test.serial(`the comparison these tests run: ${oursAvailable ? 'ours vs buildah' : 'buildah vs expectations only'}`, (t) => {
    if ('unavailable' in loaded)
      t.log(`our executor is not in this tree (${loaded.unavailable}): each case checks buildah's image against its expectations, and nothing of ours`);
    t.pass();
  });

  for (const oracleCase of CASES) {
    const title =
      oracleCase.oursOnly !== undefined
        ? `${oracleCase.name}: ${oursAvailable ? 'ours vs expectations only' : 'not built (our executor not in this tree)'} (${oracleCase.oursOnly})`
        : `${oracleCase.name}: ${oursAvailable ? 'ours vs buildah, and both vs expectations' : 'buildah vs expectations (our executor not in this tree)'}`;
    test.serial(title, async (t) => {
      if (oracle === undefined || http === undefined) throw new Error('buildah oracle did not start');
      const { context, cleanup } = await contextOf(oracleCase);
      t.teardown(cleanup);
      const tag = `oracle-${oracleCase.name}:1`;
      const buildArgs = oracleCase.buildArgs?.({ httpBase: http.base }) ?? {};
      const options = { context, tag, buildArgs, ...(oracleCase.dockerfile === undefined ? {} : { dockerfile: oracleCase.dockerfile }) };
      const builder = ours;
      for (const first of oracleCase.first ?? []) {
        const firstOptions = { context: join(FIXTURES, first.fixture), tag: first.tag };
        const theirFirst = await oracle.build(firstOptions);
        if (!theirFirst.ok) throw new Error(`buildah failed to build ${first.fixture}: ${theirFirst.output}`);
        const ourFirst = await builder?.build(firstOptions);
        if (ourFirst !== undefined && !ourFirst.ok) throw new Error(`ours failed to build ${first.fixture}: ${ourFirst.message}`);
      }
      if (oracleCase.oursOnly !== undefined) {
        if (builder === undefined) {
          t.log(`not built: our executor is not in this tree, and buildah cannot build it (${oracleCase.oursOnly})`);
          t.pass();
          return;
        }
        const built = await builder.build(options);
        if (oracleCase.failsWith !== undefined) {
          t.false(built.ok, 'ours fails the build');
          if (!built.ok) t.regex(built.message, oracleCase.failsWith);
          return;
        }
        if (!built.ok) throw new Error(`ours failed to build ${oracleCase.name}: ${built.message}`);
        await oracleCase.expect?.(t, await builder.read(tag), 'ours');
        return;
      }
      const theirs = await oracle.build(options);
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
