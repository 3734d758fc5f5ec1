// The audit log against real files in a temporary directory.
import test, { type ExecutionContext } from 'ava';
import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { AuditEntry } from '../../control-plane/audit/audit-entry.js';
import { AuditLog, type AuditLogOptions } from '../../control-plane/audit/audit-log.js';

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-audit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An audit log whose messages are collected, closed when the test ends. */
function openLog(t: ExecutionContext, options: AuditLogOptions): { log: AuditLog; messages: string[] } {
  const messages: string[] = [];
  const log = new AuditLog({ log: (message) => messages.push(message), ...options });
  t.teardown(() => log.close());
  return { log, messages };
}

function entry(n: number, caller = 'user:alice (operator)'): AuditEntry {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, n)).toISOString(),
    caller,
    certificateSerial: '0a1b2c',
    method: 'Apply',
    objects: [{ kind: 'Service', stack: 'shop', name: `web-${n}` }],
    digest: `sha256:${'0'.repeat(64)}`,
    result: n % 7 === 0 ? { ok: false, code: 'INVALID_ARGUMENT', message: `object ${n} is wrong` } : { ok: true },
    manager: 'node-1',
  };
}

function names(entries: AuditEntry[]): string[] {
  return entries.map((e) => e.objects[0]?.name ?? '');
}

function expectedNames(from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, i) => `web-${from + i}`);
}

test('entries round-trip through the file as JSON lines, newest last', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'audit.log');
  const { log } = openLog(t, { path });
  const written = [entry(1), entry(7, 'node:node-2 (manager)'), entry(3)];
  for (const e of written) log.record(e);
  t.deepEqual(await log.read({ limit: 100 }), written);
  t.deepEqual(await log.read({ limit: 2 }), written.slice(1));
  t.deepEqual(await log.read({ limit: 100, callerContains: 'node:' }), [written[1]]);

  const lines = (await readFile(path, 'utf8')).split('\n');
  t.is(lines.length, 4);
  t.is(lines[3], '');
  t.deepEqual(JSON.parse(lines[1] ?? ''), written[1]);
});

test('the file is created 0600 and a missing directory 0700; an existing file is made 0600', async (t) => {
  const dir = await scratch(t);
  const nested = join(dir, 'state', 'audit');
  const { log } = openLog(t, { path: join(nested, 'audit.log') });
  log.record(entry(1));
  await log.flush();
  t.is((await stat(join(nested, 'audit.log'))).mode & 0o777, 0o600);
  t.is((await stat(nested)).mode & 0o777, 0o700);

  // A directory that exists keeps its mode and its other files.
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'other.txt'), 'kept');
  await writeFile(join(dir, 'audit.log'), '', { mode: 0o644 });
  const second = openLog(t, { path: join(dir, 'audit.log') }).log;
  second.record(entry(2));
  await second.flush();
  t.is((await stat(join(dir, 'audit.log'))).mode & 0o777, 0o600);
  t.is((await stat(dir)).mode & 0o777, 0o755);
  t.is(await readFile(join(dir, 'other.txt'), 'utf8'), 'kept');
});

test('rotation keeps exactly `keep` old files, none over maxBytes, and reads across them in order', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'audit.log');
  const maxBytes = 1024;
  const { log } = openLog(t, { path, maxBytes, keep: 3 });
  for (let n = 0; n < 200; n++) log.record(entry(n));
  await log.flush();

  t.deepEqual((await readdir(dir)).sort(), ['audit.log', 'audit.log.1', 'audit.log.2', 'audit.log.3']);
  for (const file of await readdir(dir)) t.true((await stat(join(dir, file))).size <= maxBytes, file);

  const all = await log.read({ limit: 10_000 });
  // What survives is the most recent run of entries, without gaps.
  t.true(all.length > 3 * 3, `${all.length} entries survive`);
  t.deepEqual(names(all), expectedNames(200 - all.length, 200));
  // A limit larger than the current file reaches into the rotated ones.
  t.deepEqual(names(await log.read({ limit: all.length - 1 })), expectedNames(201 - all.length, 200));
  t.deepEqual(names(await log.read({ limit: 5 })), expectedNames(195, 200));
});

test('a burst of 5,000 records all land, in order, with and without rotation', async (t) => {
  const dir = await scratch(t);
  const single = openLog(t, { path: join(dir, 'single', 'audit.log') }).log;
  const rotated = openLog(t, { path: join(dir, 'rotated', 'audit.log'), maxBytes: 64 * 1024, keep: 100 }).log;
  for (let n = 0; n < 5000; n++) {
    single.record(entry(n));
    rotated.record(entry(n));
  }
  t.deepEqual(names(await single.read({ limit: 10_000 })), expectedNames(0, 5000));
  t.deepEqual(names(await rotated.read({ limit: 10_000 })), expectedNames(0, 5000));
  t.true((await readdir(join(dir, 'rotated'))).length > 5, 'the rotated log spans several files');
});

test('a torn last line is skipped, and the next entry is not lost with it', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'audit.log');
  const first = openLog(t, { path }).log;
  first.record(entry(1));
  first.record(entry(2));
  await first.close();
  // What a crash in the middle of a write leaves.
  await appendFile(path, JSON.stringify(entry(3)).slice(0, 40));

  const { log, messages } = openLog(t, { path });
  t.deepEqual(names(await log.read({ limit: 10 })), ['web-1', 'web-2']);
  t.true(messages.some((m) => m.includes('skipped 1 unreadable line')));

  log.record(entry(4));
  t.deepEqual(names(await log.read({ limit: 10 })), ['web-1', 'web-2', 'web-4']);
});

test('a write failure is reported, never thrown, and counted until writing works again', async (t) => {
  const dir = await scratch(t);
  // The audit directory's place is taken by a file, so the log cannot be created.
  const blocked = join(dir, 'blocked');
  await writeFile(blocked, 'not a directory');
  const { log, messages } = openLog(t, { path: join(blocked, 'audit.log') });
  t.notThrows(() => {
    for (let n = 0; n < 3; n++) log.record(entry(n));
  });
  await log.flush();
  t.is(messages.length, 1, 'one report for the whole failing spell');
  t.regex(messages[0] ?? '', /entries dropped: cannot write/);

  await rm(blocked);
  await mkdir(blocked);
  log.record(entry(10));
  t.deepEqual(names(await log.read({ limit: 10 })), ['web-10']);
  t.regex(messages[1] ?? '', /writing works again; 3 entries were lost/);
});

test('read refuses a limit outside 1 … 10,000 and a huge caller filter; record after close is reported', async (t) => {
  const dir = await scratch(t);
  const { log, messages } = openLog(t, { path: join(dir, 'audit.log') });
  await t.throwsAsync(log.read({ limit: 0 }), { message: /audit read limit must be a whole number from 1 to 10000/ });
  await t.throwsAsync(log.read({ limit: 10_001 }), { message: /audit read limit/ });
  await t.throwsAsync(log.read({ limit: 10, callerContains: 'x'.repeat(600) }), { message: /caller filter/ });
  t.throws(() => new AuditLog({ path: join(dir, 'x.log'), maxBytes: 10 }), { message: /audit log maxBytes/ });
  t.throws(() => new AuditLog({ path: join(dir, 'x.log'), keep: -1 }), { message: /audit log keep/ });

  await log.close();
  log.record(entry(1));
  t.regex(messages.at(-1) ?? '', /Apply by user:alice \(operator\) was recorded after the audit log was closed/);
});
