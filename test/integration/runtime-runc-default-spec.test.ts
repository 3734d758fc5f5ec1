// runc as an oracle on runc's own default bundle: `runc spec` writes config.json, we change only
// process.terminal (false) and process.args, and the very same bundle runs under runc and under
// bin/tessera-runtime. The other oracle tests use bundles we shape; this one catches what runc's
// defaults ask for that ours might not do (a `cgroup` mount at /sys/fs/cgroup, ambient
// capabilities without an inheritable set, a read-only root, an rlimit, no_new_privs).

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectCgroupMode, type CgroupMode } from '../../agent/runtime/cgroups/detect.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../../bin/tessera-runtime');
const CGROUP_ROOT = '/sys/fs/cgroup';
/** bin/tessera-runtime's cgroup parent (agent/runtime/cli/main.ts). */
const CLI_CGROUP_PARENT = 'tessera-runtime';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function runCommand(file: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 30_000, env: { ...process.env, TESSERA_RUNTIME_FROM_SOURCE: '1' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

interface World {
  bundle: string;
  ours: (...args: string[]) => Promise<Result>;
  runc: (...args: string[]) => Promise<Result>;
  id: (runtime: 'ours' | 'runc') => string;
  mode: CgroupMode;
}

/** A bundle made by `runc spec` around a busybox rootfs, with only terminal and args changed. */
async function world(t: ExecutionContext, args: string[]): Promise<World> {
  const prefix = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `tessera-runcspec-${prefix}-`));
  const bundle = path.join(dir, 'bundle');
  const ids: Array<{ runtime: 'ours' | 'runc'; id: string }> = [];
  const w: World = {
    bundle,
    ours: (...a) => runCommand(CLI, ['--root', path.join(dir, 'ours-root'), ...a]),
    runc: (...a) => runCommand('runc', ['--root', path.join(dir, 'runc-root'), ...a]),
    id: (runtime) => {
      const id = `runcspec-${prefix}-${runtime}-${ids.length}`;
      ids.push({ runtime, id });
      return id;
    },
    mode: await detectCgroupMode(CGROUP_ROOT),
  };
  t.teardown(async () => {
    for (const { runtime, id } of ids) await (runtime === 'ours' ? w.ours : w.runc)('delete', '--force', id);
    await fs.rm(dir, { recursive: true, force: true });
  });
  await makeBusyboxRootfs(path.join(bundle, 'rootfs'));
  const generated = await runCommand('runc', ['spec', '--bundle', bundle]);
  t.is(generated.code, 0, `runc spec: ${generated.stderr}`);
  const file = path.join(bundle, 'config.json');
  const spec = JSON.parse(await fs.readFile(file, 'utf8')) as { process: { terminal?: boolean; args: string[] } };
  spec.process.terminal = false;
  spec.process.args = args;
  await fs.writeFile(file, JSON.stringify(spec, null, 2));
  t.log(`cgroup layout of this host: ${w.mode}`);
  return w;
}

/** The container's cgroup directories that bin/tessera-runtime made for `id` and must have removed. */
async function ourCgroupDirsLeft(mode: CgroupMode, id: string): Promise<string[]> {
  const candidates =
    mode === 'v2'
      ? [path.join(CGROUP_ROOT, CLI_CGROUP_PARENT, id)]
      : (await fs.readdir(CGROUP_ROOT)).map((h) => path.join(CGROUP_ROOT, h, CLI_CGROUP_PARENT, id));
  const left: string[] = [];
  for (const dir of candidates)
    if (
      await fs.stat(dir).then(
        () => true,
        () => false,
      )
    )
      left.push(dir);
  return left;
}

test('runc spec\'s bundle with args ["/bin/true"] runs under both, exit 0 and no output', async (t) => {
  const w = await world(t, ['/bin/true']);
  const runc = await w.runc('run', '--bundle', w.bundle, w.id('runc'));
  const oursId = w.id('ours');
  const ours = await w.ours('run', '--bundle', w.bundle, oursId);
  t.deepEqual(runc, { code: 0, stdout: '', stderr: '' });
  t.deepEqual(ours, { code: 0, stdout: '', stderr: '' });
  t.deepEqual(await ourCgroupDirsLeft(w.mode, oursId), []);
});

// Every line is "key: value", so differences show by key.
const PROBE = [
  'echo "hostname: $(hostname)"',
  'echo "id: $(id)"',
  'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):" /proc/self/status | tr -s "\\t " " "',
  'echo "nofile: $(ulimit -n)"',
  'touch /written 2>/dev/null && echo "root: writable" || echo "root: read-only"',
  'mkdir /sys/fs/cgroup/new 2>/dev/null && echo "cgroup-mkdir: made" || echo "cgroup-mkdir: refused"',
  'echo "cgroup-fs: $(stat -f -c %T /sys/fs/cgroup)"',
  // The mount at /sys/fs/cgroup and every mount below it: read-only or not.
  'awk \'$5 ~ "^/sys/fs/cgroup" { split($6, o, ","); print "mount " $5 ": " o[1] }\' /proc/self/mountinfo | sort',
  // Per hierarchy (v1) or for the whole (v2): what is listed, a write, and how many processes the
  // cgroup.procs file there holds (the container's own cgroup holds just this shell and wc).
  'for d in /sys/fs/cgroup /sys/fs/cgroup/*; do [ -f "$d/cgroup.procs" ] || continue; ' +
    'echo "procs $d: $(wc -l < "$d/cgroup.procs")"; ' +
    '(echo 1 > "$d/cgroup.procs") 2>/dev/null && echo "write $d: done" || echo "write $d: refused"; done',
  'echo "listing: $(ls /sys/fs/cgroup | tr "\\n" " ")"',
].join('; ');

