// tsd's log lines: a time stamp on a terminal or file, a syslog priority prefix when stderr is the
// systemd journal's stream (and only when JOURNAL_STREAM names stderr itself, not an inherited value).
import test from 'ava';

import { formatLogLine, isJournalStream } from '../../daemon/log-sink.js';

test('stderr is the journal only when JOURNAL_STREAM names its device and inode', (t) => {
  t.true(isJournalStream('8:12345', { dev: 8, ino: 12345 }));
  t.false(isJournalStream('8:12345', { dev: 8, ino: 999 }), 'inherited by a process whose stderr was redirected');
  t.false(isJournalStream(undefined, { dev: 8, ino: 12345 }));
  t.false(isJournalStream('8:12345', undefined));
});

test('journal lines carry a priority and no time; other lines carry the time', (t) => {
  const at = new Date('2026-12-06T10:00:00.000Z');
  t.is(formatLogLine('started', 'info', true, at), '<6>started\n');
  t.is(formatLogLine('failed', 'error', true, at), '<3>failed\n');
  t.is(formatLogLine('started', 'info', false, at), '2026-12-06T10:00:00.000Z started\n');
});
