// tessera-runtime: the native runtime as a runc-compatible CLI subset (run, create, start, state,
// kill, delete, list, exec; --root, --bundle/-b), so the same bundle runs under runc and under ours.
// `create` passes its own stdin/stdout/stderr to the container, like runc's detached mode. `run`
// sends the container's output to <root>/logs/<id>.log (JSON lines) and relays it to our
// stdout/stderr like runc's foreground mode, exiting with the container's exit code.

import { Command } from 'commander';
import fs from 'node:fs/promises';
import path from 'node:path';
import { STATE_OCI_VERSION } from '../hooks.js';
import { NativeRuntime } from '../native-runtime.js';
import type { ExecProcess } from '../types.js';
import { unlessAbsent } from '../../fs-errors.js';
import { parseSignal, parseUser, type RuncState } from './args.js';

const DEFAULT_ROOT = '/run/tessera-runtime';

interface Globals {
  root: string;
}

function runtimeOf(program: Command): { runtime: NativeRuntime; root: string } {
  const { root } = program.opts<Globals>();
  const abs = path.resolve(root);
  const warn = (message: string): void => {
    process.stderr.write(`tessera-runtime: warning: ${message}\n`);
  };
  return { runtime: new NativeRuntime({ stateRoot: path.join(abs, 'state'), cgroupParent: 'tessera-runtime', warn }), root: abs };
}

function logPathOf(root: string, id: string): string {
  return path.join(root, 'logs', `${id}.log`);
}

/** `create`: like runc's detached mode, the container's stdio is ours (fds 0-2), passed through. */
async function create(program: Command, id: string, bundle: string, pidFile: string | undefined): Promise<void> {
  const state = await runtimeOf(program).runtime.create(id, bundle, { stdio: 'inherit' });
  if (pidFile !== undefined) await fs.writeFile(pidFile, String(state.pid));
}

/** Copies new JSON log records to our stdout/stderr; returns the new offset. */
async function relayLog(file: string, offset: number): Promise<number> {
  // No log file yet: the container has not written anything.
  const handle = await unlessAbsent(fs.open(file, 'r'), undefined);
  if (handle === undefined) return offset;
  try {
    const { size } = await handle.stat();
    if (size <= offset) return offset;
    const buffer = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    for (const line of text.slice(0, complete).split('\n')) {
      if (line === '') continue;
      const record = JSON.parse(line) as { stream: string; log: string };
      (record.stream === 'stderr' ? process.stderr : process.stdout).write(record.log);
    }
    return offset + Buffer.byteLength(text.slice(0, complete));
  } finally {
    await handle.close();
  }
}

async function run(program: Command, id: string, bundle: string): Promise<number> {
  const { runtime, root } = runtimeOf(program);
  await fs.mkdir(path.join(root, 'logs'), { recursive: true, mode: 0o700 });
  const log = logPathOf(root, id);
  await runtime.create(id, bundle, { logPath: log, logFormat: 'json' });
  try {
    await runtime.start(id);
    let offset = 0;
    const exit = runtime.wait(id);
    const exited = exit.then(() => 'exited' as const);
    const tick = (): Promise<'tick'> => new Promise((resolve) => setTimeout(() => resolve('tick'), 50));
    for (;;) {
      offset = await relayLog(log, offset);
      if ((await Promise.race([exited, tick()])) === 'exited') break;
    }
    await relayLog(log, offset);
    return (await exit).exitCode;
  } finally {
    // The container has normally exited already (kill is then a no-op); on an error path it must
    // not outlive this command. A step that fails leaves it behind, so it is reported, not dropped.
    const warn = (step: string) => (err: Error) => {
      process.stderr.write(`tessera-runtime: ${step} container ${id}: ${err.message}\n`);
    };
    await runtime.kill(id, 'SIGKILL').catch(warn('killing'));
    await runtime.wait(id).catch(warn('waiting for'));
    await runtime.delete(id).catch(warn('deleting'));
    await fs.rm(log, { force: true });
  }
}

async function state(program: Command, id: string): Promise<RuncState> {
  const { runtime } = runtimeOf(program);
  const current = await runtime.state(id);
  if (current === undefined) throw new Error(`container '${id}' does not exist`);
  // config.json is not read again after create: the spec says later edits to it must not affect
  // the container. The state's ociVersion is the spec version this output follows, not the config's.
  const dir = runtime.stateDir(id);
  const stored = JSON.parse(await fs.readFile(path.join(dir, 'state.json'), 'utf8')) as { createdAt: string };
  const plan = JSON.parse(await fs.readFile(path.join(dir, 'plan.json'), 'utf8')) as { rootfs: string };
  return {
    ociVersion: STATE_OCI_VERSION,
    id,
    pid: current.status === 'stopped' ? 0 : current.pid,
    status: current.status,
    bundle: current.bundle,
    rootfs: plan.rootfs,
    created: stored.createdAt,
    owner: '',
    // Not in runc's state: what this container runs without that its spec asked for.
    ...(current.warnings !== undefined ? { warnings: current.warnings } : {}),
  };
}

/** `kill`: as the spec's kill operation, an error unless the container is created or running. */
async function kill(program: Command, id: string, signal: number): Promise<void> {
  const { runtime } = runtimeOf(program);
  const current = await runtime.state(id);
  if (current === undefined) throw new Error(`container '${id}' does not exist`);
  if (current.status === 'stopped') throw new Error(`kill container ${id}: it is stopped (only a created or running container takes signals)`);
  await runtime.kill(id, signal);
}