function lines(out: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of out.trim().split('\n')) {
    const at = line.indexOf(': ');
    if (at > 0) map.set(line.slice(0, at), line.slice(at + 2));
  }
  return map;
}

test("runc spec's bundle: the same identity, capabilities, limits and read-only cgroup view under both", async (t) => {
  const w = await world(t, ['sh', '-c', PROBE]);
  const runc = await w.runc('run', '--bundle', w.bundle, w.id('runc'));
  const oursId = w.id('ours');
  const ours = await w.ours('run', '--bundle', w.bundle, oursId);
  t.is(runc.code, 0, runc.stderr);
  t.is(ours.code, 0, ours.stderr);
  t.is(ours.stderr, runc.stderr);
  const o = lines(ours.stdout);
  const r = lines(runc.stdout);
  t.log(`runc:\n${runc.stdout}\nours:\n${ours.stdout}`);

  for (const key of ['hostname', 'id', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'nofile', 'root', 'cgroup-mkdir']) {
    t.not(o.get(key), undefined, `ours printed ${key}`);
    t.is(o.get(key), r.get(key), key);
  }
  // What runc's defaults give, so that agreeing on something else would not pass.
  t.is(o.get('hostname'), 'runc');
  t.is(o.get('CapAmb'), '0000000000000000', 'the ambient set runc spec lists is not raised (no inheritable set)');
  t.is(o.get('CapEff'), '0000000020000420', 'CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE');
  t.is(o.get('nofile'), '1024');
  t.is(o.get('root'), 'read-only');
  t.is(o.get('cgroup-mkdir'), 'refused');

  const ourMounts = [...o].filter(([k]) => k.startsWith('mount '));
  t.true(ourMounts.length > 0, 'something is mounted at /sys/fs/cgroup');
  // Ours makes every mount there read-only (runc 1.1 leaves its v1 tmpfs writable, mode 0555).
  for (const [k, v] of ourMounts) t.is(v, 'ro', k);
  const ourProcs = [...o].filter(([k]) => k.startsWith('procs '));
  t.true(ourProcs.length > 0, 'a cgroup.procs file is visible');
  for (const [k, v] of ourProcs) t.is(v, '2', `${k}: only the container's own processes (sh and wc)`);
  for (const [k, v] of [...o].filter(([key]) => key.startsWith('write '))) t.is(v, 'refused', k);

  if (w.mode === 'v2') {
    // runc 1.1 mounts cgroup2 without a cgroup namespace (the spec asks for none), which shows the
    // host's whole tree; ours binds the container's own directory instead.
    t.log("pure cgroup v2: ours shows the container's own cgroup2 directory read-only");
    t.is(o.get('cgroup-fs'), 'cgroup2');
    t.is(r.get('cgroup-fs'), 'cgroup2');
    t.deepEqual(
      ourMounts.map(([k]) => k),
      ['mount /sys/fs/cgroup'],
    );
    t.is(r.get('mount /sys/fs/cgroup'), 'ro');
  } else {
    // v1/hybrid: a tmpfs with one bind per hierarchy, like runc's; runc's hierarchies are the ones
    // its container joined, which include freezer and name=systemd that ours does not join.
    t.log(`cgroup ${w.mode}: a tmpfs with a read-only bind of the container's own cgroup per hierarchy`);
    t.is(o.get('cgroup-fs'), 'tmpfs');
    t.is(r.get('cgroup-fs'), 'tmpfs');
    const ourListing = (o.get('listing') ?? '').trim().split(' ');
    const runcListing = new Set((r.get('listing') ?? '').trim().split(' '));
    t.true(ourListing.includes('memory') && ourListing.includes('pids'), ourListing.join(' '));
    for (const name of ourListing) t.true(runcListing.has(name), `runc shows ${name} too`);
    for (const [k, v] of ourProcs) t.is(r.get(k), v, `runc: ${k}`);
    for (const [k] of ourMounts.filter(([key]) => key !== 'mount /sys/fs/cgroup')) t.is(r.get(k), 'ro', `runc: ${k}`);
    t.log(`shown by runc only: ${[...runcListing].filter((n) => !ourListing.includes(n)).join(' ') || 'nothing'}`);
  }
  t.deepEqual(await ourCgroupDirsLeft(w.mode, oursId), []);
});

test("runc spec's bundle: the ambient capabilities left out are warnings in `tessera-runtime state`", async (t) => {
  const w = await world(t, ['sleep', '30']);
  const id = w.id('ours');
  t.is((await w.ours('create', '--bundle', w.bundle, id)).code, 0);
  const state = JSON.parse((await w.ours('state', id)).stdout) as { status: string; warnings?: string[] };
  t.is(state.status, 'created');
  const ambient = (state.warnings ?? []).filter((x) => x.startsWith('process.capabilities.ambient: '));
  t.deepEqual(
    ambient.map((x) => x.split(' ')[1]),
    ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
  );
  for (const x of ambient) t.regex(x, /is not raised: it is not in the inheritable set/);
  t.is((await w.ours('delete', '--force', id)).code, 0);
});
