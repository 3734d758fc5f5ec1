// Shared by the shim tests: a runtime fixture torn down with the test, the shim's JSON-lines log
// records, and a stand-in for tsd that creates containers and is then killed with SIGKILL, so the
// tests can show that containers outlive their creator and are re-adopted.

import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuntimeFixture, withTimeout } from './runtime-fixture.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const creatorScript = path.join(repoRoot, 'test/integration/runtime-shim-creator.ts');

/** One line of a shim log. */
export interface LogRecord {
  time: string;
  stream: 'stdout' | 'stderr';
  log: string;
}

/** A runtime fixture cleaned up when the test ends, passed or not. */
export async function runtimeFixture(t: ExecutionContext): Promise<RuntimeFixture> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  return fx;
}

/** The records of a shim log so far (none while the file does not exist yet). */
export async function readLogRecords(file: string): Promise<LogRecord[]> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogRecord);
}

/** What the creator makes: a container per job, `stdinOpen` keeping its stdin open. */
export interface CreatorJob {
  id: string;
  bundle: string;
  logPath: string;
  stdinOpen?: boolean;
}

/** Runs the creator script as a stand-in for tsd, waits for "ready", kills it with SIGKILL. */
export async function createInDoomedProcess(t: ExecutionContext, fx: RuntimeFixture, jobs: CreatorJob[]): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', creatorScript, JSON.stringify({ stateRoot: path.join(fx.dir, 'state'), cgroupParent: fx.cgroupParent, jobs })],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('creator did not start');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('ready')) resolve();
      });
      child.on('exit', () => reject(new Error(`creator exited early: ${stderr}`)));
    }),
    30_000,
  );
  const exited = new Promise((r) => child.on('exit', r));
  process.kill(pid, 'SIGKILL');
  await exited;
}