/** `list`: every container in the root, as runc prints them (a table, ids alone with -q, or JSON). */
async function list(program: Command, opts: { quiet?: boolean; format: string }): Promise<string> {
  if (opts.format !== 'table' && opts.format !== 'json') throw new Error(`list --format ${opts.format}: expected table or json`);
  const { runtime } = runtimeOf(program);
  const states: RuncState[] = [];
  for (const id of (await runtime.list()).sort()) {
    // A container whose create is still in progress (or failed half-way) has no state yet.
    const current = await state(program, id).catch(() => undefined);
    if (current !== undefined) states.push(current);
  }
  if (opts.quiet === true) return states.map((s) => `${s.id}\n`).join('');
  if (opts.format === 'json') return `${JSON.stringify(states)}\n`;
  const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, s.owner])];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, col) => cell.padEnd(widths[col]!))
          .join('   ')
          .trimEnd()}\n`,
    )
    .join('');
}

async function del(program: Command, id: string, force: boolean): Promise<void> {
  const { runtime, root } = runtimeOf(program);
  const current = await runtime.state(id);
  if (current === undefined) throw new Error(`container '${id}' does not exist`);
  // The spec's delete refuses a container that is not stopped; --force kills it first. (runc 1.1
  // also deletes a created container without --force, a deviation from the spec.)
  if (current.status !== 'stopped' && !force) {
    throw new Error(`delete container ${id}: it is ${current.status}; only a stopped container can be deleted (or use --force)`);
  }
  if (current.status !== 'stopped') {
    await runtime.kill(id, 'SIGKILL');
    await runtime.wait(id);
  }
  await runtime.delete(id);
  await fs.rm(logPathOf(root, id), { force: true });
}

async function exec(program: Command, id: string, args: string[], opts: { tty?: boolean; cwd?: string; env?: string[]; user?: string }): Promise<number> {
  const { runtime } = runtimeOf(program);
  const current = await runtime.state(id);
  if (current === undefined) throw new Error(`container '${id}' does not exist`);
  let env: string[] | undefined;
  if (opts.env !== undefined && opts.env.length > 0) {
    const plan = JSON.parse(await fs.readFile(path.join(runtime.stateDir(id), 'plan.json'), 'utf8')) as { env: string[] };
    const names = new Set(opts.env.map((e) => e.split('=')[0]));
    env = [...plan.env.filter((e) => !names.has(e.split('=')[0])), ...opts.env];
  }
  const proc: ExecProcess = await runtime.exec(id, {
    args,
    ...(env !== undefined ? { env } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.user !== undefined ? { user: parseUser(opts.user) } : {}),
    tty: opts.tty === true,
  });
  proc.stdout.on('data', (c: Buffer) => process.stdout.write(c));
  proc.stderr?.on('data', (c: Buffer) => process.stderr.write(c));
  if (!process.stdin.isTTY) process.stdin.pipe(proc.stdin);
  else proc.stdin.end();
  const exit = await proc.exit;
  process.stdin.unpipe();
  process.stdin.destroy();
  return exit.exitCode;
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command('tessera-runtime')
    .description('Tessera container runtime (runc-compatible subset)')
    .option('--root <dir>', 'state directory', DEFAULT_ROOT)
    .option('--log <file>', 'accepted for runc compatibility; ignored')
    .option('--log-format <format>', 'accepted for runc compatibility; ignored')
    .enablePositionalOptions()
    .exitOverride();
  const bundleOpt = (c: Command): Command => c.option('-b, --bundle <dir>', 'bundle directory', '.');
  bundleOpt(program.command('create').argument('<id>').option('--pid-file <file>', 'write the init pid here')).action(
    async (id: string, o: { bundle: string; pidFile?: string }) => create(program, id, o.bundle, o.pidFile),
  );
  bundleOpt(program.command('run').argument('<id>')).action(async (id: string, o: { bundle: string }) => {
    code = await run(program, id, o.bundle);
  });
  program
    .command('start')
    .argument('<id>')
    .action(async (id: string) => runtimeOf(program).runtime.start(id));
  program
    .command('state')
    .argument('<id>')
    .action(async (id: string) => {
      process.stdout.write(`${JSON.stringify(await state(program, id), null, 2)}\n`);
    });
  program
    .command('kill')
    .argument('<id>')
    .argument('[signal]', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'accepted for runc compatibility (the pid namespace dies with its init)')
    .action(async (id: string, signal: string) => kill(program, id, parseSignal(signal)));
  program
    .command('list')
    .option('-q, --quiet', 'print only the container ids')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (o: { quiet?: boolean; format: string }) => {
      process.stdout.write(await list(program, o));
    });
  program
    .command('delete')
    .argument('<id>')
    .option('-f, --force', 'kill a running container first')
    .action(async (id: string, o: { force?: boolean }) => del(program, id, o.force === true));
  program
    .command('exec')
    .argument('<id>')
    .argument('<command...>')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('--cwd <dir>', 'working directory in the container')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .passThroughOptions()
    .action(async (id: string, command: string[], o: { tty?: boolean; cwd?: string; env?: string[]; user?: string }) => {
      code = await exec(program, id, command, o);
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code?.startsWith('commander.')) return e.exitCode ?? 1;
    process.stderr.write(`tessera-runtime: ${e.message}\n`);
    return 1;
  }
  return code;
}

process.exitCode = await main(process.argv.slice(2));
