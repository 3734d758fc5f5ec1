// OCI runtime conformance: the validation programs of opencontainers/runtime-tools, run by the
// script in ../shared/oci-runtime-tools (never copied here) against bin/tessera-runtime alone.
// Every program in PASSING must pass fully (exit 0, at least one ok, no not ok). The table is in
// docs/security.md ("OCI runtime conformance"), with the reason for each program not listed.
//
// Isolation: run.sh's cleanup deletes every container `RUNTIME list -q` shows, so RUNTIME is a
// wrapper with a state root of its own; no other test's containers are visible to it. Its
// programs' bundles (/tmp/ocitest*) and test cgroups (testdir, cgrouptest) are names no other
// test uses. The Go build is cached in a stable WORK dir under the OS tmp dir (~90 s once);
// the results (WORK/out/<runtime>) are made fresh each run. Two runs of run.sh at once (this test
// and a manual one) spoil each other: its cleanup removes every /tmp/ocitest* bundle.
//
// bin/tessera-runtime runs dist/ when it is built (CI builds it first): after changing the runtime
// without `npm run build`, set TESSERA_RUNTIME_FROM_SOURCE=1 (slower: tsx on every call).

import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUN_SH = path.resolve(REPO, '../shared/oci-runtime-tools/run.sh');
const WORK = path.join(os.tmpdir(), 'tessera-oci-conformance');
/** The wrapper's name: the table's column and the directory of the raw TAP output. */
const RUNTIME_NAME = 'tessera-runtime';

/**
 * Programs runc 1.1.5 passes fully on this machine kind, plus those it fails only through its
 * own deviations from the spec (delete, hooks_stdin, linux_rootfs_propagation,
 * process_capabilities_fail, linux_seccomp).
 */
const PASSING = [
  'config_updates_without_affect',
  'create',
  'default',
  'delete',
  'delete_only_create_resources',
  'delete_resources',
  'hooks_stdin',
  'hostname',
  'kill',
  'kill_no_effect',
  'killsig',
  'linux_cgroups_cpus',
  'linux_cgroups_pids',
  'linux_cgroups_relative_cpus',
  'linux_cgroups_relative_pids',
  'linux_devices',
  'linux_masked_paths',
  'linux_ns_itype',
  'linux_ns_nopath',
  'linux_ns_path',
  'linux_ns_path_type',
  'linux_readonly_paths',
  'linux_rootfs_propagation',
  'linux_seccomp',
  'linux_sysctl',
  'linux_uid_mappings',
  'mounts',
  'process',
  'process_capabilities_fail',
  'process_oom_score_adj',
  'process_user',
  'root_readonly_true',
  'state',
];

/**
 * Programs that print no test point when the runtime is right: they pass by exiting 0 after the
 * runtime refused the config, which their stderr shows. (process_capabilities_fail: an unknown
 * capability must be an error.)
 */
const PASS_BY_REFUSAL: Record<string, RegExp> = {
  process_capabilities_fail: /failed to create the container\n.*CAP_TEST/,
};

interface Row {
  program: string;
  rc: number;
  ok: number;
  notOk: number;
}

/** The rows of run.sh's table for one runtime: "name | rc ok not-ok skip". */
function parseTable(text: string): Row[] {
  const rows: Row[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\w+)\s+\|\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (match === null) continue;
    rows.push({ program: match[1] ?? '', rc: Number(match[2]), ok: Number(match[3]), notOk: Number(match[4]) });
  }
  return rows;
}

async function passed(row: Row): Promise<boolean> {
  if (row.rc !== 0 || row.notOk !== 0) return false;
  const refusal = PASS_BY_REFUSAL[row.program];
  if (refusal === undefined) return row.ok > 0;
  return refusal.test(await fs.readFile(path.join(WORK, 'out', RUNTIME_NAME, `${row.program}.err`), 'utf8').catch(() => ''));
}

/** The first not-ok line and the start of stderr of a program, to name why it failed. */
async function whyFailed(program: string): Promise<string> {
  const out = path.join(WORK, 'out', RUNTIME_NAME);
  const tap = await fs.readFile(path.join(out, `${program}.tap`), 'utf8').catch(() => '');
  const err = await fs.readFile(path.join(out, `${program}.err`), 'utf8').catch(() => '');
  const notOk = tap.split('\n').find((l) => l.startsWith('not ok')) ?? '';
  return [notOk, err.trim().split('\n').slice(0, 4).join(' / ')].filter((s) => s !== '').join(' | ') || '(no output)';
}

/** Runs run.sh with a deadline; resolves with its exit code and stdout (stderr is appended). */
function runSuite(runtime: string, deadlineMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [RUN_SH, runtime], { env: { ...process.env, WORK }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    // run.sh and the programs it runs are one process group of their own: stop them all on timeout.
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, deadlineMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test('tessera-runtime passes the OCI runtime-tools validation programs runc passes', async (t) => {
  t.timeout(15 * 60_000);
  await fs.access(RUN_SH).catch(() => {
    throw new Error(`the conformance suite's script ${RUN_SH} is missing (it lives in ../shared, beside the repository)`);
  });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-oci-runtime-'));
  const runtime = path.join(dir, RUNTIME_NAME);
  const stateRoot = path.join(dir, 'root');
  const script = `#!/bin/sh\nexec '${path.join(REPO, 'bin/tessera-runtime')}' --root '${stateRoot}' "$@"\n`;
  await fs.writeFile(runtime, script, { mode: 0o755 });
  t.teardown(async () => {
    // Whatever a failed or interrupted run left in our own state root.
    const { stdout } = await execFileAsync(runtime, ['list', '-q']).catch(() => ({ stdout: '' }));
    for (const id of stdout.split('\n').filter((s) => s !== '')) {
      await execFileAsync(runtime, ['delete', '--force', id]).catch((err: Error) => t.log(`cleanup: delete ${id}: ${err.message}`));
    }
    await fs.rm(dir, { recursive: true, force: true });
  });
  await fs.rm(path.join(WORK, 'out', RUNTIME_NAME), { recursive: true, force: true });

  const { code, output } = await runSuite(runtime, 14 * 60_000);
  t.is(code, 0, `run.sh failed:\n${output}`);
  t.log(`\n${output}`);
  const rows = new Map(parseTable(output).map((row) => [row.program, row]));
  const failing: string[] = [];
  for (const program of PASSING) {
    const row = rows.get(program);
    if (row === undefined) failing.push(`${program}: not in the table (not run)`);
    else if (!(await passed(row))) failing.push(`${program} (rc ${row.rc}, ok ${row.ok}, not ok ${row.notOk}): ${await whyFailed(program)}`);
  }
  t.deepEqual(failing, [], `programs that must pass fully but did not (raw TAP in ${path.join(WORK, 'out', RUNTIME_NAME)}):\n${failing.join('\n')}`);
});
