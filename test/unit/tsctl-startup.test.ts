// tsctl's start stays light: a command that reads no certificate and starts no cluster must not load
// the X.509 library (x509-core.ts requires it on the first certificate parse) nor the native addon
// (`cluster up|down` import the runtime where they run); together with the daemon's clean-up they
// were most of tsctl's start-up (bench:build). Checked on the real CLI run by node: both are
// CommonJS modules, so once loaded they are in require.cache, which a preload script reports at exit.
// The same probe on a module that does load the library shows that it sees it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/import-graph.js';

let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-tsctl-startup-'));
  await writeFile(
    join(dir, 'record.cjs'),
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.TESSERA_LOADED_OUT, JSON.stringify(Object.keys(require.cache))));\n",
  );
});

test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** The CommonJS modules node had loaded when it exited, after running `args` from the repository root. */
async function loadedModules(name: string, args: string[]): Promise<string[]> {
  const out = join(dir, `${name}.json`);
  const result = spawnSync(process.execPath, ['--import=tsx', '--require', join(dir, 'record.cjs'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, TESSERA_LOADED_OUT: out },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return JSON.parse(await readFile(out, 'utf8')) as string[];
}

const x509Library = (path: string): boolean => path.includes('/node_modules/@peculiar/x509/');
const nativeAddon = (path: string): boolean => path.endsWith('.node');

test('tsctl build --help loads neither the X.509 library nor the native addon', async (t) => {
  const loaded = await loadedModules('build-help', ['cli/main.ts', 'build', '--help']);
  t.true(
    loaded.some((path) => path.includes('/node_modules/commander/')),
    'the probe sees what tsctl loaded',
  );
  t.deepEqual(loaded.filter(x509Library), []);
  t.deepEqual(loaded.filter(nativeAddon), []);
});

test('the probe sees the X.509 library where it is loaded', async (t) => {
  const loaded = await loadedModules('x509', ['--input-type=module', '-e', "await import('./common/identity/x509.ts');"]);
  t.true(loaded.some(x509Library));
});
