// A crashed tsd is recognised as gone (issue 20): a zombie, or a PID whose start time differs from
// the recorded one, does not count as running. The zombie is a real one, kept on purpose: a shell
// starts a child and then execs `sleep`, which never reaps it.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { parseProcStat, processAlive, processStartTime, procStat } from '../../agent/runtime/process-alive.js';

/** Starts a parent that leaves one exited child unreaped; resolves with both PIDs once the child is a zombie. */
async function zombieKeeper(): Promise<{ parent: ChildProcess; zombie: number }> {
  // `sleep 1 &` forks the child; `exec sleep` replaces the shell by a program that never calls
  // wait(). The child outlives the exec (a second is plenty even on a loaded machine), so the shell
  // cannot have reaped it first.
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const zombie = await new Promise<number>((resolve, reject) => {
    parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    parent.once('error', reject);
  });
  for (let i = 0; i < 500 && procStat(zombie)?.state !== 'Z'; i++) await sleep(20);
  return { parent, zombie };
}

test('a zombie is not running, though kill(pid, 0) still finds it', async (t) => {
  const { parent, zombie } = await zombieKeeper();
  // Only what this test started, by its PID; the zombie goes with its parent.
  t.teardown(() => void parent.kill('SIGKILL'));
  t.is(procStat(zombie)?.state, 'Z', 'the child is a zombie while its parent sleeps');
  t.notThrows(() => process.kill(zombie, 0), 'the signal probe alone would call it alive');
  t.false(processAlive(zombie));
  t.false(processAlive(zombie, processStartTime(zombie)), 'also with its own start time');
  t.true(processAlive(parent.pid!), 'the sleeping parent runs');
});

test('a PID with another start time than the recorded one is not the recorded process', (t) => {
  const own = processStartTime(process.pid);
  t.true(own !== undefined && own > 0);
  t.true(processAlive(process.pid, own));
  t.true(processAlive(process.pid), 'no recorded start time (an older state file): the PID alone decides');
  t.false(processAlive(process.pid, own! + 1), 'a reused PID');
});

test('a process that has exited and been reaped, and PIDs that name no process, are not running', async (t) => {
  const child = spawn('true');
  const pid = child.pid!;
  await new Promise((resolve) => child.once('exit', resolve));
  await sleep(50); // node reaps on SIGCHLD
  t.false(processAlive(pid));
  t.is(processStartTime(pid), undefined);
  t.false(processAlive(0), 'not the process group');
  t.false(processAlive(-1));
});

test('/proc/PID/stat is parsed from the last ")", whatever the command name holds', (t) => {
  const own = readFileSync('/proc/self/stat', 'utf8');
  t.is(parseProcStat(own).state, 'R');
  const fields = ['S', ...Array.from({ length: 18 }, (_, i) => String(i)), '123456', '0', '0'];
  t.deepEqual(parseProcStat(`42 (a) b (c) ) ${fields.join(' ')}`), { state: 'S', startTime: 123456 });
  t.throws(() => parseProcStat('42 no parenthesis'), { message: /no "\)"/ });
  t.throws(() => parseProcStat('42 (x) S 1 2'), { message: /start time/ });
});
